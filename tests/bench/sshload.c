/* SPDX-License-Identifier: MIT */
/*
 * sshload: the benchmark harness's load client (and a tiny synthetic guest).
 *
 * Model.  One process holds many streams: SSH sessions opened with libssh's
 * client API (one session channel each, a shell request, no pty), or file
 * descriptors inherited from the caller (pipes from `console -s`, `ssh` or
 * `socat` processes), or one UNIX socket.  Sessions are opened in blocking
 * mode by --parallel threads, then switched to non-blocking mode and served
 * by one epoll loop in the main thread: a ready session is pumped with
 * ssh_channel_poll() (libssh reads its socket 4 KiB at a time) while its raw
 * byte counter moves, at most PUMP_ROUNDS times, then the next one gets its
 * turn.  Channel data arrives through the data callback, which counts it
 * and, with checking on, parses it as fake-guest's numbered lines.
 *
 * Line checking (struct checker).  The stream is cut at '\n'.  From a '['
 * (never in a pattern line) to the end of its segment is a notice (ttyhub's
 * "[ttyhub] ..." lines, conserver's "[...]" messages) and is dropped; what
 * precedes a notice in a cut line, like any short segment, is held and joined
 * with the next segments that are not notices until it is a line long (a
 * line may be cut by several notices).  A line must be exactly
 * --line-length bytes: tag, space, 12 digits, space, filler, '\n' (one filler
 * byte is spot-checked).  Numbers must follow each other; a jump is lost
 * lines, "announced" when a notice containing "dropped" came since the last
 * good line, "silent" otherwise.  The bytes before the first '\n' are skipped.
 *
 * Sessions use TCP_NODELAY, so the client's own Nagle delays never show in a
 * figure.
 *
 * Modes (the first argument):
 *   read   N streams; prints "connected {...}", then a "snap {...}" line with
 *          per-stream counters for every "mark" line read on stdin; exits on
 *          "quit" or end of input.
 *   lat    one writer and N watchers: each keystroke (one byte) is sent when
 *          the previous one has reached every stream; the time from the write
 *          to the kernel's receive timestamp of the packet that carried it
 *          (SO_TIMESTAMPNS, peeked before libssh reads it) is recorded per
 *          stream, so the client's work on the other streams is not counted
 *          (the epoll wake-up time when there is no timestamp).  Prints
 *          "lat {...}".
 *   setup  COUNT sequential sessions: time from the TCP connect to the first
 *          console byte (outside notice lines), with the phases.  Prints
 *          "setup {...}".
 *   guest  serve a UNIX socket like a QEMU chardev (one client at a time;
 *          --multi: up to GUEST_CLIENTS_MAX at once): --greet TEXT is written
 *          on every accept, --echo echoes input at once.  Idle otherwise.
 *
 * Everything printed on stdout is one line "WORD JSON"; errors go to stderr
 * and give exit status 1 (2 for bad usage).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define NSEC_PER_SEC 1000000000ULL
#define NSEC_PER_MSEC 1000000ULL
#define SEQ_DIGITS 12
#define NOTICE_MAX 4096		/* longest notice line kept whole */
#define READ_CHUNK (256 * 1024)	/* per read() of an fd stream */
#define PUMP_ROUNDS 64		/* ssh_channel_poll() calls per ready session per turn */
#define MAX_STREAMS 100000
#define HIST_MAX 8192
#define GUEST_ECHO_MAX (64 * 1024)
#define GUEST_CLIENTS_MAX 1024

enum stream_kind { STREAM_SSH, STREAM_FD };

struct checker {
	size_t line_len;
	const char *tag;
	size_t tag_len;
	size_t cap;		/* of seg and pend */
	bool synced;		/* a '\n' was seen: segments are whole */
	uint8_t *seg;		/* owned: the segment being assembled across reads */
	size_t seg_len;
	bool seg_over;		/* the segment outgrew cap: it is bad */
	uint8_t *pend;		/* owned: a short segment waiting for its rest */
	size_t pend_len;
	bool pending;
	bool have_last;
	uint64_t last_seq;
	bool drop_notice;	/* a "dropped" notice since the last good line */
	uint8_t *hist;		/* owned, --debug-gaps: the last HIST_MAX bytes received */
	size_t hist_len;
	bool reported;
	uint64_t lines, lost_silent, lost_announced, gap_events, bad, notices, reorders;
};

struct stream {
	enum stream_kind kind;
	int idx;
	ssh_session ssh;	/* owned (SSH) */
	ssh_channel ch;		/* owned (SSH) */
	struct ssh_channel_callbacks_struct cb;
	struct ssh_counter_struct raw;	/* socket-level byte counter of the session */
	int fd;			/* the session's socket or the inherited fd */
	bool open;
	bool is_writer;
	char err[160];
	uint64_t bytes;
	uint64_t first_ns;	/* first byte */
	struct checker chk;
	/* lat mode */
	uint64_t ready_ns;	/* when epoll last reported the fd readable */
	uint64_t rx_rt;		/* kernel receive time of the oldest unread data (realtime) */
	bool lat_done;
	double lat_us;
	uint64_t stray;
};

struct options {
	const char *host;
	int port;
	const char *user;
	const char *watch_user;
	const char *writer_user;
	const char *key_path;
	const char *cipher;
	const char *unix_path;
	const char *socket_path;
	const char *greet;
	const char *tag;
	int n;
	int parallel;
	int count;
	int gap_min_ms, gap_max_ms;
	int timeout_ms;
	int settle_ms;
	size_t line_len;
	bool check;
	bool echo;
	bool multi;
	bool debug_gaps;
	int fds[4096];
	int n_fds;
};

