/* SPDX-License-Identifier: MIT */
/*
 * ttyhub: the local command-line front.
 *   ttyhub [--broker PATH] list [--json] | attach NAME [--ro|--force]
 *          [--replay N|all] [--escape PREFIX] [--resume EPOCH:OFFSET] |
 *          who NAME [--json] | break NAME | output NAME [--start N] [--json] |
 *          sysrq NAME KEY | nmi NAME | reset NAME [--yes] | powerdown NAME [--yes]
 * It talks the broker protocol over the broker socket, like every front.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "attach.h"
#include "escape.h"
#include "front.h"
#include "listing.h"
#include "log.h"
#include "proto.h"
#include "util.h"

#define DEFAULT_BROKER "/run/ttyhub/ttyhubd.sock"
#define REPLY_TIMEOUT_MS 10000
#define OUT_MAX (256 * 1024)
/* `output --json` collects the whole range in memory: bounded well above any ring. */
#define OUTPUT_JSON_MAX (256 * 1024 * 1024)

static const char *arg_broker;
static bool arg_json;
static bool arg_yes;
static bool arg_has_start;
static int64_t arg_start;
static struct attach_opts arg_attach = { .mode = ATTACH_RW, .replay = PROTO_REPLAY_DEFAULT };
static uint8_t arg_prefix[2] = { ESCAPE_DEFAULT_PREFIX0, ESCAPE_DEFAULT_PREFIX1 };

static void help(void)
{
	printf("Usage: ttyhub [--broker PATH] COMMAND\n\n"
	       "Commands:\n"
	       "  list [--json]                     consoles and their state\n"
	       "  attach NAME [--ro|--force] [--replay N|all] [--escape PREFIX]\n"
	       "              [--resume EPOCH:OFFSET]\n"
	       "                                    attach to a console (Ctrl-E c ? for help)\n"
	       "  who NAME [--json]                 who is attached, who writes\n"
	       "  break NAME                        send a serial break\n"
	       "  sysrq NAME KEY                    send a serial break and the SysRq KEY (0-9a-z)\n"
	       "  nmi NAME                          inject an NMI into the guest\n"
	       "  reset NAME [--yes]                reset the guest (asks on a terminal)\n"
	       "  powerdown NAME [--yes]            press the guest's power button (asks on a\n"
	       "                                    terminal)\n"
	       "  output NAME [--start N] [--json]  the console's stored output (N < 0: the last\n"
	       "                                    -N bytes)\n"
	       "  web-link NAME [--ro]              a one-time link to the console in a browser\n"
	       "                                    (when ttyhubd has a web URL)\n\n"
	       "NAME is VM, VM:ALIAS, UUID or UUID:ALIAS. The broker socket is --broker,\n"
	       "$TTYHUB_BROKER, or %s.\n",
	       DEFAULT_BROKER);
}

static const char *broker_path(void)
{
	return arg_broker ? arg_broker
			  : getenv("TTYHUB_BROKER") ? getenv("TTYHUB_BROKER") : DEFAULT_BROKER;
}

static int broker_connect(int *ret)
{
	const char *path = broker_path();
	int fd = front_connect(path, false);

	if (fd < 0) {
		fprintf(stderr, "ttyhub: cannot reach ttyhubd at %s: %s%s\n", path, strerror(-fd),
			fd == -ENOENT || fd == -ECONNREFUSED ? " (is ttyhubd running?)" : "");
		return fd;
	}
	*ret = fd;
	return 0;
}

/* Write the whole queue (the socket is blocking). */
static int flush_all(struct front *f)
{
	while (front_pending(f) > 0) {
		ssize_t n = front_flush(f);

		if (n < 0)
			return (int)n;
	}
	return 0;
}

/*
 * Wait for the next event that is not console data.  An `error` from the
 * broker is printed as it is (escaped) and ends the command.
 */
static int recv_event(struct front *f, struct front_event *ret)
{
	for (;;) {
		struct pollfd p = { .fd = f->fd, .events = POLLIN };
		int r;

		while ((r = front_next_event(f, ret)) > 0) {
			if (ret->type == FRONT_EV_DATA)
				continue;
			if (ret->type == FRONT_EV_ERROR) {
				const char *text = ret->text ? ret->text : "unknown error";
				char esc[600];

				fprintf(stderr, "ttyhub: %s\n",
					log_sanitize(text, strlen(text), esc, sizeof(esc)));
				return -EIO;
			}
			return 0;
		}
		if (r < 0) {
			fprintf(stderr, "ttyhub: bad reply from ttyhubd: %s\n", f->err);
			return r;
		}
		if (front_eof(f)) {
			fprintf(stderr, "ttyhub: ttyhubd closed the connection\n");
			return -ECONNRESET;
		}
		r = poll(&p, 1, REPLY_TIMEOUT_MS);
		if (r == 0) {
			fprintf(stderr, "ttyhub: no answer from ttyhubd\n");
			return -ETIMEDOUT;
		}
		if (front_fill(f) < 0) {
			fprintf(stderr, "ttyhub: lost the connection to ttyhubd\n");
			return -EIO;
		}
	}
}

