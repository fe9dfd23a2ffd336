/* SPDX-License-Identifier: MIT */
/*
 * wsload: the web benchmark's reader client, many WebSocket readers in one process.
 *
 * Model.  N streams, each one TCP connection to a WebSocket server on loopback, all
 * non-blocking and served by one epoll loop: connect, send the RFC 6455 upgrade request
 * (with --cookie, --origin and --protocol if given), read the response head, expect
 * "101", then read frames.  A browser is the real client; this is "N browsers" without
 * the rendering, so that the figures measure the servers and not the client.
 *
 * Two wires:
 *   --hello JSON (ttyhub-webd's `ttyhub.v1`): the first message sent is 0x01 HELLO JSON;
 *          0x81 OUTPUT messages (u64 start, u64 end, bytes) give their bytes to the stream's
 *          output and are acknowledged at once with 0x05 ACK u64 end (the page's flow
 *          control); 0x83 NOTICE becomes a "\n[notice JSON]\n" line in the output (so the
 *          line checker sees "dropped" notices as it sees the SSH front's); 0x82 STATUS is
 *          counted (a stream is "attached" after its first); 0x84 DETACHED and 0x85 ERROR end
 *          the stream with the JSON as its error.
 *   no --hello (websockify's binary relay): every data message's payload is console bytes.
 * Pings are answered with pongs; a close frame ends the stream.
 *
 * Output: stream i writes its console bytes to the i-th --out FD (a pipe the caller reads,
 * e.g. into `sshload read --fd`, which checks fake-guest's numbered lines), or nowhere
 * with -n N.  A stream that ends closes its FD.  Client frames are masked as RFC 6455
 * requires.  --src-base B binds stream i to 127.0.0.(B + i / --per-src) so that a server's
 * per-address limit sees the readers as several hosts.
 *
 * Protocol on stdout (one line "WORD JSON"): "connected {...}" once every stream has its
 * upgrade answered (or failed), then a "snap {...}" per "mark" line read on stdin; "quit" or
 * end of input exits.  Errors: stderr, exit status 1 (2 for bad usage).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STREAMS_MAX 4096
#define COOKIES_MAX 64
#define RBUF_SIZE (1024 * 1024)   /* one whole frame must fit (ttyhub-webd: 64 KiB) */
#define WBUF_SIZE (64 * 1024)
#define HEAD_MAX 8192
#define ERR_MAX 160

enum state { S_CONNECTING, S_HEAD, S_OPEN, S_DONE };

struct stream {
	int fd;
	int out;                /* -1: discard */
	enum state state;
	bool failed;            /* ended before the upgrade was answered */
	uint8_t *rbuf;
	size_t rlen;
	uint8_t wbuf[WBUF_SIZE];
	size_t wlen;
	bool want_out;
	uint8_t msg_type;       /* first byte of the message being reassembled */
	bool in_msg;
	uint64_t bytes;         /* console bytes delivered */
	uint64_t msgs;
	uint64_t status;
	uint64_t notices;
	uint64_t ack;           /* last OUTPUT end acknowledged */
	char err[ERR_MAX];
};

static struct stream streams[STREAMS_MAX];
static int nstreams;
static int epfd = -1;
static const char *arg_host = "127.0.0.1";
static int arg_port;
static const char *arg_path = "/ws";
static const char *arg_protocol;
static const char *arg_origin;
static const char *arg_hello;
static const char *cookies[COOKIES_MAX];
static int ncookies;
static int arg_src_base;
static int arg_per_src = 40;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "wsload: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void stream_end(struct stream *s, const char *why)
{
	if (s->state == S_DONE)
		return;
	if (s->state != S_OPEN)
		s->failed = true;
	if (why && !s->err[0])
		snprintf(s->err, sizeof(s->err), "%s", why);
	s->state = S_DONE;
	if (s->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
		close(s->fd);
		s->fd = -1;
	}
	if (s->out >= 0) {
		close(s->out);
		s->out = -1;
	}
}

static void stream_watch(struct stream *s)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };
	bool want = s->state == S_CONNECTING || s->wlen > 0;

	if (want == s->want_out)
		return;
	s->want_out = want;
	if (want)
		ev.events |= EPOLLOUT;
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
		die("epoll_ctl");
}

static void stream_flush(struct stream *s)
{
	while (s->wlen > 0 && s->state != S_DONE) {
		ssize_t n = send(s->fd, s->wbuf, s->wlen, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			stream_end(s, strerror(errno));
			return;
		}
		memmove(s->wbuf, s->wbuf + n, s->wlen - (size_t)n);
		s->wlen -= (size_t)n;
	}
	if (s->state != S_DONE)
		stream_watch(s);
}

