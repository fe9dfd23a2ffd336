/* SPDX-License-Identifier: MIT */
/*
 * ttyhub-sshd: shared consoles over one SSH port.  An unprivileged front
 * for ttyhubd: it authenticates SSH keys (asking ttyhubd, which reads the
 * access file, whether each may log in) and reaches consoles only through
 * the broker socket, speaking for the key; ttyhubd decides every right.
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "fileio.h"
#include "log.h"
#include "notify.h"
#include "sshd.h"
#include "util.h"

#define DEFAULT_CONFIG "/etc/ttyhub/ttyhub-sshd.conf"

static const char *arg_config_file = DEFAULT_CONFIG;
static bool arg_config_required;
static const char *const config_flags[] = { "verbose", NULL };

static const struct sshd_config default_config = {
	.listen = "127.0.0.1:2222",
	.host_key = "/var/lib/ttyhub-ssh/ssh_host_ed25519_key",
	.broker = "/run/ttyhub/ttyhubd.sock",
	.max_unauth = 64,
	.max_unauth_per_source = 8,
	.login_grace_s = 30,
	.max_auth_tries = 6,
	.keepalive_s = 15,
	.keepalive_count = 3,
	.max_sessions = 4096,
	.max_sessions_per_key = 10,
	.max_channels = 10,
	.menu_timeout_s = 300,
	.gateway_keepalive_s = 10,
	.gateway_timeout_ms = 2000,
	.gateway_socket_uid = (uid_t)-1,
};
static struct sshd_config arg_config;

static void help(void)
{
	printf("Usage: ttyhub-sshd [OPTIONS]\n"
	       "Serve ttyhub consoles over SSH (public keys only).\n\n"
	       "  --config FILE            options, one \"option = value\" per line\n"
	       "                           (default %s, if it exists)\n"
	       "  --listen ADDR:PORT       without socket activation (default %s)\n"
	       "  --host-key PATH          ed25519 host key, created if missing\n"
	       "                           (default %s)\n"
	       "  --access FILE            ignored: ttyhubd reads the access file\n"
	       "  --broker PATH            ttyhubd socket (default %s)\n"
	       "  --login-grace SECONDS    time to authenticate (default 30)\n"
	       "  --max-startups N         unauthenticated connections (default 64)\n"
	       "  --max-per-source N       unauthenticated connections per address (default 8)\n"
	       "  --max-auth-tries N       refused keys before disconnecting (default 6)\n"
	       "  --keepalive SECONDS      keepalive interval; 3 missed end a session (default 15)\n"
	       "  --max-sessions N         SSH connections in all (default 4096)\n"
	       "  --max-sessions-per-key N sessions of one key (default 10)\n"
	       "  --max-channels N         channels (consoles, commands) per session (default 10)\n"
	       "  --menu-timeout SECONDS   an idle console menu closes (default 300)\n"
	       "\nGateway mode (the consoles of many hosts behind this one):\n"
	       "  --gateway HOSTS_FILE     the hosts, their addresses and pinned host keys\n"
	       "  --gateway-key PATH       the gateway's own private key, to log in to hosts\n"
	       "  --gateway-keepalive S    keepalive to hosts; 3 missed lose a host (default 10)\n"
	       "  --gateway-timeout MS     how long a list waits for each host (default 2000)\n"
	       "  --gateway-socket PATH    a broker socket for ttyhub-webd on the gateway\n"
	       "  --gateway-socket-user U  may connect there too (root and our user may)\n\n"
	       "  -v, --verbose            debug logging\n"
	       "  -h, --help               this help\n",
	       DEFAULT_CONFIG, default_config.listen, default_config.host_key, default_config.broker);
}

static int parse_uint(const char *opt, const char *s, unsigned min, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || s[0] == '-' || v < min || v > max)
		return log_error_errno(-EINVAL, "%s %s: expected a number from %u to %u", opt, s, min,
				       max);
	*ret = (unsigned)v;
	return 0;
}

static int parse_argv(int argc, char *argv[])
{
	enum { ARG_LISTEN = 0x100, ARG_HOST_KEY, ARG_ACCESS, ARG_BROKER, ARG_GRACE, ARG_STARTUPS,
	       ARG_PER_SOURCE, ARG_AUTH_TRIES, ARG_KEEPALIVE, ARG_CONFIG, ARG_SESSIONS,
	       ARG_SESSIONS_PER_KEY, ARG_CHANNELS, ARG_MENU_TIMEOUT, ARG_GATEWAY, ARG_GATEWAY_KEY,
	       ARG_GATEWAY_KEEPALIVE, ARG_GATEWAY_TIMEOUT, ARG_GATEWAY_SOCKET,
	       ARG_GATEWAY_SOCKET_USER };
	static const struct option options[] = {
		{ "listen", required_argument, NULL, ARG_LISTEN },
		{ "host-key", required_argument, NULL, ARG_HOST_KEY },
		{ "access", required_argument, NULL, ARG_ACCESS },
		{ "broker", required_argument, NULL, ARG_BROKER },
		{ "login-grace", required_argument, NULL, ARG_GRACE },
		{ "max-startups", required_argument, NULL, ARG_STARTUPS },
		{ "max-per-source", required_argument, NULL, ARG_PER_SOURCE },
		{ "max-auth-tries", required_argument, NULL, ARG_AUTH_TRIES },
		{ "keepalive", required_argument, NULL, ARG_KEEPALIVE },
		{ "max-sessions", required_argument, NULL, ARG_SESSIONS },
		{ "max-sessions-per-key", required_argument, NULL, ARG_SESSIONS_PER_KEY },
		{ "max-channels", required_argument, NULL, ARG_CHANNELS },
		{ "menu-timeout", required_argument, NULL, ARG_MENU_TIMEOUT },
		{ "gateway", required_argument, NULL, ARG_GATEWAY },
		{ "gateway-key", required_argument, NULL, ARG_GATEWAY_KEY },
		{ "gateway-keepalive", required_argument, NULL, ARG_GATEWAY_KEEPALIVE },
		{ "gateway-timeout", required_argument, NULL, ARG_GATEWAY_TIMEOUT },
		{ "gateway-socket", required_argument, NULL, ARG_GATEWAY_SOCKET },
		{ "gateway-socket-user", required_argument, NULL, ARG_GATEWAY_SOCKET_USER },
		{ "config", required_argument, NULL, ARG_CONFIG },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	int c, r = 0;

	opterr = 0;
	optind = 0; /* reinitialise: called for the configuration file, then the command line */
	while (r >= 0 && (c = getopt_long(argc, argv, "vh", options, NULL)) >= 0) {
		switch (c) {
		case ARG_LISTEN:
			arg_config.listen = optarg;
			break;
		case ARG_HOST_KEY:
			arg_config.host_key = optarg;
			break;
		case ARG_ACCESS:
			/* Old configuration files keep working; the rules moved, say where. */
			log_warning("--access %s is ignored: ttyhubd reads the access file now "
				    "(its --access option)", optarg);
			break;
		case ARG_BROKER:
			arg_config.broker = optarg;
			break;
		case ARG_GRACE:
			r = parse_uint("--login-grace", optarg, 1, 3600, &arg_config.login_grace_s);
			break;
		case ARG_STARTUPS:
			r = parse_uint("--max-startups", optarg, 1, 10000, &arg_config.max_unauth);
			break;
		case ARG_PER_SOURCE:
			r = parse_uint("--max-per-source", optarg, 1, 10000,
				       &arg_config.max_unauth_per_source);
			break;
		case ARG_AUTH_TRIES:
			r = parse_uint("--max-auth-tries", optarg, 1, 100, &arg_config.max_auth_tries);
			break;
		case ARG_KEEPALIVE:
			r = parse_uint("--keepalive", optarg, 1, 3600, &arg_config.keepalive_s);
			break;
		case ARG_SESSIONS:
			r = parse_uint("--max-sessions", optarg, 1, 100000, &arg_config.max_sessions);
			break;
		case ARG_SESSIONS_PER_KEY:
			r = parse_uint("--max-sessions-per-key", optarg, 1, 100000,
				       &arg_config.max_sessions_per_key);
			break;
		case ARG_CHANNELS:
			r = parse_uint("--max-channels", optarg, 1, 1000, &arg_config.max_channels);
			break;
		case ARG_MENU_TIMEOUT:
			r = parse_uint("--menu-timeout", optarg, 1, 86400, &arg_config.menu_timeout_s);
			break;
		case ARG_GATEWAY:
			arg_config.gateway_hosts = optarg;
			break;
		case ARG_GATEWAY_KEY:
			arg_config.gateway_key = optarg;
			break;
		case ARG_GATEWAY_KEEPALIVE:
			r = parse_uint("--gateway-keepalive", optarg, 1, 3600,
				       &arg_config.gateway_keepalive_s);
			break;
		case ARG_GATEWAY_TIMEOUT:
			r = parse_uint("--gateway-timeout", optarg, 100, 600000,
				       &arg_config.gateway_timeout_ms);
			break;
		case ARG_GATEWAY_SOCKET:
			arg_config.gateway_socket = optarg;
			break;
		case ARG_GATEWAY_SOCKET_USER: {
			struct passwd *pw = getpwnam(optarg);

			if (!pw)
				r = log_error_errno(-EINVAL, "--gateway-socket-user %s: no such user",
						    optarg);
			else
				arg_config.gateway_socket_uid = pw->pw_uid;
			break;
		}
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
	if (r >= 0 && optind < argc)
		return log_error_errno(-EINVAL, "unexpected argument '%s'; see --help", argv[optind]);
	return r;
}

/* Defaults, the configuration file, then the command line. At start and on SIGHUP. */
static int load_args(int argc, char *argv[])
{
	int r;

	config_release_args();
	arg_config = default_config;
	arg_config_file = DEFAULT_CONFIG;
	arg_config_required = false;
	config_find_arg(argc, argv, &arg_config_file, &arg_config_required);
	r = config_load(arg_config_file, arg_config_required, config_flags, parse_argv);
	if (r < 0)
		return r;
	r = parse_argv(argc, argv);
	if (r == 0 && !arg_config.gateway_hosts != !arg_config.gateway_key)
		return log_error_errno(-EINVAL, "--gateway and --gateway-key go together");
	if (r == 0 && arg_config.gateway_socket && !arg_config.gateway_hosts)
		return log_error_errno(-EINVAL, "--gateway-socket needs --gateway");
	return r;
}

static int main_argc;
static char **main_argv;

static void describe_status(void *userdata, char *buf, size_t size)
{
	struct sshd *d = userdata;

	snprintf(buf, size, "%u session%s (%u unauthenticated)", d->n_sessions,
		 d->n_sessions == 1 ? "" : "s", d->n_unauth);
}

/*
 * SIGHUP: the configuration (limits, broker path).  The access file is
 * ttyhubd's, which reloads it on its own SIGHUP and closes what it revokes.
 * The listener and the host key stay until the next restart.
 */
static int on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct sshd *d = userdata;
	char *broker;

	log_info("SIGHUP: reloading the configuration");
	sd_notify(0, "RELOADING=1");
	if (load_args(main_argc, main_argv) != 0) {
		log_error("the new configuration has errors; keeping the running one");
	} else {
		/* Paths are copied: the option strings are freed by the next reload. */
		broker = strdup(arg_config.broker);
		if (broker) {
			free((char *)d->config.broker);
			arg_config.broker = broker;
			arg_config.listen = d->config.listen;
			arg_config.host_key = d->config.host_key;
			d->config = arg_config;
		}
	}
	(void)sshd_reload(d);
	sd_notify(0, "READY=1");
	return 0;
}