static struct options opt = {
	.host = "127.0.0.1",
	.cipher = "aes128-gcm@openssh.com",
	.tag = "fg",
	.n = 1,
	.parallel = 4,
	.count = 50,
	.gap_min_ms = 2,
	.gap_max_ms = 10,
	.timeout_ms = 3000,
	.settle_ms = 500,
	.line_len = 64,
	.check = true,
};

static struct stream *streams;
static int n_streams;
static int epfd = -1;
static atomic_int next_conn;
static atomic_int conn_failed;
static atomic_int conn_done;

/* lat mode: the keystroke in flight */
static bool lat_active;
static uint8_t lat_want;
static uint64_t lat_sent_ns;
static uint64_t lat_sent_rt;	/* the same moment, CLOCK_REALTIME (kernel timestamps) */
static int lat_pending;
static uint64_t lat_stamped, lat_unstamped;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/*
 * The kernel's receive timestamp (SO_TIMESTAMPNS, CLOCK_REALTIME) of the first
 * unread byte of FD, without reading it; 0 if there is none.
 */
static uint64_t rx_stamp(int fd)
{
	char c, ctrl[CMSG_SPACE(sizeof(struct timespec))];
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl,
			    .msg_controllen = sizeof(ctrl) };
	struct cmsghdr *cm;

	if (recvmsg(fd, &m, MSG_PEEK | MSG_DONTWAIT) <= 0)
		return 0;
	for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
			struct timespec ts;

			memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
			return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
		}
	}
	return 0;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("sshload: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p)
		die("out of memory");
	return p;
}

/* ---- line checker ---- */

static void chk_init(struct checker *k)
{
	k->line_len = opt.line_len;
	k->tag = opt.tag;
	k->tag_len = strlen(opt.tag);
	k->cap = opt.line_len + NOTICE_MAX;
	k->seg = xcalloc(1, k->cap);
	k->pend = xcalloc(1, k->cap);
	if (opt.debug_gaps)
		k->hist = xcalloc(1, HIST_MAX);
}

/* --debug-gaps: the first silent gap of each stream goes to stderr with what preceded it. */
static void chk_report(struct checker *k, uint64_t seq)
{
	size_t i;

	if (!k->hist || k->reported)
		return;
	k->reported = true;
	fprintf(stderr, "sshload: silent gap %" PRIu64 " -> %" PRIu64 "; last %zu bytes:\n",
		k->last_seq, seq, k->hist_len);
	for (i = 0; i < k->hist_len; i++) {
		uint8_t b = k->hist[i];

		if (b == '\n')
			fputs("\\n\n", stderr);
		else if (b == '\r')
			fputs("\\r", stderr);
		else if (b < 32 || b > 126)
			fprintf(stderr, "\\x%02x", b);
		else
			fputc(b, stderr);
	}
	fputs("\n----\n", stderr);
}

static void chk_done(struct checker *k)
{
	free(k->seg);
	free(k->pend);
	free(k->hist);
	k->seg = k->pend = k->hist = NULL;
}

/* Returns the line's number, or -1 if S is not a well-formed pattern line. */
static int64_t chk_parse(const struct checker *k, const uint8_t *s, size_t len)
{
	uint64_t seq = 0;
	size_t i, h = k->tag_len;

	if (len != k->line_len || s[len - 1] != '\n' || memcmp(s, k->tag, h) != 0 ||
	    s[h] != ' ' || s[h + 1 + SEQ_DIGITS] != ' ')
		return -1;
	for (i = h + 1; i < h + 1 + SEQ_DIGITS; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		seq = seq * 10 + (uint64_t)(s[i] - '0');
	}
	/* filler column c holds 'a' + (seq + c) % 26; check the last one */
	if (len - 2 > h + 1 + SEQ_DIGITS && s[len - 2] != 'a' + (seq + len - 2) % 26)
		return -1;
	return (int64_t)seq;
}

static void chk_line(struct checker *k, const uint8_t *s, size_t len)
{
	int64_t r = chk_parse(k, s, len);
	uint64_t seq;

	if (r < 0) {
		k->bad++;
		return;
	}
	seq = (uint64_t)r;
	if (k->have_last) {
		if (seq > k->last_seq + 1) {
			uint64_t gap = seq - k->last_seq - 1;

			k->gap_events++;
			if (k->drop_notice) {
				k->lost_announced += gap;
			} else {
				k->lost_silent += gap;
				chk_report(k, seq);
			}
		} else if (seq <= k->last_seq) {
			k->reorders++;
		}
	}
	k->have_last = true;
	k->last_seq = seq;
	k->drop_notice = false;
	k->lines++;
}

/* Holds a piece of a line cut by a notice (without its end of line). */
static void chk_hold(struct checker *k, const uint8_t *p, size_t n)
{
	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	if (!k->pending)
		k->pend_len = 0;
	k->pending = true;
	if (k->pend_len + n > k->cap) {
		k->pend_len = k->cap + 1;	/* too long: judged bad when it ends */
		return;
	}
	memcpy(k->pend + k->pend_len, p, n);
	k->pend_len += n;
}

/*
 * One segment, '\n' included.  A '[' (never in a pattern line) starts a notice
 * that runs to the end of the segment: ttyhub writes "\n[ttyhub] ...\n" into a
 * cut line, conserver's client "[spying]\r\n" right after the cut.
 */
