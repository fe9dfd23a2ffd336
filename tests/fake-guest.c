/* SPDX-License-Identifier: MIT */
/*
 * fake-guest: a synthetic guest that imitates a QEMU socket chardev
 * (server=on,wait=off) and measures whether its consumer ever blocks it.
 *
 * Model.  One UNIX stream listener (backlog 1).  Like QEMU, at most one
 * client is served at a time: while a client is connected the listener is
 * not polled, so further connect()s succeed but sit in the kernel backlog
 * and receive nothing until the current client goes away.  A client that
 * closes (or half-closes: read() returns 0) is dropped, as QEMU does.
 *
 * Output is a stream of numbered lines, each exactly --line-length bytes:
 *
 *	"<tag> <seq, 12 decimal digits> " filler... "\n"
 *
 * where the filler byte at column i (0-based, within the line) is
 * 'a' + (seq + i) % 26 (seq as printed, i.e. modulo 10^12).  Lines are
 * generated only while a client is connected, a chunk (about 64 KiB of whole
 * lines) at a time.  When a client disconnects, the unsent rest of the chunk
 * is discarded and the counter is rewound to the first line not completely written, so the next client
 * starts at a line boundary and no line number is skipped.  With --echo,
 * received bytes are queued (bounded; input is not read while the queue is
 * full, like a guest not reading its UART) and sent at the next line
 * boundary (the rest of the line chunk is dropped and regenerated later), so
 * lines are only interrupted at boundaries.
 *
 * Writes are non-blocking.  A write that returns EAGAIN or is short starts
 * a "block"; it ends when poll() reports POLLOUT (or the client goes away
 * or the program stops).  A blocked guest generates nothing, like a guest
 * stalled on a busy UART.  Statistics sampled while a block is in progress
 * include it so far.
 *
 * --write-size caps every send(): 1 imitates QEMU's isa-serial, which hands
 * its chardev one byte per write (the kernel then buffers only a few hundred
 * bytes for a reader that is away), 4096 a virtio-console burst.
 *
 * --rate paces output with a token bucket (burst of 10 ms worth, at least
 * one line) refilled on every wake-up; waits are at least 1 ms.  --duration
 * counts wall-clock time from start, or from the first accepted client with
 * --wait-client.  --bytes counts every byte written (echo included) and
 * stops after exactly that many, possibly in the middle of a line.
 *
 * Signals are taken through a signalfd: SIGTERM/SIGINT stop, SIGUSR1 writes
 * the statistics (atomically: tmp file + rename) and goes on.  SIGPIPE is
 * ignored and sends use MSG_NOSIGNAL.  The socket path is created
 * atomically (bound and listening under a temporary name, then renamed)
 * so a consumer that sees the path can connect at once; it is removed at
 * exit, as QEMU does.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NSEC_PER_SEC 1000000000ULL
#define NSEC_PER_MSEC 1000000ULL

#define FG_CHUNK_MAX (64 * 1024)	/* bytes of whole lines generated at once */
#define FG_TAG_MAX 32
#define FG_SEQ_DIGITS 12
#define FG_SEQ_MOD 1000000000000ULL	/* 10^FG_SEQ_DIGITS */
#define FG_HDR_EXTRA (1 + FG_SEQ_DIGITS + 1)	/* ' ' seq ' ' */
#define FG_ECHO_MAX (1024 * 1024)	/* bound on queued echo bytes */
#define FG_INPUT_CHUNK (64 * 1024)
#define FG_PUMP_MAX (1024 * 1024)	/* bytes written per loop turn before polling */
#define FG_SLOW_BLOCK_NS (10 * NSEC_PER_MSEC)
#define FG_BURST_NS (10 * NSEC_PER_MSEC)
#define FG_TICK_NS NSEC_PER_MSEC

static const char *arg_socket;
static uint64_t arg_rate;		/* bytes per second, 0 = unpaced */
static double arg_duration = -1;	/* seconds, < 0 = no limit */
static uint64_t arg_bytes;
static bool arg_bytes_set;
static size_t arg_line_length = 64;
static const char *arg_stats;		/* NULL = stdout */
static const char *arg_input_log;
static bool arg_echo;
static bool arg_wait_client;
static const char *arg_tag = "fg";
static size_t arg_write_size;		/* bytes per send(), 0 = as much as fits */