static int stream_queue(struct stream *s, const void *p, size_t len)
{
	if (len > sizeof(s->wbuf) - s->wlen) {
		stream_end(s, "send buffer full (the server does not read)");
		return -1;
	}
	memcpy(s->wbuf + s->wlen, p, len);
	s->wlen += len;
	return 0;
}

/* One masked client frame (FIN set). */
static void stream_send_frame(struct stream *s, int opcode, const uint8_t *p, size_t len)
{
	uint8_t h[14];
	size_t hl = 2;
	uint32_t key = (uint32_t)random();
	uint8_t m[4] = { key >> 24, key >> 16, key >> 8, key };
	uint8_t body[256];

	if (len > sizeof(body))
		return;
	h[0] = 0x80 | (uint8_t)opcode;
	if (len < 126) {
		h[1] = 0x80 | (uint8_t)len;
	} else {
		h[1] = 0x80 | 126;
		h[2] = (uint8_t)(len >> 8);
		h[3] = (uint8_t)len;
		hl = 4;
	}
	memcpy(h + hl, m, 4);
	hl += 4;
	for (size_t i = 0; i < len; i++)
		body[i] = p[i] ^ m[i % 4];
	if (stream_queue(s, h, hl) < 0 || stream_queue(s, body, len) < 0)
		return;
	stream_flush(s);
}

static void stream_output(struct stream *s, const uint8_t *p, size_t len)
{
	s->bytes += len;
	while (len > 0 && s->out >= 0) {
		ssize_t n = write(s->out, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			close(s->out);   /* the checker went away: keep reading, discard */
			s->out = -1;
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* A data frame's payload; FIRST: it starts a message; FIN: it ends one. */
static void stream_data(struct stream *s, const uint8_t *p, size_t len, bool first, bool fin)
{
	if (!arg_hello) {
		stream_output(s, p, len);
		return;
	}
	if (first) {
		if (len == 0) {
			stream_end(s, "empty message");
			return;
		}
		s->msg_type = p[0];
		s->msgs++;
		p++;
		len--;
		if (s->msg_type == 0x81) {
			if (len < 16) {
				stream_end(s, "short OUTPUT");
				return;
			}
			s->ack = get_u64(p + 8);
			p += 16;
			len -= 16;
		}
	}
	switch (s->msg_type) {
	case 0x81:
		stream_output(s, p, len);
		if (fin) {
			uint8_t a[9] = { 0x05 };

			put_u64(a + 1, s->ack);
			stream_send_frame(s, 2, a, sizeof(a));
		}
		break;
	case 0x82:
		if (first)
			s->status++;
		break;
	case 0x83:
		if (first) {
			s->notices++;
			stream_output(s, (const uint8_t *)"\n[notice ", 9);
		}
		stream_output(s, p, len);
		if (fin)
			stream_output(s, (const uint8_t *)"]\n", 2);
		break;
	case 0x84:
	case 0x85: {
		char e[ERR_MAX];

		snprintf(e, sizeof(e), "%s %.*s", s->msg_type == 0x84 ? "DETACHED" : "ERROR",
			 (int)(len < 120 ? len : 120), (const char *)p);
		stream_end(s, e);
		break;
	}
	default:
		break;
	}
}

/* Parse every whole frame in rbuf. */
static void stream_frames(struct stream *s)
{
	size_t off = 0;

	while (s->state == S_OPEN) {
		const uint8_t *f = s->rbuf + off;
		size_t avail = s->rlen - off, hl = 2;
		uint64_t len;
		uint8_t mask[4] = { 0 };
		bool masked;
		int op;

		if (avail < 2)
			break;
		op = f[0] & 0x0f;
		masked = f[1] & 0x80;
		len = f[1] & 0x7f;
		if (len == 126) {
			if (avail < 4)
				break;
			len = (uint64_t)f[2] << 8 | f[3];
			hl = 4;
		} else if (len == 127) {
			if (avail < 10)
				break;
			len = get_u64(f + 2);
			hl = 10;
		}
		if (masked) {
			if (avail < hl + 4)
				break;
			memcpy(mask, f + hl, 4);
			hl += 4;
		}
		if (len > RBUF_SIZE - hl) {
			stream_end(s, "frame larger than the read buffer");
			return;
		}
		if (avail < hl + len)
			break;
		uint8_t *p = (uint8_t *)f + hl;

		if (masked)
			for (uint64_t i = 0; i < len; i++)
				p[i] ^= mask[i % 4];
		bool fin = f[0] & 0x80;

		switch (op) {
		case 0x0:
			if (s->in_msg)
				stream_data(s, p, len, false, fin);
			s->in_msg = !fin;
			break;
		case 0x1:
		case 0x2:
			stream_data(s, p, len, true, fin);
			s->in_msg = !fin;
			break;
		case 0x8:
			stream_send_frame(s, 0x8, p, len > 125 ? 0 : len);
			stream_end(s, "closed by the server");
			return;
		case 0x9:
			stream_send_frame(s, 0xa, p, len > 125 ? 0 : len);
			break;
		default:
			break;
		}
		off += hl + len;
	}
	if (s->state == S_DONE)
		return;
	memmove(s->rbuf, s->rbuf + off, s->rlen - off);
	s->rlen -= off;
}

static void stream_head(struct stream *s)
{
	uint8_t *end = memmem(s->rbuf, s->rlen, "\r\n\r\n", 4);
	size_t hl;

	if (!end) {
		if (s->rlen >= HEAD_MAX)
			stream_end(s, "response head too long");
		return;
	}
	hl = (size_t)(end - s->rbuf) + 4;
	if (s->rlen < 12 || memcmp(s->rbuf + 9, "101", 3) != 0) {
		char e[ERR_MAX];
		size_t l = hl < 100 ? hl : 100;

		snprintf(e, sizeof(e), "upgrade refused: %.*s", (int)l, (const char *)s->rbuf);
		for (char *c = e; *c; c++)
			if (*c == '\r' || *c == '\n')
				*c = ' ';
		stream_end(s, e);
		return;
	}
	memmove(s->rbuf, s->rbuf + hl, s->rlen - hl);
	s->rlen -= hl;
	s->state = S_OPEN;
	if (arg_hello) {
		size_t l = strlen(arg_hello);
		uint8_t m[256];

		if (l + 1 > sizeof(m)) {
			stream_end(s, "--hello too long");
			return;
		}
		m[0] = 0x01;
		memcpy(m + 1, arg_hello, l);
		stream_send_frame(s, 2, m, l + 1);
	}
	stream_frames(s);
}

static void stream_send_request(struct stream *s, int i)
{
	char req[2048];
	int n;

	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		     "Sec-WebSocket-Version: 13\r\n%s%s%s%s%s%s%s%s%s\r\n",
		     arg_path, arg_host, arg_port,
		     arg_protocol ? "Sec-WebSocket-Protocol: " : "", arg_protocol ? arg_protocol : "",
		     arg_protocol ? "\r\n" : "",
		     arg_origin ? "Origin: " : "", arg_origin ? arg_origin : "",
		     arg_origin ? "\r\n" : "",
		     ncookies ? "Cookie: " : "", ncookies ? cookies[i % ncookies] : "",
		     ncookies ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(req)) {
		stream_end(s, "request too long");
		return;
	}
	s->state = S_HEAD;
	if (stream_queue(s, req, (size_t)n) == 0)
		stream_flush(s);
}

static void stream_open(struct stream *s, int i)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)arg_port) };
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = s };
	int one = 1;

	s->rbuf = malloc(RBUF_SIZE);
	if (!s->rbuf)
		die("malloc");
	if (inet_pton(AF_INET, arg_host, &a.sin_addr) != 1) {
		fprintf(stderr, "wsload: --host must be an IPv4 address\n");
		exit(2);
	}
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		die("socket");
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (arg_src_base > 0) {
		struct sockaddr_in src = { .sin_family = AF_INET };

		src.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)(arg_src_base +
								     i / arg_per_src));
		if (bind(s->fd, (struct sockaddr *)&src, sizeof(src)) < 0)
			die("bind");
	}
	s->state = S_CONNECTING;
	s->want_out = true;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0)
		die("epoll_ctl");
	if (connect(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS)
		stream_end(s, strerror(errno));
}