static void chk_segment(struct checker *k, const uint8_t *s, size_t len)
{
	const uint8_t *bracket = memchr(s, '[', len);

	if (bracket) {
		if (bracket > s)
			chk_hold(k, s, (size_t)(bracket - s));
		k->notices++;
		if (memmem(bracket, len - (size_t)(bracket - s), "dropped", 7))
			k->drop_notice = true;
		return;
	}
	if (k->pending) {
		if (chk_parse(k, s, len) >= 0) {
			/* the held piece was a cut line of its own (not counted before the first) */
			k->pending = false;
			k->bad += k->have_last;
			chk_line(k, s, len);
		} else if (k->pend_len + len < k->line_len) {
			chk_hold(k, s, len);	/* cut again by the next notice */
		} else if (k->pend_len + len <= k->cap) {
			k->pending = false;
			memcpy(k->pend + k->pend_len, s, len);
			chk_line(k, k->pend, k->pend_len + len);
		} else {
			k->pending = false;
			k->bad++;
		}
		return;
	}
	if (len < k->line_len) {
		if (len > 1)
			chk_hold(k, s, len);
		return;
	}
	chk_line(k, s, len);
}

static void chk_feed(struct checker *k, const uint8_t *p, size_t n)
{
	if (k->hist) {
		if (n >= HIST_MAX) {
			memcpy(k->hist, p + n - HIST_MAX, HIST_MAX);
			k->hist_len = HIST_MAX;
		} else {
			size_t keep = MIN(k->hist_len, HIST_MAX - n);

			memmove(k->hist, k->hist + k->hist_len - keep, keep);
			memcpy(k->hist + keep, p, n);
			k->hist_len = keep + n;
		}
	}
	while (n > 0) {
		const uint8_t *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) + 1 : n;

		if (!k->synced) {
			k->synced = nl != NULL;
		} else if (nl && k->seg_len == 0 && !k->seg_over) {
			chk_segment(k, p, take);
		} else {
			if (!k->seg_over && k->seg_len + take <= k->cap) {
				memcpy(k->seg + k->seg_len, p, take);
				k->seg_len += take;
			} else {
				k->seg_over = true;
			}
			if (nl) {
				if (k->seg_over)
					k->bad++;
				else
					chk_segment(k, k->seg, k->seg_len);
				k->seg_len = 0;
				k->seg_over = false;
			}
		}
		p += take;
		n -= take;
	}
}

/* ---- streams ---- */

static void stream_got(struct stream *st, const uint8_t *data, size_t len)
{
	if (len == 0)
		return;
	if (st->bytes == 0)
		st->first_ns = now_ns();
	st->bytes += len;
	if (opt.check)
		chk_feed(&st->chk, data, len);
	if (lat_active && !st->lat_done && memchr(data, lat_want, len)) {
		st->lat_done = true;
		if (st->rx_rt >= lat_sent_rt) {
			/* when the kernel queued it: the client's work on other streams is out */
			st->lat_us = (double)(st->rx_rt - lat_sent_rt) / 1000.0;
			lat_stamped++;
		} else {
			uint64_t t = st->ready_ns >= lat_sent_ns ? st->ready_ns : now_ns();

			st->lat_us = (double)(t - lat_sent_ns) / 1000.0;
			lat_unstamped++;
		}
		st->stray += len - 1;
		lat_pending--;
	} else if (lat_active) {
		st->stray += len;
	}
}

static int on_data(ssh_session s, ssh_channel ch, void *data, uint32_t len, int is_stderr,
		   void *userdata)
{
	stream_got(userdata, data, len);
	return (int)len;
}

static void on_eof(ssh_session s, ssh_channel ch, void *userdata)
{
	struct stream *st = userdata;

	snprintf(st->err, sizeof(st->err), "end of data from the server");
}

static void on_close(ssh_session s, ssh_channel ch, void *userdata)
{
	struct stream *st = userdata;

	if (!st->err[0])
		snprintf(st->err, sizeof(st->err), "channel closed by the server");
}

static ssh_key load_key(void)
{
	ssh_key key = NULL;

	if (!opt.key_path)
		die("--key is required");
	if (ssh_pki_import_privkey_file(opt.key_path, NULL, NULL, NULL, &key) != SSH_OK)
		die("cannot load the private key %s", opt.key_path);
	return key;
}

struct phases {
	uint64_t t0, kex, auth, open, shell;
};

/*
 * Opens an SSH session with a shell channel, in blocking mode.  With callbacks,
 * channel data goes to on_data() from the moment the channel exists.
 * Returns 0, or -1 with st->err set.
 */
static int ssh_stream_open(struct stream *st, ssh_key key, const char *user, bool callbacks,
			   struct phases *ph)
{
	int port = opt.port, zero = 0, one = 1, verbosity = SSH_LOG_NOLOG;
	long timeout = 30;
	bool no = false;
	ssh_session s;

