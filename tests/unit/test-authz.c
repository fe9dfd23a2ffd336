/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for ttyhub-sshd's authorisation connection (ssh-front/authz.c)
 * against a scripted broker: a child process listening on a UNIX socket
 * that answers hello, and each `authorize` by the key's name (the key is
 * "ssh-ed25519 CASE").  What is checked is the gateway part of the answer
 * (issue 16): an `authorized` without grant and gateway (a broker that
 * predates gateways) is no grant and no gateway; both are taken when
 * present; a grant of the longest length is taken whole; one longer, or
 * either member of the wrong type, is an answer we cannot use (-EPROTO,
 * never cut), after which the next question is asked on a new connection.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "authz.h"
#include "frame.h"
#include "message.h"
#include "obuf.h"
#include "proto.h"

static char sock_path[108];
static char sock_dir[64];
static pid_t broker_pid;

/* Blocking: read exactly len bytes; false on EOF or error. */
static bool read_all(int fd, uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = read(fd, buf, len);

		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

static void send_msg(int fd, json_t *msg)
{
	struct obuf out;

	if (obuf_init(&out, 64 * 1024) < 0 || proto_put_control(&out, msg) < 0)
		_exit(2);
	json_decref(msg);
	while (obuf_len(&out) > 0)
		if (obuf_flush(&out, fd) < 0)
			break;
	obuf_done(&out);
}

/* The scripted answer for the key "ssh-ed25519 CASE". */
static json_t *answer(const char *key)
{
	const char *name = key && strncmp(key, "ssh-ed25519 ", 12) == 0 ? key + 12 : "";
	/* Built by hand: the answer of a broker before gateways, whatever message.c now builds. */
	json_t *m = json_pack("{s:s, s:s, s:s, s:s}", "type", "authorized", "fingerprint",
			      "SHA256:test", "comment", "someone@test", "you", "someone");

	if (strcmp(name, "old") == 0)
		return m; /* a broker before gateways */
	if (strcmp(name, "gateway") == 0) {
		json_object_set_new(m, "grant", json_string("consoles=\"web*:rw\",break"));
		json_object_set_new(m, "gateway", json_true());
	} else if (strcmp(name, "user") == 0) {
		json_object_set_new(m, "grant", json_string("consoles=\"db01:ro\""));
		json_object_set_new(m, "gateway", json_false());
	} else if (strcmp(name, "longest") == 0 || strcmp(name, "toolong") == 0) {
		size_t n = AUTHZ_GRANT_MAX + (strcmp(name, "toolong") == 0);
		char *g = malloc(n + 1);

		if (!g)
			_exit(2);
		memset(g, 'x', n);
		g[n] = '\0';
		json_object_set_new(m, "grant", json_string(g));
		free(g);
	} else if (strcmp(name, "grant-number") == 0) {
		json_object_set_new(m, "grant", json_integer(42));
	} else if (strcmp(name, "gateway-string") == 0) {
		json_object_set_new(m, "grant", json_string(""));
		json_object_set_new(m, "gateway", json_string("yes"));
	} else if (strcmp(name, "denied") == 0) {
		json_decref(m);
		m = proto_msg_error(PROTO_E_DENIED, "no such key");
	}
	return m;
}

/* The child: serve connections one after another until killed. */
static void broker_serve(int lfd)
{
	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			_exit(1);
		for (;;) {
			uint8_t hdr[FRAME_HEADER], *payload;
			size_t len;
			json_t *req;
			const char *type;

			if (!read_all(fd, hdr, sizeof(hdr)))
				break;
			len = (size_t)hdr[1] << 24 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 8 | hdr[4];
			payload = malloc(len + 1);
			if (!payload || !read_all(fd, payload, len))
				_exit(2);
			req = json_loadb((const char *)payload, len, 0, NULL);
			free(payload);
			type = json_string_value(json_object_get(req, "type"));
			if (type && strcmp(type, "hello") == 0)
				send_msg(fd, json_pack("{s:s, s:i, s:s, s:s}", "type", "hello",
						       "version", PROTO_VERSION, "server", "ttyhubd",
						       "you", "ttyhub-sshd"));
			else if (type && strcmp(type, "authorize") == 0)
				send_msg(fd, answer(json_string_value(json_object_get(req, "key"))));
			json_decref(req);
		}
		close(fd);
	}
}

static int setup(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd;

	snprintf(sock_dir, sizeof(sock_dir), "/tmp/test-authz-XXXXXX");
	if (!mkdtemp(sock_dir))
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/broker.sock", sock_dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 8) < 0)
		return -1;
	broker_pid = fork();
	if (broker_pid < 0)
		return -1;
	if (broker_pid == 0)
		broker_serve(lfd);
	close(lfd);
	return 0;
}

static int teardown(void **state)
{
	kill(broker_pid, SIGKILL);
	waitpid(broker_pid, NULL, 0);
	unlink(sock_path);
	rmdir(sock_dir);
	return 0;
}

static int ask(struct authz *a, const char *name, struct authz_answer *ret)
{
	char key[128];
	const struct front_principal p = { .key = key, .from = "192.0.2.1" };

	snprintf(key, sizeof(key), "ssh-ed25519 %s", name);
	memset(ret, 0x55, sizeof(*ret)); /* every member must be written */
	return authz_ask(a, &p, ret);
}

static void test_gateway_members(void **state)
{
	static struct authz_answer ans; /* 8 KiB: not on the stack */
	struct authz a;

	assert_int_equal(authz_init(&a, sock_path), 0);

	/* A broker before gateways: no grant, not a gateway. */
	assert_int_equal(ask(&a, "old", &ans), 1);
	assert_string_equal(ans.fingerprint, "SHA256:test");
	assert_string_equal(ans.comment, "someone@test");
	assert_string_equal(ans.grant, "");
	assert_false(ans.gateway);

	assert_int_equal(ask(&a, "gateway", &ans), 1);
	assert_string_equal(ans.grant, "consoles=\"web*:rw\",break");
	assert_true(ans.gateway);

	assert_int_equal(ask(&a, "user", &ans), 1);
	assert_string_equal(ans.grant, "consoles=\"db01:ro\"");
	assert_false(ans.gateway);

	assert_int_equal(ask(&a, "longest", &ans), 1);
	assert_int_equal(strlen(ans.grant), AUTHZ_GRANT_MAX);

	/* Unusable answers: refused, never cut; the next question gets a new connection. */
	assert_int_equal(ask(&a, "toolong", &ans), -EPROTO);
	assert_int_equal(ask(&a, "user", &ans), 1);
	assert_int_equal(ask(&a, "grant-number", &ans), -EPROTO);
	assert_int_equal(ask(&a, "gateway-string", &ans), -EPROTO);
	assert_int_equal(ask(&a, "gateway", &ans), 1);
	assert_true(ans.gateway);

	assert_int_equal(ask(&a, "denied", &ans), 0);
	authz_done(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gateway_members),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
