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
#include "fileio.h"
#include "listing.h"
#include "log.h"
#include "proto.h"
#include "util.h"

#define DEFAULT_BROKER "/run/ttyhub/ttyhubd.sock"
#define REPLY_TIMEOUT_MS 10000

static const char *arg_broker;

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
	int fd = unix_connect(path, false);

	if (fd < 0) {
		fprintf(stderr, "ttyhub: cannot reach ttyhubd at %s: %s%s\n", path, strerror(-fd),
			fd == -ENOENT || fd == -ECONNREFUSED ? " (is ttyhubd running?)" : "");
		return fd;
	}
	*ret = fd;
	return 0;
}

static int send_msg(int fd, json_t *msg)
{
	struct obuf b;
	int r;

	if (!msg)
		return -ENOMEM;
	r = obuf_init(&b, FRAME_HEADER + FRAME_MAX);
	if (r >= 0)
		r = proto_put_control(&b, msg);
	while (r >= 0 && obuf_len(&b) > 0) {
		ssize_t n = obuf_flush(&b, fd);

		if (n < 0)
			r = (int)n;
	}
	obuf_done(&b);
	json_decref(msg);
	return r;
}

/* Wait for a control message (data frames are skipped). */
static int recv_msg(int fd, struct frame_reader *in, json_t **ret, const char **ret_type)
{
	char err[256];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct frame f;
		int r;

		while ((r = frame_reader_next(in, &f)) > 0)
			if (f.type == FRAME_CONTROL) {
				if (proto_decode_control(f.payload, f.len, ret, ret_type, err,
							 sizeof(err)) < 0) {
					fprintf(stderr, "ttyhub: bad reply from ttyhubd: %s\n", err);
					return -EBADMSG;
				}
				return 0;
			}
		if (r < 0) {
			fprintf(stderr, "ttyhub: malformed frame from ttyhubd\n");
			return r;
		}
		if (in->eof) {
			fprintf(stderr, "ttyhub: ttyhubd closed the connection\n");
			return -ECONNRESET;
		}
		r = poll(&p, 1, REPLY_TIMEOUT_MS);
		if (r == 0) {
			fprintf(stderr, "ttyhub: no answer from ttyhubd\n");
			return -ETIMEDOUT;
		}
		if (frame_reader_fill(in, fd) < 0) {
			fprintf(stderr, "ttyhub: lost the connection to ttyhubd\n");
			return -EIO;
		}
	}
}

/* Errors from the broker are printed as they are (escaped) and end the command. */
static int check_error(json_t *msg, const char *type)
{
	const char *text;
	char esc[600];

	if (strcmp(type, "error") != 0)
		return 0;
	text = json_string_value(json_object_get(msg, "message"));
	if (!text)
		text = "unknown error";
	fprintf(stderr, "ttyhub: %s\n", log_sanitize(text, strlen(text), esc, sizeof(esc)));
	return -EIO;
}