	st->kind = STREAM_SSH;
	st->fd = -1;
	s = ssh_new();
	if (!s) {
		snprintf(st->err, sizeof(st->err), "ssh_new failed");
		return -1;
	}
	st->ssh = s;
	if (ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_HOST, opt.host) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_PORT, &port) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_USER, user) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_CIPHERS_C_S, opt.cipher) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_CIPHERS_S_C, opt.cipher) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, "/dev/null") < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_STRICTHOSTKEYCHECK, &zero) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeout) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_NODELAY, &one) < 0) {
		snprintf(st->err, sizeof(st->err), "options: %s", ssh_get_error(s));
		return -1;
	}
	st->raw = (struct ssh_counter_struct){ 0 };
	ssh_set_counters(s, &st->raw, NULL);
	if (ph)
		ph->t0 = now_ns();
	if (ssh_connect(s) != SSH_OK) {
		snprintf(st->err, sizeof(st->err), "connect: %s", ssh_get_error(s));
		return -1;
	}
	if (ph)
		ph->kex = now_ns();
	if (ssh_userauth_publickey(s, NULL, key) != SSH_AUTH_SUCCESS) {
		snprintf(st->err, sizeof(st->err), "auth: %s", ssh_get_error(s));
		return -1;
	}
	if (ph)
		ph->auth = now_ns();
	st->ch = ssh_channel_new(s);
	if (!st->ch) {
		snprintf(st->err, sizeof(st->err), "channel: %s", ssh_get_error(s));
		return -1;
	}
	if (callbacks) {
		st->cb = (struct ssh_channel_callbacks_struct){
			.userdata = st,
			.channel_data_function = on_data,
			.channel_eof_function = on_eof,
			.channel_close_function = on_close,
		};
		ssh_callbacks_init(&st->cb);
		ssh_set_channel_callbacks(st->ch, &st->cb);
	}
	if (ssh_channel_open_session(st->ch) != SSH_OK) {
		snprintf(st->err, sizeof(st->err), "open: %s", ssh_get_error(s));
		return -1;
	}
	if (ph)
		ph->open = now_ns();
	if (ssh_channel_request_shell(st->ch) != SSH_OK) {
		snprintf(st->err, sizeof(st->err), "shell: %s", ssh_get_error(s));
		return -1;
	}
	if (ph)
		ph->shell = now_ns();
	st->fd = ssh_get_fd(s);
	st->open = true;
	return 0;
}

static void stream_close(struct stream *st)
{
	if (st->fd >= 0 && epfd >= 0)
		epoll_ctl(epfd, EPOLL_CTL_DEL, st->fd, NULL);
	if (st->kind == STREAM_SSH) {
		if (st->ch) {
			ssh_channel_free(st->ch);
			st->ch = NULL;
		}
		if (st->ssh) {
			ssh_disconnect(st->ssh);
			ssh_free(st->ssh);
			st->ssh = NULL;
		}
	} else if (st->fd >= 0) {
		close(st->fd);
	}
	st->fd = -1;
	st->open = false;
}

static void *connect_thread(void *arg)
{
	ssh_key key = load_key();

	for (;;) {
		int i = atomic_fetch_add(&next_conn, 1);
		struct stream *st;

		if (i >= n_streams)
			break;
		st = &streams[i];
		if (ssh_stream_open(st, key, st->is_writer ? opt.writer_user : opt.user, true,
				    NULL) < 0) {
			atomic_fetch_add(&conn_failed, 1);
			fprintf(stderr, "sshload: session %d: %s\n", i, st->err);
			stream_close(st);
		}
		i = atomic_fetch_add(&conn_done, 1) + 1;
		if (i % 100 == 0)
			fprintf(stderr, "sshload: %d/%d sessions\n", i, n_streams);
	}
	ssh_key_free(key);
	return NULL;
}

static void connect_all(void)
{
	pthread_t th[64];
	int i, n = opt.parallel < 1 ? 1 : opt.parallel > 64 ? 64 : opt.parallel;

	for (i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, connect_thread, NULL) != 0)
			die("pthread_create failed");
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

static void stream_watch(struct stream *st, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = st };

	if (epoll_ctl(epfd, EPOLL_CTL_MOD, st->fd, &ev) < 0 &&
	    epoll_ctl(epfd, EPOLL_CTL_ADD, st->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
}

static uint32_t ssh_events(struct stream *st)
{
	return EPOLLIN | ((ssh_get_poll_flags(st->ssh) & SSH_WRITE_PENDING) ? EPOLLOUT : 0);
}

static void pump_ssh(struct stream *st)
{
	int i;

	for (i = 0; i < PUMP_ROUNDS && st->open; i++) {
		uint64_t before = st->raw.in_bytes;
		int rc = ssh_channel_poll(st->ch, 0);

		if (rc == SSH_ERROR || rc == SSH_EOF || !ssh_channel_is_open(st->ch) ||
		    !ssh_is_connected(st->ssh)) {
			if (!st->err[0])
				snprintf(st->err, sizeof(st->err), "%s", rc == SSH_EOF ? "end of data"
					 : ssh_get_error(st->ssh));
			stream_close(st);
			return;
		}
		if (st->raw.in_bytes == before)
			break;
	}
	stream_watch(st, ssh_events(st));
}

static void pump_fd(struct stream *st)
{
	static uint8_t buf[READ_CHUNK];
	int i;

	for (i = 0; i < 16; i++) {
		ssize_t n = read(st->fd, buf, sizeof(buf));

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			snprintf(st->err, sizeof(st->err), "%s", n == 0 ? "end of data" :
				 strerror(errno));
			stream_close(st);
			return;
		}
		stream_got(st, buf, (size_t)n);
		if ((size_t)n < sizeof(buf))
			return;
	}
}

static void add_streams_to_epoll(void)
{
	int i;

	for (i = 0; i < n_streams; i++) {
		struct stream *st = &streams[i];

		if (!st->open)
			continue;
		if (st->kind == STREAM_SSH) {
			ssh_set_blocking(st->ssh, 0);
			stream_watch(st, ssh_events(st));
		} else {
			fcntl(st->fd, F_SETFL, fcntl(st->fd, F_GETFL) | O_NONBLOCK);
			stream_watch(st, EPOLLIN);
		}
	}
}

/*
 * Serves ready streams until DEADLINE (ns, monotonic; 0: none) or, with
 * UNTIL_ECHOED, until the keystroke in flight reached every stream.  Returns
 * true when stdin is readable (WANT_STDIN, read mode).
 */