/* Wait for an event of type want (notices and others before it are skipped). */
static int recv_reply(struct front *f, enum front_event_type want, struct front_event *ret)
{
	int r;

	do
		r = recv_event(f, ret);
	while (r >= 0 && ret->type != want);
	return r;
}

/* Send what was queued and wait for its answer. */
static int request(struct front *f, int queued, enum front_event_type want,
		   struct front_event *ret)
{
	int r = queued < 0 ? queued : flush_all(f);

	if (r < 0) {
		fprintf(stderr, "ttyhub: cannot send request: %s\n", strerror(-r));
		return r;
	}
	return recv_reply(f, want, ret);
}

/* Say hello; a refused peer hears why. */
static int session_open(struct front *f)
{
	struct front_event e;
	int r;

	/*
	 * A refused peer gets an error and the connection closed at once, so the
	 * hello may fail with EPIPE: read what the broker said either way.
	 */
	r = front_hello(f, "ttyhub", NULL);
	if (r >= 0)
		r = flush_all(f);
	if (recv_event(f, &e) < 0) {
		if (r < 0)
			fprintf(stderr, "ttyhub: cannot talk to ttyhubd: %s\n", strerror(-r));
		return r < 0 ? r : -EIO;
	}
	return 0;
}

static int verb_list(struct front *f, char **args)
{
	struct front_event e;
	json_t *consoles, *errors;
	int r;

	r = request(f, front_list(f, NULL), FRONT_EV_LIST, &e);
	if (r < 0)
		return r;
	consoles = json_object_get(e.msg, "consoles");
	errors = json_object_get(e.msg, "errors");
	if (arg_json) {
		json_t *out = json_pack("{s:O, s:O}", "consoles", consoles, "errors", errors);

		json_dumpf(out, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		printf("\n");
		json_decref(out);
	} else
		listing_print_consoles(stdout, consoles, errors, "\n");
	return 0;
}

static int verb_who(struct front *f, char **args)
{
	struct front_event e;
	int r;

	r = request(f, front_who(f, args[0]), FRONT_EV_WHO, &e);
	if (r < 0)
		return r;
	if (arg_json) {
		json_dumpf(e.msg, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		printf("\n");
	} else
		listing_print_who(stdout, e.msg, "\n");
	return 0;
}

static int verb_break(struct front *f, char **args)
{
	struct front_event e;
	int r;

	r = request(f, front_break(f, args[0]), FRONT_EV_BREAK_SENT, &e);
	if (r < 0)
		return r;
	printf("break sent to %s\n", args[0]);
	return 0;
}

/* A rescue action (args: NAME, and sysrq's KEY); answered by action-done or an error. */
static int action_request(struct front *f, const char *action, char **args)
{
	struct front_event e;
	int r;

	r = request(f, front_action(f, args[0], action, args[1]), FRONT_EV_ACTION_DONE, &e);
	if (r < 0)
		return r;
	printf("%s%s%s done on %s\n", action, args[1] ? " " : "", args[1] ? args[1] : "",
	       args[0]);
	return 0;
}

/*
 * reset and powerdown on a terminal without --yes ask first: they end
 * whatever the guest was doing.  A script (no terminal) is its own confirmation.
 */
static int confirm(const char *action, const char *name)
{
	char line[16];

	if (arg_yes || !isatty(STDIN_FILENO) || !isatty(STDERR_FILENO))
		return 0;
	fprintf(stderr, "%s %s? [y/N] ", action, name);
	if (!fgets(line, sizeof(line), stdin) || (line[0] != 'y' && line[0] != 'Y')) {
		fprintf(stderr, "ttyhub: %s cancelled\n", action);
		return 1;
	}
	return 0;
}

static int verb_sysrq(struct front *f, char **args)
{
	char *a[2] = { args[0], args[1] };

	if (!proto_sysrq_key_valid(args[1])) {
		fprintf(stderr, "ttyhub: sysrq: the key must be one of %s\n", PROTO_SYSRQ_KEYS);
		return 2;
	}
	return action_request(f, "sysrq", a);
}

static int verb_nmi(struct front *f, char **args)
{
	char *a[2] = { args[0], NULL };

	return action_request(f, "nmi", a);
}

static int verb_reset(struct front *f, char **args)
{
	char *a[2] = { args[0], NULL };
	int r = confirm("reset", args[0]);

	return r != 0 ? r : action_request(f, "reset", a);
}

static int verb_powerdown(struct front *f, char **args)
{
	char *a[2] = { args[0], NULL };
	int r = confirm("powerdown", args[0]);

	return r != 0 ? r : action_request(f, "powerdown", a);
}

/* The attach's own status: 0 when the user detached, else 1 (attach.h). */
static int verb_attach(struct front *f, char **args)
{
	arg_attach.console = args[0];
	arg_attach.broker = broker_path();
	return attach_run(f, &arg_attach);
}

/*
 * A one-time link for a browser (docs/protocol.md "Web links and sessions"):
 * the URL alone on stdout, so scripts can take it; its lifetime on stderr.
 */
static int verb_web_link(struct front *f, char **args)
{
	struct front_event e;
	int r;

	r = request(f, front_web_link(f, args[0], arg_attach.mode == ATTACH_RO), FRONT_EV_WEB_LINK,
		    &e);
	if (r < 0)
		return r;
	if (!e.url) {
		fprintf(stderr, "ttyhub: bad reply from ttyhubd: a web link without a url\n");
		return -EBADMSG;
	}
	printf("%s\n", e.url);
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "ttyhub: open it within %" PRIu64 " s; it works once\n",
			e.expires_in);
	return 0;
}

/* An expired start, on stderr: the output before it is gone from the ring. */
static void output_expired(const struct front_event *e)
{
	fprintf(stderr, "ttyhub: %" PRIu64 " bytes of output expired (older than the history "
		"kept); starting at offset %" PRIu64 "\n", e->lost, e->start);
}

/*
 * `output`: ask from --start until the broker says no more, each request
 * from the last answer's next.  Plain: the contents as they come (UTF-8
 * text from the broker); --json: one object for the whole range, in the
 * style of GCE's getSerialPortOutput.
 */
static int verb_output(struct front *f, char **args)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;
	bool has_start = arg_has_start, expired = false;
	int64_t start = arg_start;
	uint64_t first = 0, next = 0, epoch = 0, lost = 0;
	bool any = false;

	for (;;) {
		struct front_event e;
		int r = request(f, front_output(f, args[0], has_start, start, 0), FRONT_EV_OUTPUT,
				&e);

		if (r < 0)
			return r;
		if (any && e.epoch != epoch) {
			fprintf(stderr, "ttyhub: %s restarted while its output was read; run again\n",
				args[0]);
			return -ESTALE;
		}
		if (!any) {
			first = e.start;
			epoch = e.epoch;
		}
		if (e.expired) {
			expired = true;
			lost += e.lost;
			if (!arg_json)
				output_expired(&e);
		}
		if (arg_json) {
			if (len + e.len > OUTPUT_JSON_MAX) {
				fprintf(stderr, "ttyhub: more than %d MiB of output; use the plain "
					"form\n", OUTPUT_JSON_MAX >> 20);
				return -EFBIG;
			}
			if (len + e.len > cap) {
				size_t ncap = MAX(cap * 2, len + e.len + 1);
				char *nbuf = realloc(buf, ncap);

				if (!nbuf)
					return -ENOMEM;
				buf = nbuf;
				cap = ncap;
			}
			if (e.len > 0)
				memcpy(buf + len, e.data, e.len);
			len += e.len;
		} else if (e.len > 0 && fwrite(e.data, 1, e.len, stdout) != e.len)
			return -EIO;
		any = true;
		next = e.end;
		if (!e.more)
			break;
		/* An answer that says more but did not move on would loop for ever. */
		if (e.end <= e.start) {
			fprintf(stderr, "ttyhub: ttyhubd's output answers do not advance\n");
			return -EPROTO;
		}
		has_start = true;
		start = (int64_t)MIN(e.end, (uint64_t)INT64_MAX);
	}
	if (arg_json) {
		char ep[PROTO_EPOCH_STRLEN + 1];
		json_t *out;

		proto_epoch_to_string(epoch, ep);
		out = json_pack("{s:s%, s:I, s:I, s:s}", "contents", buf ? buf : "", len,
				"start", (json_int_t)first, "next", (json_int_t)next, "epoch", ep);
		if (out && expired) {
			json_object_set_new(out, "expired", json_true());
			json_object_set_new(out, "lost", json_integer((json_int_t)lost));
		}
		if (!out)
			return -ENOMEM;
		json_dumpf(out, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		printf("\n");
		json_decref(out);
	}
	return fflush(stdout) == 0 ? 0 : -EIO;
}

/* Verbs return 0, -errno (exit status 1), or an exit status > 0. */
static const struct verb {
	const char *name;
	int args; /* console names: 0 or 1; 2: a name and sysrq's key */
	int (*fn)(struct front *f, char **args);
} verbs[] = {
	{ "list", 0, verb_list },
	{ "attach", 1, verb_attach },
	{ "who", 1, verb_who },
	{ "break", 1, verb_break },
	{ "output", 1, verb_output },
	{ "web-link", 1, verb_web_link },
	{ "sysrq", 2, verb_sysrq },
	{ "nmi", 1, verb_nmi },
	{ "reset", 1, verb_reset },
	{ "powerdown", 1, verb_powerdown },
};

static const struct verb *verb_find(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		if (strcmp(verbs[i].name, name) == 0)
			return &verbs[i];
	return NULL;
}

/* An output start: decimal, optionally negative, within int64. */
static int parse_start(const char *s, int64_t *ret)
{
	char *end;
	long long v;

	if (!*s || (*s != '-' && (*s < '0' || *s > '9')))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s)
		return -EINVAL;
	*ret = v;
	return 0;
}