struct fake_guest_stats {
	uint64_t bytes_written;
	uint64_t lines_written;
	uint64_t max_block_ns;
	uint64_t total_block_ns;
	uint64_t blocks_over_10ms;
	uint64_t input_bytes;
	uint64_t clients_accepted;
};

struct fake_guest {
	int listen_fd;		/* owned */
	int client_fd;		/* owned, -EBADF while no client */
	int signal_fd;		/* owned */
	int input_log_fd;	/* owned, -EBADF without --input-log */
	bool sock_created;	/* we created arg_socket: unlink it at exit */
	dev_t sock_dev;
	ino_t sock_ino;

	struct fake_guest_stats stats;

	char *filler;		/* owned, line_length + 26 bytes of 'a'..'z' repeating */
	char *out;		/* owned, out_cap bytes: the chunk being sent */
	size_t out_cap;
	size_t out_len;
	size_t out_off;		/* bytes of out already written */
	bool out_is_echo;	/* out holds echoed input, not lines */
	uint64_t out_seq;	/* number of the first line in out */
	uint64_t seq_next;	/* number of the next line to generate */

	char *echo;		/* owned, FG_ECHO_MAX bytes (only with --echo) */
	size_t echo_off;
	size_t echo_len;
	char *inbuf;		/* owned, FG_INPUT_CHUNK bytes */

	bool blocked;
	uint64_t block_start_ns;

	double tokens;
	uint64_t tokens_ns;

