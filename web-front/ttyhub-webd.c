/* SPDX-License-Identifier: MIT */
/*
 * ttyhub-webd: every console in a browser, with the same rights as SSH.  An
 * unprivileged front for ttyhubd: it serves the page, exchanges one-time
 * links for session cookies and carries each console over a WebSocket, all
 * through the broker socket; ttyhubd decides every right.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "fileio.h"
#include "log.h"
#include "notify.h"
#include "util.h"
#include "webd.h"

#define DEFAULT_CONFIG "/etc/ttyhub/ttyhub-webd.conf"
#define MAX_ORIGINS 32

static const char *arg_config_file = DEFAULT_CONFIG;
static bool arg_config_required;
static const char *const config_flags[] = { "verbose", NULL };
static char *arg_origins[MAX_ORIGINS];

static const struct webd_config default_config = {
	.listen = "127.0.0.1:8443",
	.broker = "/run/ttyhub/ttyhubd.sock",
	.static_dir = TTYHUB_WEB_DIR,
	.max_ws_per_session = 10,
	.max_ws_per_addr = 50,
	.ping_s = 30,
};
static struct webd_config arg_config;

static void help(void)
{
	printf("Usage: ttyhub-webd [OPTIONS]\n"
	       "Serve ttyhub consoles to browsers (one-time links from ttyhubd).\n\n"
	       "  --config FILE       options, one \"option = value\" per line\n"
	       "                      (default %s, if it exists)\n"
	       "  --listen ADDR:PORT  without socket activation (default %s)\n"
	       "  --tls-cert PATH     PEM certificate chain (plain HTTP only on loopback)\n"
	       "  --tls-key PATH      PEM private key\n"
	       "  --broker PATH       ttyhubd socket (default %s)\n"
	       "  --origin URL        the page's origin, https://HOST[:PORT] (repeatable;\n"
	       "                      on loopback http(s)://ADDR:PORT and localhost are implied)\n"
	       "  --static-dir DIR    the page's files (default %s)\n"
	       "  -v, --verbose       debug logging\n"
	       "  -h, --help          this help\n",
	       DEFAULT_CONFIG, default_config.listen, default_config.broker,
	       default_config.static_dir);
}

static int parse_argv(int argc, char *argv[])
{
	enum { ARG_LISTEN = 0x100, ARG_CERT, ARG_KEY, ARG_BROKER, ARG_ORIGIN, ARG_STATIC,
	       ARG_CONFIG };
	static const struct option options[] = {
		{ "listen", required_argument, NULL, ARG_LISTEN },
		{ "tls-cert", required_argument, NULL, ARG_CERT },
		{ "tls-key", required_argument, NULL, ARG_KEY },
		{ "broker", required_argument, NULL, ARG_BROKER },
		{ "origin", required_argument, NULL, ARG_ORIGIN },
		{ "static-dir", required_argument, NULL, ARG_STATIC },
		{ "config", required_argument, NULL, ARG_CONFIG },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	int c;

	opterr = 0;
	optind = 0; /* called for the configuration file, then the command line */
	while ((c = getopt_long(argc, argv, "vh", options, NULL)) >= 0) {
		switch (c) {
		case ARG_LISTEN:
			arg_config.listen = optarg;
			break;
		case ARG_CERT:
			arg_config.tls_cert = optarg;
			break;
		case ARG_KEY:
			arg_config.tls_key = optarg;
			break;
		case ARG_BROKER:
			arg_config.broker = optarg;
			break;
		case ARG_ORIGIN:
			if (arg_config.n_origins >= MAX_ORIGINS)
				return log_error_errno(-EINVAL, "more than %d --origin options",
						       MAX_ORIGINS);
			arg_origins[arg_config.n_origins++] = optarg;
			break;
		case ARG_STATIC:
			arg_config.static_dir = optarg;
			break;
		case ARG_CONFIG:
			arg_config_file = optarg;
			arg_config_required = true;
			break;
		case 'v':
			log_set_max_level(LOG_DEBUG);
			break;
		case 'h':
			help();
			return 1;
		default:
			return log_error_errno(-EINVAL, "option %s is unknown or needs an argument; "
					       "see --help", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return log_error_errno(-EINVAL, "unexpected argument '%s'; see --help", argv[optind]);
	return 0;
}

static int load_args(int argc, char *argv[])
{
	int r;

	arg_config = default_config;
	arg_config.origins = arg_origins;
	config_find_arg(argc, argv, &arg_config_file, &arg_config_required);
	r = config_load(arg_config_file, arg_config_required, config_flags, parse_argv);
	if (r < 0)
		return r;
	return parse_argv(argc, argv);
}

static void describe_status(void *userdata, char *buf, size_t size)
{
	unsigned n = webd_n_conns(userdata);

	snprintf(buf, size, "%u WebSocket%s", n, n == 1 ? "" : "s");
}

/* SIGHUP: nothing to reload here; ttyhubd revokes sessions on its own reload. */
static int on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	sd_notify(0, "RELOADING=1");
	log_info("SIGHUP: ttyhub-webd keeps its configuration until restarted; "
		 "ttyhubd's reload revokes sessions");
	sd_notify(0, "READY=1");
	return 0;
}

int main(int argc, char *argv[])
{
	sd_event *e = NULL;
	struct webd d = { .listen_fd = -EBADF };
	bool started = false;
	int r;

	log_set_ident("ttyhub-webd");
	r = load_args(argc, argv);
	if (r != 0)
		return r > 0 ? EXIT_SUCCESS : 2;
	notify_block_signals();
	if (fd_limit_raise() < 0)
		log_warning("cannot raise the open files limit; staying at the soft limit");
	r = sd_event_default(&e);
	if (r < 0) {
		log_error_errno(r, "cannot create the event loop");
		goto out;
	}
	r = webd_init(&d, e, &arg_config);
	started = true;
	if (r < 0)
		goto out;
	r = notify_setup_loop(e, on_reload, &d, describe_status, &d);
	if (r < 0) {
		log_error_errno(r, "cannot set up signals");
		goto out;
	}
	sd_notify(0, "READY=1");
	r = sd_event_loop(e);
	sd_notify(0, "STOPPING=1");
out:
	if (started)
		webd_done(&d);
	sd_event_unref(e);
	config_release_args();
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