/* Connect and say hello; returns the fd. */
static int session_open(struct frame_reader *in, int *ret_fd)
{
	_cleanup_close_ int fd = -EBADF;
	const char *type;
	json_t *msg;
	int r;

	r = broker_connect(&fd);
	if (r < 0)
		return r;
	/*
	 * A refused peer gets an error and the connection closed at once, so the
	 * hello may fail with EPIPE: read what the broker said either way.
	 */
	r = send_msg(fd, json_pack("{s:s, s:i, s:s}", "type", "hello", "version", PROTO_VERSION,
				   "client", "ttyhub"));
	if (recv_msg(fd, in, &msg, &type) < 0) {
		if (r < 0)
			fprintf(stderr, "ttyhub: cannot talk to ttyhubd: %s\n", strerror(-r));
		return r < 0 ? r : -EIO;
	}
	r = check_error(msg, type);
	json_decref(msg);
	if (r < 0)
		return r;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* Wait for a message of type want (notices before it are skipped). */
static int recv_reply(int fd, struct frame_reader *in, const char *want, json_t **ret)
{
	const char *type;
	json_t *msg;
	int r;

	for (;;) {
		r = recv_msg(fd, in, &msg, &type);
		if (r < 0)
			return r;
		if (check_error(msg, type) < 0) {
			json_decref(msg);
			return -EIO;
		}
		if (strcmp(type, want) == 0) {
			*ret = msg;
			return 0;
		}
		json_decref(msg);
	}
}

/* Send one request and wait for its answer (notices before it are skipped). */
static int request(int fd, struct frame_reader *in, json_t *req, const char *want, json_t **ret)
{
	int r;

	r = send_msg(fd, req);
	if (r < 0) {
		fprintf(stderr, "ttyhub: cannot send request: %s\n", strerror(-r));
		return r;
	}
	return recv_reply(fd, in, want, ret);
}

static int cmd_list(int fd, struct frame_reader *in, bool as_json)
{
	json_t *msg = NULL, *piece, *consoles, *errors;
	int r;

	r = request(fd, in, json_pack("{s:s}", "type", "list"), "list", &piece);
	while (r >= 0) {
		r = listing_collect(&msg, piece);
		json_decref(piece);
		if (r < 0)
			fprintf(stderr, "ttyhub: bad console list from ttyhubd: %s\n", strerror(-r));
		if (r <= 0)
			break;
		r = recv_reply(fd, in, "list", &piece);
	}
	if (r < 0) {
		json_decref(msg);
		return r;
	}
	consoles = json_object_get(msg, "consoles");
	errors = json_object_get(msg, "errors");
	if (as_json) {
		json_t *out = json_pack("{s:O, s:O}", "consoles", consoles, "errors", errors);

		json_dumpf(out, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		printf("\n");
		json_decref(out);
	} else
		listing_print_consoles(stdout, consoles, errors, "\n");
	json_decref(msg);
	return 0;
}

static int cmd_who(int fd, struct frame_reader *in, const char *name, bool as_json)
{
	json_t *msg;
	int r;

	r = request(fd, in, json_pack("{s:s, s:s}", "type", "who", "console", name), "who", &msg);
	if (r < 0)
		return r;
	if (as_json) {
		json_dumpf(msg, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		printf("\n");
	} else
		listing_print_who(stdout, msg, "\n");
	json_decref(msg);
	return 0;
}

static int cmd_break(int fd, struct frame_reader *in, const char *name)
{
	json_t *msg;
	int r;

	r = request(fd, in, json_pack("{s:s, s:s}", "type", "break", "console", name), "break-sent",
		    &msg);
	if (r < 0)
		return r;
	printf("break sent to %s\n", name);
	json_decref(msg);
	return 0;
}

static int parse_replay(const char *s, long *ret)
{
	char *end;
	long v;

	if (strcmp(s, "all") == 0) {
		*ret = -1;
		return 0;
	}
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 0 || v > 1000000)
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
		{}
	};
	struct attach_opts ao = { .mode = "rw", .replay = -2,
				  .prefix = { ESCAPE_DEFAULT_PREFIX0, ESCAPE_DEFAULT_PREFIX1 } };
	struct frame_reader in;
	const char *cmd;
	bool json = false;
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
			json = true;
			break;
		case 'r':
			ao.mode = "ro";
			break;
		case 'f':
			ao.mode = "force";
			break;
		case 'R':
			if (parse_replay(optarg, &ao.replay) < 0) {
				fprintf(stderr, "ttyhub: --replay %s: expected a number of lines or "
						"'all'\n", optarg);
				return 2;
			}
			break;
		case 'e':
			if (escape_parse_prefix(optarg, ao.prefix) < 0) {
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
	if (strcmp(cmd, "list") != 0 && strcmp(cmd, "attach") != 0 && strcmp(cmd, "who") != 0 &&
	    strcmp(cmd, "break") != 0) {
		fprintf(stderr, "ttyhub: unknown command '%s'; see ttyhub --help\n", cmd);
		return 2;
	}
	if (strcmp(cmd, "list") == 0 ? optind != argc : optind != argc - 1) {
		fprintf(stderr, "ttyhub: %s: %s\n", cmd,
			strcmp(cmd, "list") == 0 ? "takes no console name" : "needs one console name");
		return 2;
	}
	if (frame_reader_init(&in) < 0)
		return 1;
	r = session_open(&in, &fd);
	if (r < 0) {
		frame_reader_done(&in);
		return 1;
	}
	if (strcmp(cmd, "list") == 0)
		r = cmd_list(fd, &in, json);
	else if (strcmp(cmd, "who") == 0)
		r = cmd_who(fd, &in, argv[optind], json);
	else if (strcmp(cmd, "break") == 0)
		r = cmd_break(fd, &in, argv[optind]);
	else {
		ao.console = argv[optind];
		r = attach_run(fd, &in, &ao);
		r = -r; /* attach_run returns an exit status */
	}
	close(fd);
	frame_reader_done(&in);
	return r < 0 ? 1 : 0;
}