static bool serve(uint64_t deadline, bool until_echoed, bool want_stdin)
{
	struct epoll_event evs[256];

	for (;;) {
		uint64_t now = now_ns();
		int timeout, n, i;
		bool in = false;

		if (until_echoed && lat_pending <= 0)
			return false;
		if (deadline && now >= deadline)
			return false;
		timeout = deadline ? (int)((deadline - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC)
				   : -1;
		n = epoll_wait(epfd, evs, 256, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		now = now_ns();
		for (i = 0; i < n; i++) {
			struct stream *st = evs[i].data.ptr;

			if (!st) {
				in = true;
				continue;
			}
			st->ready_ns = now;
		}
		for (i = 0; i < n; i++) {
			struct stream *st = evs[i].data.ptr;

			if (!st || !st->open)
				continue;
			if (lat_active && !st->lat_done)
				st->rx_rt = rx_stamp(st->fd);
			if (st->kind == STREAM_SSH)
				pump_ssh(st);
			else
				pump_fd(st);
		}
		if (in && want_stdin)
			return true;
	}
}

/* ---- read mode ---- */

static double cpu_self(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void print_u64_array(const char *name, size_t offset)
{
	int i;

	printf(",\"%s\":[", name);
	for (i = 0; i < n_streams; i++)
		printf("%s%" PRIu64, i ? "," : "", *(const uint64_t *)((const char *)&streams[i] +
								      offset));
	printf("]");
}

static void print_snapshot(const char *word)
{
	uint64_t tot_bytes = 0, tot_lines = 0, silent = 0, announced = 0, bad = 0, notices = 0;
	uint64_t reorders = 0;
	int i, open = 0;

	for (i = 0; i < n_streams; i++) {
		struct stream *st = &streams[i];

		open += st->open;
		tot_bytes += st->bytes;
		tot_lines += st->chk.lines;
		silent += st->chk.lost_silent;
		announced += st->chk.lost_announced;
		bad += st->chk.bad;
		notices += st->chk.notices;
		reorders += st->chk.reorders;
	}
	printf("%s {\"t\":%.6f,\"cpu\":%.3f,\"streams\":%d,\"open\":%d,\"bytes_total\":%" PRIu64
	       ",\"lines_total\":%" PRIu64 ",\"lost_silent_total\":%" PRIu64
	       ",\"lost_announced_total\":%" PRIu64 ",\"bad_total\":%" PRIu64
	       ",\"notices_total\":%" PRIu64 ",\"reorders_total\":%" PRIu64,
	       word, (double)now_ns() / NSEC_PER_SEC, cpu_self(), n_streams, open, tot_bytes,
	       tot_lines, silent, announced, bad, notices, reorders);
	print_u64_array("bytes", offsetof(struct stream, bytes));
	print_u64_array("lines", offsetof(struct stream, chk.lines));
	print_u64_array("lost_silent", offsetof(struct stream, chk.lost_silent));
	print_u64_array("lost_announced", offsetof(struct stream, chk.lost_announced));
	print_u64_array("bad", offsetof(struct stream, chk.bad));
	print_u64_array("last_seq", offsetof(struct stream, chk.last_seq));
	printf(",\"errors\":[");
	for (i = 0, open = 0; i < n_streams; i++) {
		if (!streams[i].err[0] || streams[i].open)
			continue;
		if (open++ >= 10)
			break;
		printf("%s\"%d: %s\"", open > 1 ? "," : "", i, streams[i].err);
	}
	printf("]}\n");
	fflush(stdout);
}

/* Reads stdin commands; returns false on "quit" or end of input. */
static bool read_commands(void)
{
	static char buf[4096];
	static size_t len;
	ssize_t n = read(STDIN_FILENO, buf + len, sizeof(buf) - 1 - len);
	char *nl;

	if (n <= 0)
		return false;
	len += (size_t)n;
	buf[len] = '\0';
	while ((nl = strchr(buf, '\n'))) {
		*nl = '\0';
		if (strcmp(buf, "mark") == 0)
			print_snapshot("snap");
		else if (strcmp(buf, "quit") == 0)
			return false;
		len -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, len + 1);
	}
	if (len == sizeof(buf) - 1)
		len = 0;
	return true;
}

static int mode_read(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	uint64_t t0 = now_ns();
	int i;

	n_streams = opt.n_fds ? opt.n_fds : opt.n;
	if (n_streams < 1 || n_streams > MAX_STREAMS)
		die("bad number of streams %d", n_streams);
	streams = xcalloc((size_t)n_streams, sizeof(*streams));
	for (i = 0; i < n_streams; i++) {
		streams[i].idx = i;
		streams[i].fd = -1;
		chk_init(&streams[i].chk);
		if (opt.n_fds) {
			streams[i].kind = STREAM_FD;
			streams[i].fd = opt.fds[i];
			streams[i].open = true;
		}
	}
	if (!opt.n_fds) {
		if (!opt.port || !opt.user)
			die("--port and --user are required for SSH streams");
		connect_all();
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	add_streams_to_epoll();
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, STDIN_FILENO, &ev) < 0)
		die("stdin cannot be polled: %s", strerror(errno));
	printf("connected {\"ok\":%d,\"failed\":%d,\"seconds\":%.3f}\n",
	       n_streams - atomic_load(&conn_failed), atomic_load(&conn_failed),
	       (double)(now_ns() - t0) / NSEC_PER_SEC);
	fflush(stdout);
	for (;;) {
		serve(0, false, true);
		if (!read_commands())
			break;
	}
	for (i = 0; i < n_streams; i++) {
		stream_close(&streams[i]);
		chk_done(&streams[i].chk);
	}
	free(streams);
	return 0;
}

/* ---- lat mode ---- */

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		die("socket path too long: %s", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect %s: %s", path, strerror(errno));
	return fd;
}

static void print_double_array(const char *name, const double *v, size_t n, bool first)
{
	size_t i;

	printf("%s\"%s\":[", first ? "" : ",", name);
	for (i = 0; i < n; i++)
		printf("%s%.1f", i ? "," : "", v[i]);
	printf("]");
}

static void lat_send(struct stream *w, uint8_t c)
{
	lat_sent_rt = realtime_ns();
	lat_sent_ns = now_ns();
	if (w->kind == STREAM_SSH) {
		if (ssh_channel_write(w->ch, &c, 1) != 1)
			die("writing a keystroke: %s", ssh_get_error(w->ssh));
		if (ssh_get_poll_flags(w->ssh) & SSH_WRITE_PENDING)
			stream_watch(w, ssh_events(w));
	} else if (write(w->fd, &c, 1) != 1) {
		die("writing a keystroke: %s", strerror(errno));
	}
}

static int mode_lat(void)
{
	int i, k, nw = opt.n, timeouts = 0;
	double *wr, *wa, *wmax;
	size_t n_wa = 0;
	uint64_t stray = 0;

	if (opt.count < 1)
		die("--count must be at least 1");
	n_streams = 1 + (opt.watch_user ? nw : 0);
	streams = xcalloc((size_t)n_streams, sizeof(*streams));
	opt.check = false;
	for (i = 0; i < n_streams; i++) {
		streams[i].idx = i;
		streams[i].fd = -1;
	}
	streams[0].is_writer = true;
	if (opt.unix_path) {
		if (n_streams > 1)
			die("--unix takes no watchers");
		streams[0].kind = STREAM_FD;
		streams[0].fd = unix_connect(opt.unix_path);
		streams[0].open = true;
	} else {
		if (!opt.port || !opt.writer_user)
			die("--port and --writer-user are required");
		opt.user = opt.watch_user;
		connect_all();
		if (atomic_load(&conn_failed))
			die("%d sessions failed", atomic_load(&conn_failed));
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	add_streams_to_epoll();
	for (i = 0; i < n_streams; i++) {
		int one = 1;

		if (streams[i].open)
			setsockopt(streams[i].fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	}
	/* notices and replay drain away */
	serve(now_ns() + (uint64_t)opt.settle_ms * NSEC_PER_MSEC, false, false);
	wr = xcalloc((size_t)opt.count, sizeof(double));
	wmax = xcalloc((size_t)opt.count, sizeof(double));
	wa = xcalloc((size_t)opt.count * (size_t)(n_streams > 1 ? n_streams - 1 : 1),
		     sizeof(double));
	srand(12345);
	for (k = 0; k < opt.count; k++) {
		uint64_t gap;

		lat_want = (uint8_t)('a' + k % 26);
		lat_pending = 0;
		for (i = 0; i < n_streams; i++) {
			streams[i].lat_done = !streams[i].open;
			lat_pending += streams[i].open;
		}
		if (!streams[0].open)
			die("the writer's session ended: %s", streams[0].err);
		lat_active = true;
		lat_send(&streams[0], lat_want);
		serve(lat_sent_ns + (uint64_t)opt.timeout_ms * NSEC_PER_MSEC, true, false);
		lat_active = false;
		if (lat_pending > 0)
			timeouts++;
		wr[k] = streams[0].lat_done && streams[0].open ? streams[0].lat_us : -1;
		wmax[k] = 0;
		for (i = 1; i < n_streams; i++) {
			double v = streams[i].lat_done && streams[i].open ? streams[i].lat_us : -1;

			wa[n_wa++] = v;
			if (v < 0 || wmax[k] < 0)
				wmax[k] = -1;
			else if (v > wmax[k])
				wmax[k] = v;
		}
		gap = (uint64_t)(opt.gap_min_ms + (opt.gap_max_ms > opt.gap_min_ms ?
			rand() % (opt.gap_max_ms - opt.gap_min_ms + 1) : 0)) * NSEC_PER_MSEC;
		serve(now_ns() + gap, false, false);
	}
	for (i = 0; i < n_streams; i++)
		stray += streams[i].stray;
	printf("lat {");
	print_double_array("writer_us", wr, (size_t)opt.count, true);
	print_double_array("watch_us", wa, n_wa, false);
	print_double_array("watch_max_us", n_streams > 1 ? wmax : wr, (size_t)opt.count, false);
	printf(",\"timeouts\":%d,\"stray_bytes\":%" PRIu64 ",\"watchers\":%d,\"kernel_stamped\":%"
	       PRIu64 ",\"epoll_stamped\":%" PRIu64 "}\n", timeouts, stray, n_streams - 1,
	       lat_stamped, lat_unstamped);
	fflush(stdout);
	for (i = 0; i < n_streams; i++)
		stream_close(&streams[i]);
	free(wr);
	free(wa);
	free(wmax);
	free(streams);
	return timeouts ? 1 : 0;
}

/* ---- setup mode ---- */

/* Index of the first byte outside notice lines in P, or -1; STATE carries over. */
static ssize_t first_console_byte(const uint8_t *p, size_t n, int *state)
{
	size_t i;

	/* state: 0 at the beginning of a line, 1 inside a notice line */
	for (i = 0; i < n; i++) {
		if (*state == 1) {
			if (p[i] == '\n')
				*state = 0;
			continue;
		}
		if (p[i] == '[') {
			*state = 1;
			continue;
		}
		if (p[i] == '\r' || p[i] == '\n')
			continue;
		return (ssize_t)i;
	}
	return -1;
}

static int mode_setup(void)
{
	double *tot, *kex, *auth, *open_, *shell;
	ssh_key key = load_key();
	int k, failed = 0;

	if (!opt.port || !opt.user || opt.count < 1)
		die("--port, --user and --count are required");
	tot = xcalloc((size_t)opt.count, sizeof(double));
	kex = xcalloc((size_t)opt.count, sizeof(double));
	auth = xcalloc((size_t)opt.count, sizeof(double));
	open_ = xcalloc((size_t)opt.count, sizeof(double));
	shell = xcalloc((size_t)opt.count, sizeof(double));
	for (k = 0; k < opt.count; k++) {
		struct stream st = { .fd = -1 };
		struct phases ph = { 0 };
		uint8_t buf[16384];
		int state = 0;
		uint64_t first = 0, deadline;

		if (ssh_stream_open(&st, key, opt.user, false, &ph) < 0) {
			fprintf(stderr, "sshload: connection %d: %s\n", k, st.err);
			failed++;
			stream_close(&st);
			tot[k] = -1;
			continue;
		}
		deadline = ph.t0 + (uint64_t)opt.timeout_ms * NSEC_PER_MSEC;
		while (!first && now_ns() < deadline) {
			int n = ssh_channel_read_timeout(st.ch, buf, sizeof(buf), 0,
							 (int)((deadline - now_ns()) / NSEC_PER_MSEC) + 1);

			if (n < 0 || (n == 0 && ssh_channel_is_eof(st.ch)))
				break;
			if (n > 0 && first_console_byte(buf, (size_t)n, &state) >= 0)
				first = now_ns();
		}
		if (!first) {
			fprintf(stderr, "sshload: connection %d: no console byte\n", k);
			failed++;
			tot[k] = -1;
		} else {
			tot[k] = (double)(first - ph.t0) / 1000.0;
		}
		kex[k] = (double)(ph.kex - ph.t0) / 1000.0;
		auth[k] = (double)(ph.auth - ph.kex) / 1000.0;
		open_[k] = (double)(ph.open - ph.auth) / 1000.0;
		shell[k] = (double)(ph.shell - ph.open) / 1000.0;
		stream_close(&st);
		if (opt.gap_min_ms > 0)
			usleep((useconds_t)opt.gap_min_ms * 1000);
	}
	printf("setup {");
	print_double_array("first_byte_us", tot, (size_t)opt.count, true);
	print_double_array("kex_us", kex, (size_t)opt.count, false);
	print_double_array("auth_us", auth, (size_t)opt.count, false);
	print_double_array("open_us", open_, (size_t)opt.count, false);
	print_double_array("shell_us", shell, (size_t)opt.count, false);
	printf(",\"failed\":%d}\n", failed);
	fflush(stdout);
	ssh_key_free(key);
	free(tot);
	free(kex);
	free(auth);
	free(open_);
	free(shell);
	return failed ? 1 : 0;
}

/* ---- guest mode ---- */

static int guest_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char tmp[sizeof(sa.sun_path)];
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.t%ld", path, (long)getpid()) >= (int)sizeof(tmp) ||
	    strlen(path) >= sizeof(sa.sun_path))
		die("socket path too long: %s", path);
	unlink(tmp);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memcpy(sa.sun_path, tmp, strlen(tmp) + 1);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0 ||
	    rename(tmp, path) < 0)
		die("listening on %s: %s", path, strerror(errno));
	return fd;
}