int main(int argc, char *argv[])
{
	static const struct option global_opts[] = {
		{ "broker", required_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{}
	};
	static const struct option sub_opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "ro", no_argument, NULL, 'r' },
		{ "force", no_argument, NULL, 'f' },
		{ "replay", required_argument, NULL, 'R' },
		{ "escape", required_argument, NULL, 'e' },
		{ "resume", required_argument, NULL, 'u' },
		{ "start", required_argument, NULL, 's' },
		{ "yes", no_argument, NULL, 'y' },
		{}
	};
	const struct verb *verb;
	struct front f;
	const char *cmd;
	int c, fd = -EBADF, r;

	while ((c = getopt_long(argc, argv, "+h", global_opts, NULL)) >= 0) {
		switch (c) {
		case 'B':
			arg_broker = optarg;
			break;
		case 'h':
			help();
			return 0;
		case 'V':
			printf("ttyhub %s\n", TTYHUB_VERSION);
			return 0;
		default:
			fprintf(stderr, "ttyhub: unknown option; see ttyhub --help\n");
			return 2;
		}
	}
	if (optind >= argc) {
		help();
		return 2;
	}
	/* Options of the command may come before or after its argument. */
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	optind = 0; /* reinitialise GNU getopt for the command's own argv */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", sub_opts, NULL)) >= 0) {
		switch (c) {
		case 'j':
			arg_json = true;
			break;
		case 'y':
			arg_yes = true;
			break;
		case 'r':
			arg_attach.mode = ATTACH_RO;
			break;
		case 'f':
			arg_attach.mode = ATTACH_FORCE;
			break;
		case 'R':
			if (proto_parse_replay_str(optarg, &arg_attach.replay) < 0) {
				fprintf(stderr, "ttyhub: --replay %s: expected a number of lines or "
						"'all'\n", optarg);
				return 2;
			}
			break;
		case 'e':
			if (escape_parse_prefix(optarg, arg_prefix) < 0) {
				fprintf(stderr, "ttyhub: --escape %s: expected e.g. '^Ec' or '^]x'\n",
					optarg);
				return 2;
			}
			break;
		case 'u':
			if (proto_parse_resume_str(optarg, &arg_attach.epoch, &arg_attach.offset) < 0) {
				fprintf(stderr, "ttyhub: --resume %s: expected EPOCH:OFFSET as a "
						"detach printed it (16 hex digits, a colon, a number)\n",
					optarg);
				return 2;
			}
			arg_attach.resume = true;
			break;
		case 's':
			if (parse_start(optarg, &arg_start) < 0) {
				fprintf(stderr, "ttyhub: --start %s: expected an offset, or -N for the "
						"last N bytes\n", optarg);
				return 2;
			}
			arg_has_start = true;
			break;
		default:
			fprintf(stderr, "ttyhub: %s: unknown option or missing argument: %s; see "
					"ttyhub --help\n", cmd, argv[optind - 1]);
			return 2;
		}
	}
	verb = verb_find(cmd);
	if (!verb) {
		fprintf(stderr, "ttyhub: unknown command '%s'; see ttyhub --help\n", cmd);
		return 2;
	}
	if (argc - optind != verb->args) {
		fprintf(stderr, "ttyhub: %s: %s\n", cmd,
			verb->args == 0	  ? "takes no console name"
			: verb->args == 2 ? "needs a console name and a SysRq key"
					  : "needs one console name");
		return 2;
	}
	if (broker_connect(&fd) < 0)
		return 1;
	if (front_init(&f, fd, OUT_MAX, arg_prefix) < 0) {
		close(fd);
		return 1;
	}
	r = session_open(&f);
	if (r >= 0)
		r = verb->fn(&f, argv + optind);
	/* An attach may have reconnected: the front's fd is the one open now. */
	fd = f.fd;
	front_done(&f);
	safe_close(fd);
	return r < 0 ? 1 : r;
}