int main(int argc, char *argv[])
{
	sd_event *e = NULL;
	struct sshd d = { .listen_fd = -EBADF };
	int r;

	log_set_ident("ttyhub-sshd");
	main_argc = argc;
	main_argv = argv;
	r = load_args(argc, argv);
	if (r != 0)
		return r > 0 ? EXIT_SUCCESS : 2;
	notify_block_signals();
	if (fd_limit_raise() < 0)
		log_warning("cannot raise the open files limit; staying at the soft limit");

	if (ssh_init() != SSH_OK) {
		log_error("cannot initialise libssh");
		return EXIT_FAILURE;
	}
	r = sd_event_default(&e);
	if (r < 0) {
		log_error_errno(r, "cannot create the event loop");
		goto out;
	}
	r = sshd_init(&d, e, &arg_config);
	if (r < 0)
		goto out;
	r = notify_setup_loop(e, on_reload, &d, describe_status, &d);
	if (r < 0) {
		log_error_errno(r, "cannot set up signals");
		goto out;
	}
	r = sshd_listen(&d);
	if (r < 0)
		goto out;
	sd_notify(0, "READY=1");
	r = sd_event_loop(e);
	sd_notify(0, "STOPPING=1");
	/* Users are told how to continue where they left off, before their sessions end. */
	sshd_shutdown(&d, SSHD_SHUTDOWN_USEC);
out:
	if (d.event)
		sshd_done(&d);
	sd_event_unref(e);
	ssh_finalize();
	config_release_args();
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