static int mode_guest(void)
{
	static uint8_t buf[GUEST_ECHO_MAX];
	struct pollfd p[1 + GUEST_CLIENTS_MAX];
	int lfd, i, n_clients = 0, max = opt.multi ? GUEST_CLIENTS_MAX : 1;

	if (!opt.socket_path)
		die("--socket is required");
	lfd = guest_listen(opt.socket_path);
	for (;;) {
		/* like QEMU: the listener is not polled while the client slots are taken */
		p[0] = (struct pollfd){ .fd = n_clients < max ? lfd : -1, .events = POLLIN };
		if (poll(p, (nfds_t)(1 + n_clients), -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		for (i = 1; i <= n_clients; i++) {
			ssize_t n;

			if (!p[i].revents)
				continue;
			n = read(p[i].fd, buf, sizeof(buf));
			/* a blocking send: a guest echoing on a busy UART waits too */
			if (n <= 0 || (opt.echo && send(p[i].fd, buf, (size_t)n, MSG_NOSIGNAL) < 0)) {
				close(p[i].fd);
				p[i] = p[n_clients--];
				i--;
			}
		}
		if (p[0].revents & POLLIN) {
			int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			if (cfd < 0)
				continue;
			if (opt.greet)
				(void)!send(cfd, opt.greet, strlen(opt.greet), MSG_NOSIGNAL);
			p[++n_clients] = (struct pollfd){ .fd = cfd, .events = POLLIN };
		}
	}
	return 0;
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fputs("usage: sshload read  --port P --user U --key K [-n N] [--parallel K] [--cipher C]\n"
	      "                     [--line-length L] [--tag T] [--no-check] [--debug-gaps]\n"
	      "       sshload read  --fd FD [--fd FD]... [--line-length L] [--tag T] [--no-check]\n"
	      "       sshload lat   --port P --writer-user U --key K [--watch-user W -n N]\n"
	      "                     [--count K] [--gap-ms MIN:MAX] [--timeout-ms MS]\n"
	      "       sshload lat   --unix PATH [--count K] [--gap-ms MIN:MAX]\n"
	      "       sshload setup --port P --user U --key K [--count K] [--gap-ms MS]\n"
	      "       sshload guest --socket PATH [--greet TEXT] [--echo] [--multi]\n"
	      "  common: [--host H] (default 127.0.0.1)\n", f);
}

static int parse_int(const char *s, int lo, int hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi) {
		fprintf(stderr, "sshload: bad number '%s'\n", s);
		exit(2);
	}
	return (int)v;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	enum {
		O_HOST = 0x100, O_PORT, O_USER, O_WATCH_USER, O_WRITER_USER, O_KEY, O_CIPHER,
		O_UNIX, O_SOCKET, O_GREET, O_TAG, O_PARALLEL, O_COUNT, O_GAP, O_TIMEOUT,
		O_SETTLE, O_LINE, O_NOCHECK, O_ECHO, O_MULTI, O_FD, O_DEBUG_GAPS, O_HELP,
	};
	static const struct option options[] = {
		{ "host", required_argument, NULL, O_HOST },
		{ "port", required_argument, NULL, O_PORT },
		{ "user", required_argument, NULL, O_USER },
		{ "watch-user", required_argument, NULL, O_WATCH_USER },
		{ "writer-user", required_argument, NULL, O_WRITER_USER },
		{ "key", required_argument, NULL, O_KEY },
		{ "cipher", required_argument, NULL, O_CIPHER },
		{ "unix", required_argument, NULL, O_UNIX },
		{ "socket", required_argument, NULL, O_SOCKET },
		{ "greet", required_argument, NULL, O_GREET },
		{ "tag", required_argument, NULL, O_TAG },
		{ "parallel", required_argument, NULL, O_PARALLEL },
		{ "count", required_argument, NULL, O_COUNT },
		{ "gap-ms", required_argument, NULL, O_GAP },
		{ "timeout-ms", required_argument, NULL, O_TIMEOUT },
		{ "settle-ms", required_argument, NULL, O_SETTLE },
		{ "line-length", required_argument, NULL, O_LINE },
		{ "no-check", no_argument, NULL, O_NOCHECK },
		{ "echo", no_argument, NULL, O_ECHO },
		{ "multi", no_argument, NULL, O_MULTI },
		{ "debug-gaps", no_argument, NULL, O_DEBUG_GAPS },
		{ "fd", required_argument, NULL, O_FD },
		{ "help", no_argument, NULL, O_HELP },
		{}
	};
	const char *mode;
	char *colon;
	int c;

	if (argc < 2 || argv[1][0] == '-') {
		usage(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
		return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
	}
	mode = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "n:", options, NULL)) >= 0) {
		switch (c) {
		case 'n':
			opt.n = parse_int(optarg, 0, MAX_STREAMS);
			break;
		case O_HOST:
			opt.host = optarg;
			break;
		case O_PORT:
			opt.port = parse_int(optarg, 1, 65535);
			break;
		case O_USER:
			opt.user = optarg;
			break;
		case O_WATCH_USER:
			opt.watch_user = optarg;
			break;
		case O_WRITER_USER:
			opt.writer_user = optarg;
			break;
		case O_KEY:
			opt.key_path = optarg;
			break;
		case O_CIPHER:
			opt.cipher = optarg;
			break;
		case O_UNIX:
			opt.unix_path = optarg;
			break;
		case O_SOCKET:
			opt.socket_path = optarg;
			break;
		case O_GREET:
			opt.greet = optarg;
			break;
		case O_TAG:
			opt.tag = optarg;
			break;
		case O_PARALLEL:
			opt.parallel = parse_int(optarg, 1, 64);
			break;
		case O_COUNT:
			opt.count = parse_int(optarg, 0, 10000000);
			break;
		case O_GAP:
			colon = strchr(optarg, ':');
			if (colon) {
				*colon = '\0';
				opt.gap_max_ms = parse_int(colon + 1, 0, 100000);
			}
			opt.gap_min_ms = parse_int(optarg, 0, 100000);
			if (!colon || opt.gap_max_ms < opt.gap_min_ms)
				opt.gap_max_ms = opt.gap_min_ms;
			break;
		case O_TIMEOUT:
			opt.timeout_ms = parse_int(optarg, 1, 3600000);
			break;
		case O_SETTLE:
			opt.settle_ms = parse_int(optarg, 0, 3600000);
			break;
		case O_LINE:
			opt.line_len = (size_t)parse_int(optarg, 16, 65536);
			break;
		case O_NOCHECK:
			opt.check = false;
			break;
		case O_ECHO:
			opt.echo = true;
			break;
		case O_MULTI:
			opt.multi = true;
			break;
		case O_DEBUG_GAPS:
			opt.debug_gaps = true;
			break;
		case O_FD:
			if (opt.n_fds >= (int)(sizeof(opt.fds) / sizeof(opt.fds[0])))
				die("too many --fd");
			opt.fds[opt.n_fds++] = parse_int(optarg, 0, 1 << 20);
			break;
		case O_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sshload: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (strlen(opt.tag) + SEQ_DIGITS + 3 > opt.line_len) {
		fprintf(stderr, "sshload: --line-length too small for the tag\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	if (strcmp(mode, "read") == 0)
		return mode_read();
	if (strcmp(mode, "lat") == 0)
		return mode_lat();
	if (strcmp(mode, "setup") == 0)
		return mode_setup();
	if (strcmp(mode, "guest") == 0)
		return mode_guest();
	fprintf(stderr, "sshload: unknown mode '%s'\n", mode);
	usage(stderr);
	return 2;
}