	bool clock_started;
	uint64_t start_ns;
	bool stopping;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void fake_guest_warn(const char *what, int err)
{
	fprintf(stderr, "fake-guest: %s: %s\n", what, strerror(err < 0 ? -err : err));
}

/* Pure: writes line number seq into p[0..len), len >= tag_len + FG_HDR_EXTRA + 1. */
static void fake_guest_fill_line(char *p, size_t len, const char *tag, size_t tag_len,
				 const char *filler, uint64_t seq)
{
	uint64_t v = seq % FG_SEQ_MOD;
	size_t hdr = tag_len + FG_HDR_EXTRA;
	int i;

	memcpy(p, tag, tag_len);
	p[tag_len] = ' ';
	for (i = FG_SEQ_DIGITS; i > 0; i--) {
		p[tag_len + (size_t)i] = (char)('0' + v % 10);
		v /= 10;
	}
	p[hdr - 1] = ' ';
	/* filler[j] == 'a' + j % 26, so column c gets 'a' + (printed seq + c) % 26 */
	memcpy(p + hdr, filler + (seq % FG_SEQ_MOD + hdr) % 26, len - 1 - hdr);
	p[len - 1] = '\n';
}

static int parse_u64(const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -errno;
	if (*end)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_seconds(const char *s, double *ret)
{
	char *end;
	double v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno)
		return -errno;
	if (*end || !isfinite(v) || v < 0)
		return -EINVAL;
	*ret = v;
	return 0;
}

static void fake_guest_usage(FILE *f)
{
	fputs("usage: fake-guest --socket PATH [--rate BYTES_PER_SEC] [--duration SECONDS]\n"
	      "                  [--bytes N] [--line-length N] [--stats FILE] [--input-log FILE]\n"
	      "                  [--echo] [--wait-client] [--tag STRING] [--write-size BYTES]\n", f);
}

/* Returns 1 to run, 0 to exit successfully (--help), -EINVAL on bad usage (message printed). */
static int fake_guest_parse_argv(int argc, char **argv)
{
	enum {
		OPT_SOCKET = 0x100, OPT_RATE, OPT_DURATION, OPT_BYTES, OPT_LINE_LENGTH,
		OPT_STATS, OPT_INPUT_LOG, OPT_ECHO, OPT_WAIT_CLIENT, OPT_TAG, OPT_WRITE_SIZE,
		OPT_HELP,
	};
	static const struct option options[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "bytes", required_argument, NULL, OPT_BYTES },
		{ "line-length", required_argument, NULL, OPT_LINE_LENGTH },
		{ "stats", required_argument, NULL, OPT_STATS },
		{ "input-log", required_argument, NULL, OPT_INPUT_LOG },
		{ "echo", no_argument, NULL, OPT_ECHO },
		{ "wait-client", no_argument, NULL, OPT_WAIT_CLIENT },
		{ "tag", required_argument, NULL, OPT_TAG },
		{ "write-size", required_argument, NULL, OPT_WRITE_SIZE },
		{ "help", no_argument, NULL, OPT_HELP },
		{}
	};
	struct sockaddr_un sa;
	uint64_t v;
	size_t i, tag_len;
	int c, idx = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", options, &idx)) >= 0) {
		switch (c) {
		case OPT_SOCKET:
			arg_socket = optarg;
			break;
		case OPT_RATE:
			if (parse_u64(optarg, &arg_rate) < 0)
				goto bad_value;
			break;
		case OPT_DURATION:
			if (parse_seconds(optarg, &arg_duration) < 0 || arg_duration > 1e9)
				goto bad_value;
			break;
		case OPT_BYTES:
			if (parse_u64(optarg, &arg_bytes) < 0)
				goto bad_value;
			arg_bytes_set = true;
			break;
		case OPT_LINE_LENGTH:
			if (parse_u64(optarg, &v) < 0 || v > FG_CHUNK_MAX)
				goto bad_value;
			arg_line_length = (size_t)v;
			break;
		case OPT_STATS:
			arg_stats = optarg;
			break;
		case OPT_INPUT_LOG:
			arg_input_log = optarg;
			break;
		case OPT_ECHO:
			arg_echo = true;
			break;
		case OPT_WAIT_CLIENT:
			arg_wait_client = true;
			break;
		case OPT_TAG:
			arg_tag = optarg;
			break;
		case OPT_WRITE_SIZE:
			if (parse_u64(optarg, &v) < 0 || v == 0 || v > FG_CHUNK_MAX)
				goto bad_value;
			arg_write_size = (size_t)v;
			break;
		case OPT_HELP:
			fake_guest_usage(stdout);
			return 0;
		default:
			if (optopt)
				fprintf(stderr, "fake-guest: option '%s' is missing its value or"
					" takes none (try --help)\n", argv[optind - 1]);
			else
				fprintf(stderr, "fake-guest: unknown option '%s' (try --help)\n",
					argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "fake-guest: unexpected argument '%s' (try --help)\n",
			argv[optind]);
		return -EINVAL;
	}
	if (!arg_socket || !*arg_socket) {
		fprintf(stderr, "fake-guest: --socket PATH is required (try --help)\n");
		return -EINVAL;
	}
	if (strlen(arg_socket) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "fake-guest: --socket path longer than %zu bytes\n",
			sizeof(sa.sun_path) - 1);
		return -EINVAL;
	}
	tag_len = strlen(arg_tag);
	if (tag_len < 1 || tag_len > FG_TAG_MAX) {
		fprintf(stderr, "fake-guest: --tag must have 1 to %d characters\n", FG_TAG_MAX);
		return -EINVAL;
	}
	for (i = 0; i < tag_len; i++) {
		if (arg_tag[i] > ' ' && arg_tag[i] <= '~')
			continue;
		fprintf(stderr, "fake-guest: --tag must be printable ASCII without spaces\n");
		return -EINVAL;
	}
	if (arg_line_length < tag_len + FG_HDR_EXTRA + 1) {
		fprintf(stderr, "fake-guest: --line-length must be at least %zu for this tag\n",
			tag_len + FG_HDR_EXTRA + 1);
		return -EINVAL;
	}
	return 1;

bad_value:
	fprintf(stderr, "fake-guest: invalid value '%s' for --%s (try --help)\n", optarg,
		options[idx].name);
	return -EINVAL;
}

static double fake_guest_elapsed_s(const struct fake_guest *g, uint64_t now)
{
	if (!g->clock_started)
		return 0;
	return (double)(now - g->start_ns) / NSEC_PER_SEC;
}

