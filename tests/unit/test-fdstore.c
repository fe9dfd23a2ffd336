/* SPDX-License-Identifier: MIT */
/*
 * The fd store's names (fdstore.h): console keys escaped so that systemd
 * takes them (no ':', nothing outside [A-Za-z0-9._-] but %XX), the
 * con-/ring- prefixes, the bounds, and the parser that sorts what systemd
 * passes back.  Then pushing and removing against a NOTIFY_SOCKET of our
 * own: the messages systemd gets and the fd that goes with them.  And a
 * start with fds passed as systemd passes them (3, 4, 5 with LISTEN_FDS,
 * LISTEN_FDNAMES and LISTEN_PID): a kept ring and socket adopted, what the
 * guest wrote meanwhile drained into the ring, a stranger removed, the
 * pair claimed with everything in its header.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <fcntl.h>
#include <systemd/sd-event.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdstore.h"

static void test_key(void **state)
{
	char buf[FDSTORE_KEY_MAX + 1], dec[512];

	assert_int_equal(fdstore_key(NULL, NULL, "web-01", buf, sizeof(buf)), 6);
	assert_string_equal(buf, "web-01");
	/* ':' and anything unusual are escaped, so the name is one systemd accepts. */
	assert_true(fdstore_key(NULL, NULL, "vm:serial0", buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "vm%3Aserial0");
	assert_true(fdstore_key("8d6f0a1e-0000-4000-8000-000000000001", "serial0", "vm:serial0",
				buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "8d6f0a1e-0000-4000-8000-000000000001%3Aserial0");
	assert_true(fdstore_key(NULL, "serial0", "a b/\xc3\xa9%", buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "a%20b%2F%C3%A9%25");
	assert_int_equal(fdstore_key_decode(buf, dec, sizeof(dec)), 7);
	assert_string_equal(dec, "a b/\xc3\xa9%");
	assert_int_equal(fdstore_key(NULL, NULL, "", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(fdstore_key(NULL, NULL, NULL, buf, sizeof(buf)), -EINVAL);
}

static void test_key_bounds(void **state)
{
	char name[FDSTORE_KEY_MAX + 2], buf[FDSTORE_KEY_MAX + 1], full[FDSTORE_NAME_MAX + 1];

	memset(name, 'a', FDSTORE_KEY_MAX);
	name[FDSTORE_KEY_MAX] = '\0';
	assert_int_equal(fdstore_key(NULL, NULL, name, buf, sizeof(buf)), FDSTORE_KEY_MAX);
	assert_int_equal(fdstore_name(FDSTORE_RING, buf, full, sizeof(full)), FDSTORE_NAME_MAX);
	name[FDSTORE_KEY_MAX] = 'a';
	name[FDSTORE_KEY_MAX + 1] = '\0';
	assert_int_equal(fdstore_key(NULL, NULL, name, buf, sizeof(buf)), -ENAMETOOLONG);
	assert_string_equal(buf, "");
	/* An escape is not cut in half at the bound. */
	memset(name, 'a', FDSTORE_KEY_MAX - 2);
	name[FDSTORE_KEY_MAX - 2] = ':';
	name[FDSTORE_KEY_MAX - 1] = '\0';
	assert_int_equal(fdstore_key(NULL, NULL, name, buf, sizeof(buf)), -ENAMETOOLONG);
	/* A small buffer is refused, never overrun. */
	assert_int_equal(fdstore_key(NULL, NULL, "abcdef", buf, 4), -ENAMETOOLONG);
}

static void test_key_valid(void **state)
{
	assert_true(fdstore_key_valid("a", 1));
	assert_true(fdstore_key_valid("vm%3Aserial0", 12));
	assert_false(fdstore_key_valid("x%3a", 4));  /* lower case: not how keys are written */
	assert_false(fdstore_key_valid("x%41", 4));  /* 'A' needs no escape */
	assert_false(fdstore_key_valid("", 0));
	assert_false(fdstore_key_valid("vm:serial0", 10));
	assert_false(fdstore_key_valid("a%3", 3));
	assert_false(fdstore_key_valid("a%G0", 4));
	assert_false(fdstore_key_valid("a%00b", 5));
	assert_false(fdstore_key_valid("a b", 3));
	assert_false(fdstore_key_valid("a\nb", 3));
}

static void test_parse_name(void **state)
{
	const char *key = NULL;
	char buf[64];

	assert_int_equal(fdstore_parse_name("con-vm%3Aserial0", &key), FDSTORE_CON);
	assert_string_equal(key, "vm%3Aserial0");
	assert_int_equal(fdstore_parse_name("ring-web", &key), FDSTORE_RING);
	assert_string_equal(key, "web");
	assert_int_equal(fdstore_parse_name("ttyhubd.socket", NULL), FDSTORE_OTHER);
	assert_int_equal(fdstore_parse_name("stored", NULL), FDSTORE_OTHER);
	assert_int_equal(fdstore_parse_name("con-", NULL), FDSTORE_OTHER);
	assert_int_equal(fdstore_parse_name("ring-a:b", NULL), FDSTORE_OTHER);
	assert_int_equal(fdstore_parse_name("ring-a%2", NULL), FDSTORE_OTHER);
	assert_int_equal(fdstore_parse_name("Con-a", NULL), FDSTORE_OTHER);
	/* Round trip. */
	assert_int_equal(fdstore_name(FDSTORE_CON, "web", buf, sizeof(buf)), 7);
	assert_string_equal(buf, "con-web");
	assert_int_equal(fdstore_name(FDSTORE_OTHER, "web", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(fdstore_name(FDSTORE_RING, "a:b", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(fdstore_name(FDSTORE_RING, "web", buf, 8), -ENAMETOOLONG);
}

/* One datagram from the notify socket, with the fd it carried (or -1). */
static void receive(int sock, char *msg, size_t size, int *ret_fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { msg, size - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	ssize_t n = recvmsg(sock, &mh, MSG_DONTWAIT);

	assert_true(n > 0);
	msg[n] = '\0';
	*ret_fd = -1;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(ret_fd, CMSG_DATA(c), sizeof(int));
}

static void test_push_remove(void **state)
{
	char dir[] = "/tmp/ttyhub-fdstore-XXXXXX", path[64], msg[512];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int sock, fd, pipefd[2];
	struct stat a, b;
	const int owner1 = 1, owner2 = 2;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/notify", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(sock >= 0);
	assert_int_equal(bind(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", path, 1);
	setenv("FDSTORE", "2", 1);
	unsetenv("LISTEN_FDS");
	assert_int_equal(fdstore_start(NULL, 4096), 0);
	assert_true(fdstore_enabled());
	assert_int_equal(fdstore_take_listen_fd(), -EBADF);
	assert_int_equal(pipe(pipefd), 0);

	assert_int_equal(fdstore_push("con-web", pipefd[0], false, &owner1), 0);
	receive(sock, msg, sizeof(msg), &fd);
	assert_string_equal(msg, "FDSTORE=1\nFDNAME=con-web\nFDPOLL=0");
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &a), 0);
	assert_int_equal(fstat(pipefd[0], &b), 0);
	assert_true(a.st_ino == b.st_ino);
	close(fd);
	/* Pushed once: the same name again is refused without a message. */
	assert_int_equal(fdstore_push("con-web", pipefd[0], false, &owner2), -EEXIST);
	assert_int_equal(fdstore_push("ring-web", pipefd[1], true, &owner1), 0);
	receive(sock, msg, sizeof(msg), &fd);
	assert_string_equal(msg, "FDSTORE=1\nFDNAME=ring-web");
	close(fd);
	/* $FDSTORE=2: a third is refused (and warned about) instead of lost silently. */
	assert_int_equal(fdstore_push("ring-other", pipefd[1], true, &owner2), -ENOSPC);
	/* Only the owner removes a name. */
	fdstore_remove("con-web", &owner2);
	assert_true(recv(sock, msg, sizeof(msg), MSG_DONTWAIT) < 0);
	fdstore_remove("con-web", &owner1);
	receive(sock, msg, sizeof(msg), &fd);
	assert_string_equal(msg, "FDSTOREREMOVE=1\nFDNAME=con-web");
	assert_int_equal(fd, -1);
	/* Frozen (shutting down): nothing leaves the store. */
	fdstore_freeze();
	fdstore_remove("ring-web", &owner1);
	assert_true(recv(sock, msg, sizeof(msg), MSG_DONTWAIT) < 0);
	fdstore_done();

	close(pipefd[0]);
	close(pipefd[1]);
	close(sock);
	unlink(path);
	rmdir(dir);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("FDSTORE");
}

static int notify_socket(char *dir, char *path, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int sock;

	assert_non_null(mkdtemp(dir));
	snprintf(path, size, "%s/notify", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(sock >= 0);
	assert_int_equal(bind(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", path, 1);
	return sock;
}

static void test_start_and_claim(void **state)
{
	char dir[] = "/tmp/ttyhub-fdstore-XXXXXX", path[64], msg[512], pid[16];
	uint8_t lease[RING_LEASE_SIZE] = { 9, 9, 9 }, got[RING_LEASE_SIZE];
	struct ring r, kept;
	sd_event *e = NULL;
	struct iovec iov[2];
	int sock, sp[2], pipefd[2], con = -1, fd;
	uint64_t epoch;

	/* fds 3..5 are where systemd puts what it passes: they must be free here. */
	for (int i = 3; i <= 5; i++)
		if (fcntl(i, F_GETFD) >= 0)
			skip();
	/* Held until the dup2()s below, so nothing made meanwhile lands there. */
	for (int i = 3; i <= 5; i++)
		assert_int_equal(open("/dev/null", O_RDONLY), i);
	sock = notify_socket(dir, path, sizeof(path));
	assert_true(sd_event_default(&e) >= 0);
	assert_int_equal(ring_init(&r, 4096), 0);
	ring_write(&r, "before ", 7);
	epoch = ring_epoch(&r);
	ring_set_lease(&r, lease);
	ring_set_identity(&r, NULL, NULL, "web", "/run/web.sock");
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(pipe(pipefd), 0);
	/* The guest writes while nobody reads. */
	assert_int_equal(write(sp[1], "during", 6), 6);
	assert_int_equal(dup2(ring_fd(&r), 3), 3);
	assert_int_equal(dup2(sp[0], 4), 4);
	assert_int_equal(dup2(pipefd[0], 5), 5);
	close(sp[0]);
	close(pipefd[0]);
	ring_done(&r);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "3", 1);
	setenv("LISTEN_FDNAMES", "ring-web:con-web:junk", 1);
	unsetenv("FDSTORE");

	assert_int_equal(fdstore_start(e, 4096), 0);
	assert_null(getenv("LISTEN_FDS"));
	/* Not a listening socket: no broker socket; the stranger is closed and removed. */
	assert_int_equal(fdstore_take_listen_fd(), -EBADF);
	assert_true(fcntl(5, F_GETFD) < 0);
	receive(sock, msg, sizeof(msg), &fd);
	assert_string_equal(msg, "FDSTOREREMOVE=1\nFDNAME=junk");
	assert_int_equal(fdstore_claim("other", &sock, &kept, &con), -ENOENT);
	assert_int_equal(fdstore_claim("web", &sock, &kept, &con), 0);
	assert_true(con >= 0);
	/* Same ring, same epoch, the lease and identity, and the bytes of the gap. */
	assert_int_equal(ring_epoch(&kept), epoch);
	assert_true(ring_get_lease(&kept, got));
	assert_memory_equal(got, lease, RING_LEASE_SIZE);
	assert_string_equal(ring_stored_path(&kept), "/run/web.sock");
	assert_int_equal(ring_head(&kept), 13);
	assert_int_equal(ring_peek(&kept, 0, 64, iov), 13);
	assert_memory_equal(iov[0].iov_base, "before during", 13);
	/* Claimed once. */
	assert_int_equal(fdstore_claim("web", &sock, &r, &fd), -ENOENT);
	/* The claimer owns the entries: removing the socket sends FDSTOREREMOVE. */
	fdstore_remove("con-web", &sock);
	receive(sock, msg, sizeof(msg), &fd);
	assert_string_equal(msg, "FDSTOREREMOVE=1\nFDNAME=con-web");
	fdstore_release_orphans(NULL, 0);
	assert_true(recv(sock, msg, sizeof(msg), MSG_DONTWAIT) < 0);
	fdstore_done();

	ring_done(&kept);
	close(con);
	close(sp[1]);
	close(pipefd[1]);
	close(sock);
	unlink(path);
	rmdir(dir);
	unsetenv("NOTIFY_SOCKET");
	sd_event_unref(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_key_bounds),
		cmocka_unit_test(test_key_valid),
		cmocka_unit_test(test_parse_name),
		cmocka_unit_test(test_push_remove),
		cmocka_unit_test(test_start_and_claim),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