static void stream_event(struct stream *s, uint32_t events, int i)
{
	if (s->state == S_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);

		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			stream_end(s, strerror(err));
			return;
		}
		stream_send_request(s, i);
		return;
	}
	if (events & EPOLLOUT)
		stream_flush(s);
	if (s->state == S_DONE || !(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		return;
	for (;;) {
		size_t room = (s->state == S_HEAD ? HEAD_MAX : RBUF_SIZE) - s->rlen;
		ssize_t n = recv(s->fd, s->rbuf + s->rlen, room, 0);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			stream_end(s, strerror(errno));
			return;
		}
		if (n == 0) {
			stream_end(s, "connection closed");
			return;
		}
		s->rlen += (size_t)n;
		if (s->state == S_HEAD)
			stream_head(s);
		else
			stream_frames(s);
		if (s->state == S_DONE || (size_t)n < room)
			return;
	}
}

static void json_str(const char *t)
{
	putchar('"');
	for (; *t; t++) {
		if (*t == '"' || *t == '\\')
			printf("\\%c", *t);
		else if ((unsigned char)*t < 0x20)
			printf("\\u%04x", *t);
		else
			putchar(*t);
	}
	putchar('"');
}

static void print_u64s(const char *name, size_t field)
{
	printf("\"%s\":[", name);
	for (int i = 0; i < nstreams; i++)
		printf("%s%" PRIu64, i ? "," : "", *(uint64_t *)((char *)&streams[i] + field));
	printf("]");
}