/* Formats the statistics (including a block still in progress) as one JSON line. */
static int fake_guest_format_stats(const struct fake_guest *g, uint64_t now, char *buf,
				   size_t size)
{
	struct fake_guest_stats s = g->stats;
	int n;

	if (g->blocked) {
		uint64_t d = now - g->block_start_ns;

		s.total_block_ns += d;
		if (d > s.max_block_ns)
			s.max_block_ns = d;
		if (d > FG_SLOW_BLOCK_NS)
			s.blocks_over_10ms++;
	}
	n = snprintf(buf, size,
		     "{\"bytes_written\":%" PRIu64 ",\"lines_written\":%" PRIu64
		     ",\"max_block_ms\":%.3f,\"total_block_ms\":%.3f,\"blocks_over_10ms\":%" PRIu64
		     ",\"input_bytes\":%" PRIu64 ",\"clients_accepted\":%" PRIu64
		     ",\"elapsed_s\":%.6f}\n",
		     s.bytes_written, s.lines_written, (double)s.max_block_ns / NSEC_PER_MSEC,
		     (double)s.total_block_ns / NSEC_PER_MSEC, s.blocks_over_10ms, s.input_bytes,
		     s.clients_accepted, fake_guest_elapsed_s(g, now));
	if (n < 0 || (size_t)n >= size)
		return -ENOBUFS;
	return n;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int fake_guest_write_stats(const struct fake_guest *g)
{
	char buf[512], tmp[PATH_MAX];
	int fd, n, r;

	n = fake_guest_format_stats(g, now_ns(), buf, sizeof(buf));
	if (n < 0)
		return n;
	if (!arg_stats) {
		r = write_all(STDOUT_FILENO, buf, (size_t)n);
		return r;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", arg_stats, (long)getpid()) >=
	    sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	r = write_all(fd, buf, (size_t)n);
	if (close(fd) < 0 && r >= 0)
		r = -errno;
	if (r >= 0 && rename(tmp, arg_stats) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

static void fake_guest_block_begin(struct fake_guest *g, uint64_t now)
{
	g->blocked = true;
	g->block_start_ns = now;
}

static void fake_guest_block_end(struct fake_guest *g, uint64_t now)
{
	uint64_t d;

	if (!g->blocked)
		return;
	g->blocked = false;
	d = now - g->block_start_ns;
	g->stats.total_block_ns += d;
	if (d > g->stats.max_block_ns)
		g->stats.max_block_ns = d;
	if (d > FG_SLOW_BLOCK_NS)
		g->stats.blocks_over_10ms++;
}

/* Drops the unsent rest of the chunk, rewinding to the first line not completely written. */
static void fake_guest_discard_out(struct fake_guest *g)
{
	if (!g->out_is_echo && g->out_off < g->out_len)
		g->seq_next = g->out_seq + g->out_off / arg_line_length;
	g->out_len = g->out_off = 0;
	g->out_is_echo = false;
}

static void fake_guest_disconnect(struct fake_guest *g, uint64_t now)
{
	if (g->client_fd < 0)
		return;
	fake_guest_block_end(g, now);
	close(g->client_fd);
	g->client_fd = -EBADF;
	fake_guest_discard_out(g);
	g->echo_off = g->echo_len = 0;
}

static uint64_t fake_guest_bytes_left(const struct fake_guest *g)
{
	if (!arg_bytes_set)
		return UINT64_MAX;
	return arg_bytes - g->stats.bytes_written;
}

/* Prepares the next chunk: queued echo first, else whole lines. */
static void fake_guest_refill(struct fake_guest *g)
{
	uint64_t left = fake_guest_bytes_left(g);
	size_t tag_len = strlen(arg_tag), n, i;

	g->out_off = g->out_len = 0;
	g->out_is_echo = false;
	if (left == 0)
		return;
	if (g->echo_len > 0) {
		n = g->echo_len < g->out_cap ? g->echo_len : g->out_cap;
		if (n > left)
			n = (size_t)left;
		memcpy(g->out, g->echo + g->echo_off, n);
		g->echo_off += n;
		g->echo_len -= n;
		if (g->echo_len == 0)
			g->echo_off = 0;
		g->out_len = n;
		g->out_is_echo = true;
		return;
	}
	n = g->out_cap / arg_line_length;
	if ((uint64_t)n * arg_line_length > left)
		n = (size_t)((left + arg_line_length - 1) / arg_line_length);
	g->out_seq = g->seq_next;
	for (i = 0; i < n; i++)
		fake_guest_fill_line(g->out + i * arg_line_length, arg_line_length, arg_tag,
				     tag_len, g->filler, g->seq_next++);
	g->out_len = n * arg_line_length;
	if (g->out_len > left)
		g->out_len = (size_t)left;	/* --bytes ends inside this line */
}

static void fake_guest_refill_tokens(struct fake_guest *g, uint64_t now)
{
	double cap;

	if (!arg_rate)
		return;
	g->tokens += (double)arg_rate * (double)(now - g->tokens_ns) / NSEC_PER_SEC;
	g->tokens_ns = now;
	cap = (double)arg_rate * FG_BURST_NS / NSEC_PER_SEC;
	if (cap < (double)arg_line_length)
		cap = (double)arg_line_length;
	if (g->tokens > cap)
		g->tokens = cap;
}

static void fake_guest_account(struct fake_guest *g, size_t n)
{
	size_t before = g->out_off, after = g->out_off + n;

	if (!g->out_is_echo)
		g->stats.lines_written += after / arg_line_length - before / arg_line_length;
	g->out_off = after;
	g->stats.bytes_written += n;
	if (arg_rate)
		g->tokens -= (double)n;
}

/*
 * Writes as much as pacing and the socket allow.  Returns 1 if more could be
 * written at once (the per-turn bound was hit), 0 otherwise.
 */
static int fake_guest_pump(struct fake_guest *g, uint64_t now)
{
	size_t budget = FG_PUMP_MAX;

	fake_guest_refill_tokens(g, now);
	while (g->client_fd >= 0 && !g->blocked) {
		size_t want;
		ssize_t n;

		if (g->out_off == g->out_len) {
			fake_guest_refill(g);
			if (g->out_len == 0) {
				g->stopping = true;	/* --bytes reached */
				return 0;
			}
		}
		if (budget == 0)
			return 1;
		want = g->out_len - g->out_off;
		if (g->echo_len > 0 && !g->out_is_echo) {
			/* echo goes out at the next line boundary */
			size_t part = g->out_off % arg_line_length;

			if (part == 0) {
				fake_guest_discard_out(g);
				continue;
			}
			if (want > arg_line_length - part)
				want = arg_line_length - part;
		}
		if (want > budget)
			want = budget;
		if (arg_write_size && want > arg_write_size)
			want = arg_write_size;
		if (arg_rate) {
			if (g->tokens < 1)
				return 0;
			if ((double)want > g->tokens)
				want = (size_t)g->tokens;
		}
		n = send(g->client_fd, g->out + g->out_off, want, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				fake_guest_block_begin(g, now);
				return 0;
			}
			fake_guest_disconnect(g, now);
			return 0;
		}
		fake_guest_account(g, (size_t)n);
		budget -= (size_t)n;
		if ((size_t)n < want)
			fake_guest_block_begin(g, now);
		if (arg_bytes_set && g->stats.bytes_written >= arg_bytes) {
			g->stopping = true;
			return 0;
		}
	}
	return 0;
}

static void fake_guest_log_input(struct fake_guest *g, const char *p, size_t len)
{
	int r;

	if (g->input_log_fd < 0)
		return;
	r = write_all(g->input_log_fd, p, len);
	if (r < 0) {
		fake_guest_warn("writing --input-log (disabled)", r);
		close(g->input_log_fd);
		g->input_log_fd = -EBADF;
	}
}

static size_t fake_guest_echo_room(const struct fake_guest *g)
{
	return FG_ECHO_MAX - g->echo_len;
}

static void fake_guest_on_input(struct fake_guest *g, uint64_t now)
{
	size_t want = FG_INPUT_CHUNK;
	char *dst = g->inbuf;
	ssize_t n;

	if (arg_echo) {
		if (fake_guest_echo_room(g) < want)
			want = fake_guest_echo_room(g);
		if (want == 0)
			return;
		if (g->echo_off + g->echo_len + want > FG_ECHO_MAX) {
			memmove(g->echo, g->echo + g->echo_off, g->echo_len);
			g->echo_off = 0;
		}
		dst = g->echo + g->echo_off + g->echo_len;
	}
	n = recv(g->client_fd, dst, want, MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		fake_guest_disconnect(g, now);
		return;
	}
	if (n == 0) {
		/* like QEMU's tcp_chr_read(): EOF from the client ends the connection */
		fake_guest_disconnect(g, now);
		return;
	}
	g->stats.input_bytes += (uint64_t)n;
	fake_guest_log_input(g, dst, (size_t)n);
	if (arg_echo)
		g->echo_len += (size_t)n;
}

static void fake_guest_on_accept(struct fake_guest *g, uint64_t now)
{
	int fd;

	fd = accept4(g->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			fake_guest_warn("accept", errno);
		return;
	}
	g->client_fd = fd;
	g->stats.clients_accepted++;
	g->tokens = 0;
	g->tokens_ns = now;
	if (!g->clock_started) {
		g->clock_started = true;
		g->start_ns = now;
	}
}

/* Returns 0 to go on, 1 to stop. */
static int fake_guest_on_signal(struct fake_guest *g)
{
	struct signalfd_siginfo si;
	ssize_t n;
	int r;

	n = read(g->signal_fd, &si, sizeof(si));
	if (n != (ssize_t)sizeof(si))
		return 0;
	if (si.ssi_signo == SIGUSR1) {
		r = fake_guest_write_stats(g);
		if (r < 0)
			fake_guest_warn("writing statistics", r);
		return 0;
	}
	return 1;
}

static bool fake_guest_time_up(const struct fake_guest *g, uint64_t now, uint64_t *ret_left)
{
	uint64_t limit, used;

	if (arg_duration < 0 || !g->clock_started)
		return false;
	limit = (uint64_t)(arg_duration * NSEC_PER_SEC);
	used = now - g->start_ns;
	if (used >= limit)
		return true;
	*ret_left = limit - used;
	return false;
}

static int fake_guest_run(struct fake_guest *g)
{
	for (;;) {
		struct pollfd pfd[3];
		struct timespec ts, *tsp = NULL;
		uint64_t now = now_ns(), timeout = UINT64_MAX, left = 0;
		int more = 0, npfd = 0, r;

		if (g->stopping || fake_guest_time_up(g, now, &left))
			break;
		if (arg_duration >= 0 && g->clock_started)
			timeout = left;

		if (g->client_fd >= 0 && !g->blocked) {
			more = fake_guest_pump(g, now);
			if (g->stopping)
				break;
			if (more) {
				timeout = 0;
			} else if (g->client_fd >= 0 && !g->blocked && arg_rate) {
				uint64_t wait = FG_TICK_NS;
				double need = 1 - g->tokens;

				if (need > 0 && need * NSEC_PER_SEC / (double)arg_rate > wait)
					wait = (uint64_t)(need * NSEC_PER_SEC / (double)arg_rate);
				if (wait < timeout)
					timeout = wait;
			}
		}

		pfd[npfd++] = (struct pollfd){ .fd = g->signal_fd, .events = POLLIN };
		if (g->client_fd < 0) {
			pfd[npfd++] = (struct pollfd){ .fd = g->listen_fd, .events = POLLIN };
		} else {
			short ev = 0;

			if (!arg_echo || fake_guest_echo_room(g) > 0)
				ev |= POLLIN;
			if (g->blocked)
				ev |= POLLOUT;
			pfd[npfd++] = (struct pollfd){ .fd = g->client_fd, .events = ev };
		}
		if (timeout != UINT64_MAX) {
			ts.tv_sec = (time_t)(timeout / NSEC_PER_SEC);
			ts.tv_nsec = (long)(timeout % NSEC_PER_SEC);
			tsp = &ts;
		}
		r = ppoll(pfd, (nfds_t)npfd, tsp, NULL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		now = now_ns();
		if (pfd[0].revents & POLLIN && fake_guest_on_signal(g))
			break;
		if (npfd < 2 || !pfd[1].revents)
			continue;
		if (pfd[1].fd == g->listen_fd) {
			fake_guest_on_accept(g, now);
			continue;
		}
		if (pfd[1].revents & POLLOUT)
			fake_guest_block_end(g, now);
		if (pfd[1].revents & POLLIN)
			fake_guest_on_input(g, now);
		else if (pfd[1].revents & (POLLHUP | POLLERR | POLLNVAL))
			fake_guest_disconnect(g, now);
	}
	fake_guest_block_end(g, now_ns());
	return 0;
}

static int fake_guest_listen(struct fake_guest *g)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char tmp[sizeof(sa.sun_path)];
	const char *bind_path = arg_socket;
	struct stat st;
	int r;

	if (lstat(arg_socket, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			fprintf(stderr, "fake-guest: %s exists and is not a socket\n", arg_socket);
			return -EEXIST;
		}
		if (unlink(arg_socket) < 0)
			return -errno;
	}
	/* bind and listen under a temporary name, then rename: the path appears ready */
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.fg%ld", arg_socket, (long)getpid()) <
	    sizeof(tmp)) {
		bind_path = tmp;
		unlink(tmp);
	}
	g->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (g->listen_fd < 0)
		return -errno;
	memcpy(sa.sun_path, bind_path, strlen(bind_path) + 1);
	if (bind(g->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	if (listen(g->listen_fd, 1) < 0) {
		r = -errno;
		unlink(bind_path);
		return r;
	}
	if (bind_path != arg_socket && rename(bind_path, arg_socket) < 0) {
		r = -errno;
		unlink(bind_path);
		return r;
	}
	if (lstat(arg_socket, &st) == 0) {
		g->sock_created = true;
		g->sock_dev = st.st_dev;
		g->sock_ino = st.st_ino;
	}
	return 0;
}

/* Sets everything up; on failure prints what failed and returns -errno. */
static int fake_guest_open(struct fake_guest *g)
{
	sigset_t mask;
	size_t i;
	int r;

	g->out_cap = (FG_CHUNK_MAX / arg_line_length) * arg_line_length;
	g->out = malloc(g->out_cap);
	g->filler = malloc(arg_line_length + 26);
	g->inbuf = malloc(FG_INPUT_CHUNK);
	if (arg_echo)
		g->echo = malloc(FG_ECHO_MAX);
	if (!g->out || !g->filler || !g->inbuf || (arg_echo && !g->echo)) {
		fake_guest_warn("allocating buffers", ENOMEM);
		return -ENOMEM;
	}
	for (i = 0; i < arg_line_length + 26; i++)
		g->filler[i] = (char)('a' + i % 26);

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
		r = -errno;
		fake_guest_warn("sigprocmask", r);
		return r;
	}
	g->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (g->signal_fd < 0) {
		r = -errno;
		fake_guest_warn("signalfd", r);
		return r;
	}
	if (arg_input_log) {
		g->input_log_fd = open(arg_input_log,
				       O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0644);
		if (g->input_log_fd < 0) {
			r = -errno;
			fake_guest_warn(arg_input_log, r);
			return r;
		}
	}
	r = fake_guest_listen(g);
	if (r < 0) {
		if (r != -EEXIST)
			fake_guest_warn(arg_socket, r);
		return r;
	}
	if (!arg_wait_client) {
		g->clock_started = true;
		g->start_ns = now_ns();
	}
	return 0;
}

static void fake_guest_close(struct fake_guest *g)
{
	struct stat st;

	if (g->client_fd >= 0)
		close(g->client_fd);
	if (g->listen_fd >= 0)
		close(g->listen_fd);
	if (g->sock_created && lstat(arg_socket, &st) == 0 && st.st_dev == g->sock_dev &&
	    st.st_ino == g->sock_ino)
		unlink(arg_socket);
	if (g->signal_fd >= 0)
		close(g->signal_fd);
	if (g->input_log_fd >= 0)
		close(g->input_log_fd);
	free(g->out);
	free(g->filler);
	free(g->inbuf);
	free(g->echo);
}

int main(int argc, char **argv)
{
	struct fake_guest g = {
		.listen_fd = -EBADF,
		.client_fd = -EBADF,
		.signal_fd = -EBADF,
		.input_log_fd = -EBADF,
	};
	int r, ret = 0;

	r = fake_guest_parse_argv(argc, argv);
	if (r <= 0)
		return r < 0 ? 2 : 0;
	signal(SIGPIPE, SIG_IGN);

	r = fake_guest_open(&g);
	if (r < 0) {
		fake_guest_close(&g);
		return 1;
	}
	r = fake_guest_run(&g);
	if (r < 0) {
		fake_guest_warn("poll", r);
		ret = 1;
	}
	fake_guest_disconnect(&g, now_ns());
	r = fake_guest_write_stats(&g);
	if (r < 0) {
		fake_guest_warn("writing statistics", r);
		ret = 1;
	}
	fake_guest_close(&g);
	return ret;
}
