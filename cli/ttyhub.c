/* SPDX-License-Identifier: MIT */
/*
 * ttyhub: the local command-line front.
 *   ttyhub [--broker PATH] list [--json] | attach NAME [--ro|--force]
 *          [--replay N|all] [--escape PREFIX] | who NAME [--json] | break NAME
 * It talks the broker protocol over the broker socket, like every front.
 */
#include <errno.h>
#include <getopt.h>
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

static const char *arg_broker;
static bool arg_json;
static struct attach_opts arg_attach = { .mode = ATTACH_RW, .replay = PROTO_REPLAY_DEFAULT };
static uint8_t arg_prefix[2] = { ESCAPE_DEFAULT_PREFIX0, ESCAPE_DEFAULT_PREFIX1 };

static void help(void)
{
	printf("Usage: ttyhub [--broker PATH] COMMAND\n\n"
	       "Commands:\n"
	       "  list [--json]                     consoles and their state\n"
	       "  attach NAME [--ro|--force] [--replay N|all] [--escape PREFIX]\n"
	       "                                    attach to a console (Ctrl-E c ? for help)\n"
	       "  who NAME [--json]                 who is attached, who writes\n"
	       "  break NAME                        send a serial break\n\n"
	       "NAME is VM, VM:ALIAS, UUID or UUID:ALIAS. The broker socket is --broker,\n"
	       "$TTYHUB_BROKER, or %s.\n",
	       DEFAULT_BROKER);
}

static int broker_connect(int *ret)
{
	const char *path = arg_broker ? arg_broker
				      : getenv("TTYHUB_BROKER") ? getenv("TTYHUB_BROKER")
								: DEFAULT_BROKER;
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

/* The attach's own status: 0 when the user detached, else 1 (attach.h). */
static int verb_attach(struct front *f, char **args)
{
	arg_attach.console = args[0];
	return attach_run(f, &arg_attach);
}

/* Verbs return 0, -errno (exit status 1), or an exit status > 0. */
static const struct verb {
	const char *name;
	int args; /* console names: 0 or 1 */
	int (*fn)(struct front *f, char **args);
} verbs[] = {
	{ "list", 0, verb_list },
	{ "attach", 1, verb_attach },
	{ "who", 1, verb_who },
	{ "break", 1, verb_break },
};

static const struct verb *verb_find(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		if (strcmp(verbs[i].name, name) == 0)
			return &verbs[i];
	return NULL;
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
			verb->args == 0 ? "takes no console name" : "needs one console name");
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
	front_done(&f);
	close(fd);
	return r < 0 ? 1 : r;
}