static void print_snap(const char *word, uint64_t t0)
{
	int open = 0, failed = 0, attached = 0;

	for (int i = 0; i < nstreams; i++) {
		open += streams[i].state == S_OPEN;
		failed += streams[i].failed;
		attached += arg_hello ? streams[i].status > 0 : streams[i].state == S_OPEN;
	}
	printf("%s {\"t\":%.6f,\"open\":%d,\"failed\":%d,\"attached\":%d,", word,
	       (double)(now_ns() - t0) / 1e9, open, failed, attached);
	print_u64s("bytes", offsetof(struct stream, bytes));
	printf(",");
	print_u64s("notices", offsetof(struct stream, notices));
	printf(",\"errors\":[");
	bool first = true;

	for (int i = 0; i < nstreams; i++) {
		if (!streams[i].err[0])
			continue;
		printf("%s", first ? "" : ",");
		json_str(streams[i].err);
		first = false;
	}
	printf("]}\n");
	fflush(stdout);
}

static void usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: wsload --port PORT [--host IPV4] [--path /ws] [--protocol P] [--origin URL]\n"
		"              [--cookie NAME=VALUE]... [--hello JSON] [--src-base B [--per-src K]]\n"
		"              (--out FD... | -n N)\n");
	exit(status);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "host", required_argument, NULL, 'H' },
		{ "path", required_argument, NULL, 'P' },
		{ "protocol", required_argument, NULL, 'r' },
		{ "origin", required_argument, NULL, 'o' },
		{ "cookie", required_argument, NULL, 'c' },
		{ "hello", required_argument, NULL, 'e' },
		{ "src-base", required_argument, NULL, 's' },
		{ "per-src", required_argument, NULL, 'k' },
		{ "out", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	int outs[STREAMS_MAX], nouts = 0, n = 0, c;
	bool connected = false;
	uint64_t t0;

	while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) >= 0) {
		switch (c) {
		case 'p': arg_port = atoi(optarg); break;
		case 'H': arg_host = optarg; break;
		case 'P': arg_path = optarg; break;
		case 'r': arg_protocol = optarg; break;
		case 'o': arg_origin = optarg; break;
		case 'c':
			if (ncookies == COOKIES_MAX)
				usage(2);
			cookies[ncookies++] = optarg;
			break;
		case 'e': arg_hello = optarg; break;
		case 's': arg_src_base = atoi(optarg); break;
		case 'k': arg_per_src = atoi(optarg); break;
		case 'O':
			if (nouts == STREAMS_MAX)
				usage(2);
			outs[nouts++] = atoi(optarg);
			break;
		case 'n': n = atoi(optarg); break;
		case 'h': usage(0); break;
		default: usage(2);
		}
	}
	if (nouts)
		n = nouts;
	if (arg_port <= 0 || n <= 0 || n > STREAMS_MAX || arg_per_src <= 0 ||
	    arg_src_base + (n - 1) / arg_per_src > 254)
		usage(2);
	srandom((unsigned)now_ns());
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1");
	if (fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK) < 0)
		die("fcntl stdin");
	struct epoll_event in = { .events = EPOLLIN, .data.ptr = NULL };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &in) < 0)
		die("epoll_ctl stdin");
	t0 = now_ns();
	nstreams = n;
	for (int i = 0; i < n; i++) {
		streams[i].fd = -1;
		streams[i].out = nouts ? outs[i] : -1;
		stream_open(&streams[i], i);
	}
	char line[256];
	size_t llen = 0;

	for (;;) {
		struct epoll_event ev[64];
		int k = epoll_wait(epfd, ev, 64, 100);

		if (k < 0 && errno != EINTR)
			die("epoll_wait");
		for (int j = 0; j < k; j++) {
			if (ev[j].data.ptr == NULL) {
				ssize_t r = read(0, line + llen, sizeof(line) - 1 - llen);

				if (r == 0)
					return 0;
				if (r < 0)
					continue;
				llen += (size_t)r;
				char *nl;

				while ((nl = memchr(line, '\n', llen))) {
					*nl = 0;
					if (!strcmp(line, "quit"))
						return 0;
					if (!strcmp(line, "mark"))
						print_snap("snap", t0);
					llen -= (size_t)(nl + 1 - line);
					memmove(line, nl + 1, llen);
				}
				if (llen == sizeof(line) - 1)
					llen = 0;
				continue;
			}
			struct stream *s = ev[j].data.ptr;

			stream_event(s, ev[j].events, (int)(s - streams));
		}
		if (!connected) {
			int pending = 0;

			for (int i = 0; i < n; i++)
				pending += streams[i].state == S_CONNECTING ||
					   streams[i].state == S_HEAD;
			if (!pending) {
				connected = true;
				print_snap("connected", t0);
			}
		}
	}
}
