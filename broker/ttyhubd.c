/* SPDX-License-Identifier: MIT */
/*
 * ttyhubd: the console broker.  Finds guest consoles, holds and drains
 * their chardevs, and serves them to the fronts over the broker socket.
 * One sd-event loop; the libvirt source alone runs a helper thread
 * (source-libvirt.h says why and what it shares).
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "alert.h"
#include "config.h"
#include "conslog.h"
#include "fdstore.h"
#include "fileio.h"
#include "log.h"
#include "notify.h"
#include "peer.h"
#include "recording.h"
#include "server.h"
#include "source-cmdline.h"
#include "source-libvirt.h"
#include "source-qmp.h"
#include "source-xmldir.h"
#include "util.h"
#include "weblink.h"

#define DEFAULT_SOCKET "/run/ttyhub/ttyhubd.sock"
#define DEFAULT_ACCESS "/etc/ttyhub/access"
#define MAX_CONSOLE_ARGS CONFIG_MAX_ENTRIES /* as many as a configuration file holds */
#define MAX_DOMAIN_XML_ARGS 16
#define MAX_LIBVIRT_ARGS 4
#define MAX_QMP_ARGS 64

static const char *arg_domain_xml[MAX_DOMAIN_XML_ARGS];
static size_t arg_n_domain_xml;
static const char *arg_consoles[MAX_CONSOLE_ARGS];
static size_t arg_n_consoles;
static const char *arg_qmp[MAX_QMP_ARGS];
static size_t arg_n_qmp;
static const char *arg_libvirt[MAX_LIBVIRT_ARGS];
static size_t arg_n_libvirt;
static bool arg_libvirt_monitor;
/* No console source at all: a gateway's broker only answers authorize and hello. */
static bool arg_no_consoles;
static bool arg_libvirt_power;
static const char *arg_lock_dir;       /* NULL: the default; chardev keeps its own copy */
static struct peer_guest arg_guest_user; /* --guest-user, .set = false if not given */
static const char *arg_alert_specs[ALERT_MAX]; /* --alert NAME=REGEX, checked as parsed */
static size_t arg_n_alert_specs;
static bool arg_no_default_alerts;
/*
 * arg_alerts: what load_args() compiled, not in use yet (a reload may still fail);
 * active_alerts: what every console scans with (console_env.alerts points to it).
 */
static struct alert_set *arg_alerts, *active_alerts;
#define DEFAULT_CONFIG "/etc/ttyhub/ttyhubd.conf"

static const struct server_config default_config = {
	.socket_path = DEFAULT_SOCKET,
	.access_path = DEFAULT_ACCESS,
	.ring_size = 1024 * 1024,
	.default_replay = 10,
	.admin_gid = (gid_t)-1,
	.max_clients = 4096,
	.log_max_size = CONSLOG_DEFAULT_MAX_SIZE,
	.log_backups = CONSLOG_DEFAULT_BACKUPS,
	.record_max_size = RECORDING_DEFAULT_MAX_SIZE,
	.record_keep = RECORDING_DEFAULT_KEEP,
	.record_redact = true,
	.web_link_ttl = WEBLINK_LINK_TTL_DEFAULT,
	.web_session_ttl = WEBLINK_SESSION_TTL_DEFAULT,
};
static struct server_config arg_config;
static const char *arg_config_file = DEFAULT_CONFIG;
static bool arg_config_required;
/* Options without an argument, for "option = yes" in the configuration file. */
static const char *const config_flags[] = { "libvirt-qemu-monitor", "log-timestamps", "verbose",
					    "no-consoles", "no-default-alerts",
					    "no-record-redact",
					    "libvirt-power", NULL };

static void help(void)
{
	printf("Usage: ttyhubd [OPTIONS]\n"
	       "Serve the serial and virtio consoles of QEMU/KVM guests to many users.\n\n"
	       "Console sources:\n"
	       "  --domain-xml DIR       libvirt domain XML files in DIR (watched; repeatable)\n"
	       "  --console NAME=PATH    a chardev UNIX socket or pty (repeatable)\n"
	       "  --qmp PATH             a QEMU started without libvirt, by its QMP socket\n"
	       "                         (its UNIX-socket chardevs become consoles; repeatable)\n"
	       "  --libvirt URI          running libvirt domains and their events (repeatable;\n"
	       "                         default qemu:///system when no other source is given)\n"
	       "  --libvirt-qemu-monitor allow serial break on libvirt domains through the QEMU\n"
	       "                         monitor (needs a read-write connection; taints them)\n"
	       "  --no-consoles          no console source at all, not even the default (the\n"
	       "                         broker of a gateway's ttyhub-sshd)\n"
	       "  --libvirt-power        allow nmi, reset and powerdown on libvirt domains\n"
	       "                         (needs a read-write connection)\n\n"
	       "Options:\n"
	       "  --config FILE          options, one \"option = value\" per line\n"
	       "                         (default %s, if it exists)\n"
	       "  --socket PATH          broker socket (default %s)\n"
	       "  --access FILE          which SSH keys may use which consoles (default %s;\n"
	       "                         re-read on SIGHUP)\n"
	       "  --ring-size BYTES      history kept per console (default 1M; K/M/G suffixes)\n"
	       "  --replay N|all         lines replayed on attach by default (default 10)\n"
	       "  --log-dir DIR          keep a log file per console in DIR (default: none)\n"
	       "  --log-max-size BYTES   rotate a console's log at this size (default 2M)\n"
	       "  --log-backups N        rotated files kept per console (default 3)\n"
	       "  --log-timestamps       prefix every logged line with the UTC time\n"
	       "  --alert NAME=REGEX     raise an alert when a console's output line matches\n"
	       "                         REGEX (POSIX extended; repeatable; NAME replaces a\n"
	       "                         default: panic, oops, bug, emergency)\n"
	       "  --no-default-alerts    only the --alert options, not the defaults\n"
	       "  --record-dir DIR       record every attach session as an asciicast v2 file\n"
	       "                         in DIR/CONSOLE/ (default: none)\n"
	       "  --record-max-size BYTES  cap of one recording (default 16M)\n"
	       "  --record-keep N        recordings kept per console (default 100)\n"
	       "  --no-record-redact     record input typed after a password prompt as typed\n"
	       "  --admin-group GROUP    members may use the broker socket\n"
	       "  --front-user USER      a front (ttyhub-sshd) may connect as USER (repeatable)\n"
	       "  --lock-dir DIR         where pty LCK.. files go (default /var/lock)\n"
	       "  --guest-user USER      the user QEMU runs as (name or uid): the only peer\n"
	       "                         a chardev may have (default: per source; root only\n"
	       "                         if named here, not recommended)\n"
	       "  --max-clients N        front connections at most (default 4096); local admins\n"
	       "                         have their own (N or 64)\n"
	       "  --web-url URL          where users reach ttyhub-webd: web links are this URL\n"
	       "                         with #t=TOKEN&c=CONSOLE (default: no web links)\n"
	       "  --web-link-ttl S       seconds a web link may be redeemed (default 60)\n"
	       "  --web-session-ttl S    seconds a web session lasts (default 43200)\n"
	       "  -v, --verbose          debug logging\n"
	       "  -h, --help             this help\n"
	       "      --version          version\n",
	       DEFAULT_CONFIG, DEFAULT_SOCKET, DEFAULT_ACCESS);
}

static int parse_size(const char *s, size_t *ret)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	/* Range-check before shifting, so a huge number cannot wrap into range. */
	if (v > (1ULL << 32) >> shift)
		return -EINVAL;
	v <<= shift;
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end || v < 4096 || v > (1ULL << 32))
		return -EINVAL;
	*ret = (size_t)v;
	return 0;
}

/* "libvirt-qemu" or "64055": the user QEMU runs as, named by the operator. */
static int parse_guest_user(const char *s, struct peer_guest *ret)
{
	struct peer_guest g = { .set = true, .explicit = true };
	struct passwd *pw;
	char name[sizeof(g.name)];
	int r;

	r = peer_parse_user(s, true, &g.uid, name, sizeof(name));
	if (r < 0 || strchr(s, ':'))
		return -EINVAL;
	pw = r == 1 ? getpwuid(g.uid) : getpwnam(name);
	if (r == 0 && !pw)
		return -ENOENT;
	if (pw) {
		g.uid = pw->pw_uid;
		snprintf(g.name, sizeof(g.name), "%s", pw->pw_name);
	}
	*ret = g;
	return 0;
}

#define WEB_URL_MAX 1024

/*
 * --web-url: where users reach ttyhub-webd.  The link appends "#t=TOKEN&c=NAME",
 * so the URL must have no fragment of its own; no blanks or control
 * characters, which would end it in a terminal or a mail.
 */
static bool web_url_valid(const char *s)
{
	size_t n = strlen(s);

	if (n > WEB_URL_MAX || (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0))
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '#')
			return false;
	return true;
}

/* Returns 0 to run, 1 to exit successfully, -EINVAL on bad options. */
static int parse_argv(int argc, char *argv[])
{
	enum {
		ARG_DOMAIN_XML = 0x100, ARG_CONSOLE, ARG_SOCKET, ARG_RING_SIZE, ARG_REPLAY,
		ARG_ADMIN_GROUP, ARG_FRONT_USER, ARG_LOCK_DIR, ARG_MAX_CLIENTS, ARG_VERSION,
		ARG_WEB_URL, ARG_WEB_LINK_TTL, ARG_WEB_SESSION_TTL,
		ARG_LIBVIRT, ARG_LIBVIRT_MONITOR, ARG_QMP, ARG_CONFIG, ARG_LOG_DIR, ARG_LOG_MAX,
		ARG_LOG_BACKUPS, ARG_LOG_TIMESTAMPS, ARG_GUEST_USER, ARG_ACCESS, ARG_NO_CONSOLES,
		ARG_ALERT, ARG_NO_DEFAULT_ALERTS,
		ARG_RECORD_DIR, ARG_RECORD_MAX, ARG_RECORD_KEEP, ARG_NO_RECORD_REDACT,
		ARG_LIBVIRT_POWER,
	};
	static const struct option options[] = {
		{ "domain-xml", required_argument, NULL, ARG_DOMAIN_XML },
		{ "console", required_argument, NULL, ARG_CONSOLE },
		{ "socket", required_argument, NULL, ARG_SOCKET },
		{ "ring-size", required_argument, NULL, ARG_RING_SIZE },
		{ "replay", required_argument, NULL, ARG_REPLAY },
		{ "admin-group", required_argument, NULL, ARG_ADMIN_GROUP },
		{ "front-user", required_argument, NULL, ARG_FRONT_USER },
		{ "lock-dir", required_argument, NULL, ARG_LOCK_DIR },
		{ "max-clients", required_argument, NULL, ARG_MAX_CLIENTS },
		{ "web-url", required_argument, NULL, ARG_WEB_URL },
		{ "web-link-ttl", required_argument, NULL, ARG_WEB_LINK_TTL },
		{ "web-session-ttl", required_argument, NULL, ARG_WEB_SESSION_TTL },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{ "libvirt", required_argument, NULL, ARG_LIBVIRT },
		{ "libvirt-qemu-monitor", no_argument, NULL, ARG_LIBVIRT_MONITOR },
		{ "libvirt-power", no_argument, NULL, ARG_LIBVIRT_POWER },
		{ "qmp", required_argument, NULL, ARG_QMP },
		{ "log-dir", required_argument, NULL, ARG_LOG_DIR },
		{ "log-max-size", required_argument, NULL, ARG_LOG_MAX },
		{ "log-backups", required_argument, NULL, ARG_LOG_BACKUPS },
		{ "log-timestamps", no_argument, NULL, ARG_LOG_TIMESTAMPS },
		{ "alert", required_argument, NULL, ARG_ALERT },
		{ "no-default-alerts", no_argument, NULL, ARG_NO_DEFAULT_ALERTS },
		{ "record-dir", required_argument, NULL, ARG_RECORD_DIR },
		{ "record-max-size", required_argument, NULL, ARG_RECORD_MAX },
		{ "record-keep", required_argument, NULL, ARG_RECORD_KEEP },
		{ "no-record-redact", no_argument, NULL, ARG_NO_RECORD_REDACT },
		{ "config", required_argument, NULL, ARG_CONFIG },
		{ "guest-user", required_argument, NULL, ARG_GUEST_USER },
		{ "access", required_argument, NULL, ARG_ACCESS },
		{ "no-consoles", no_argument, NULL, ARG_NO_CONSOLES },
		{}
	};
	int c, idx;

	opterr = 0;
	optind = 0; /* reinitialise: called for the configuration file, then the command line */
	while ((c = getopt_long(argc, argv, "vh", options, &idx)) >= 0) {
		switch (c) {
		case ARG_DOMAIN_XML:
			if (arg_n_domain_xml >= ELEMENTSOF(arg_domain_xml))
				return log_error_errno(-EINVAL, "too many --domain-xml options");
			arg_domain_xml[arg_n_domain_xml++] = optarg;
			break;
		case ARG_CONSOLE:
			if (!strchr(optarg, '=') || optarg[0] == '=' ||
			    strchr(optarg, '=')[1] != '/')
				return log_error_errno(-EINVAL, "--console %s: expected NAME=/absolute/path",
						       optarg);
			if (arg_n_consoles >= ELEMENTSOF(arg_consoles))
				return log_error_errno(-EINVAL, "too many --console options");
			arg_consoles[arg_n_consoles++] = optarg;
			break;
		case ARG_CONFIG:
			arg_config_file = optarg;
			arg_config_required = true;
			break;
		case ARG_LIBVIRT:
			if (arg_n_libvirt >= ELEMENTSOF(arg_libvirt))
				return log_error_errno(-EINVAL, "too many --libvirt options");
			arg_libvirt[arg_n_libvirt++] = optarg;
			break;
		case ARG_QMP:
			if (optarg[0] != '/')
				return log_error_errno(-EINVAL, "--qmp %s: expected an absolute path",
						       optarg);
			if (arg_n_qmp >= ELEMENTSOF(arg_qmp))
				return log_error_errno(-EINVAL, "too many --qmp options");
			arg_qmp[arg_n_qmp++] = optarg;
			break;
		case ARG_LIBVIRT_MONITOR:
			arg_libvirt_monitor = true;
			break;
		case ARG_NO_CONSOLES:
			arg_no_consoles = true;
			break;
		case ARG_LIBVIRT_POWER:
			arg_libvirt_power = true;
			break;
		case ARG_SOCKET:
			arg_config.socket_path = optarg;
			break;
		case ARG_ACCESS:
			if (optarg[0] != '/')
				return log_error_errno(-EINVAL, "--access %s: expected an absolute path",
						       optarg);
			arg_config.access_path = optarg;
			break;
		case ARG_RING_SIZE:
			if (parse_size(optarg, &arg_config.ring_size) < 0)
				return log_error_errno(-EINVAL, "--ring-size %s: expected a size "
						       "from 4K to 4G, e.g. 1M", optarg);
			break;
		case ARG_REPLAY:
			if (proto_parse_replay_str(optarg, &arg_config.default_replay) < 0)
				return log_error_errno(-EINVAL, "--replay %s: expected a number of "
						       "lines (0-%ld) or 'all'", optarg,
						       PROTO_REPLAY_MAX);
			break;
		case ARG_ADMIN_GROUP: {
			struct group *g = getgrnam(optarg);

			if (!g)
				return log_error_errno(-EINVAL, "--admin-group %s: no such group", optarg);
			arg_config.admin_gid = g->gr_gid;
			break;
		}
		case ARG_FRONT_USER: {
			struct passwd *pw = getpwnam(optarg);

			if (!pw)
				return log_error_errno(-EINVAL, "--front-user %s: no such user", optarg);
			if (arg_config.n_front_uids >= SERVER_MAX_FRONT_USERS)
				return log_error_errno(-EINVAL, "too many --front-user options");
			arg_config.front_uids[arg_config.n_front_uids++] = pw->pw_uid;
			break;
		}
		case ARG_LOCK_DIR:
			if (optarg[0] != '/')
				return log_error_errno(-EINVAL,
						       "--lock-dir %s: expected an absolute path",
						       optarg);
			arg_lock_dir = optarg;
			break;
		case ARG_GUEST_USER:
			if (parse_guest_user(optarg, &arg_guest_user) < 0)
				return log_error_errno(-EINVAL, "--guest-user %s: no such user",
						       optarg);
			break;
		case ARG_MAX_CLIENTS: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || end == optarg || v < 1 || v > 1000000)
				return log_error_errno(-EINVAL, "--max-clients %s: expected 1-1000000",
						       optarg);
			arg_config.max_clients = (unsigned)v;
			break;
		}
		case ARG_WEB_URL:
			if (!web_url_valid(optarg))
				return log_error_errno(-EINVAL, "--web-url %s: expected an http:// or "
						       "https:// URL without '#', blanks or "
						       "control characters (at most %d bytes)",
						       optarg, WEB_URL_MAX);
			arg_config.web_url = optarg;
			break;
		case ARG_WEB_LINK_TTL:
		case ARG_WEB_SESSION_TTL: {
			char *end;
			unsigned long v;

			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || optarg[0] == '-' || v < 1 ||
			    v > 30UL * 24 * 3600)
				return log_error_errno(-EINVAL, "--%s %s: expected seconds "
						       "(1-2592000)", c == ARG_WEB_LINK_TTL ? "web-link-ttl"
						       : "web-session-ttl", optarg);
			if (c == ARG_WEB_LINK_TTL)
				arg_config.web_link_ttl = (unsigned)v;
			else
				arg_config.web_session_ttl = (unsigned)v;
			break;
		}
		case 'v':
			log_set_max_level(LOG_DEBUG);
			break;
		case 'h':
			help();
			return 1;
		case ARG_VERSION:
			printf("ttyhubd %s\n", TTYHUB_VERSION);
			return 1;
		case ARG_LOG_DIR:
			if (optarg[0] != '/')
				return log_error_errno(-EINVAL, "--log-dir %s: expected an absolute path",
						       optarg);
			arg_config.log_dir = optarg;
			break;
		case ARG_LOG_MAX:
			if (parse_size(optarg, &arg_config.log_max_size) < 0)
				return log_error_errno(-EINVAL, "--log-max-size %s: expected a size "
						       "from 4K to 4G, e.g. 2M", optarg);
			break;
		case ARG_LOG_BACKUPS: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || end == optarg || optarg[0] == '-' || v > CONSLOG_MAX_BACKUPS)
				return log_error_errno(-EINVAL, "--log-backups %s: expected 0-%d",
						       optarg, CONSLOG_MAX_BACKUPS);
			arg_config.log_backups = (unsigned)v;
			break;
		}
		case ARG_LOG_TIMESTAMPS:
			arg_config.log_timestamps = true;
			break;
		case ARG_ALERT: {
			char err[ALERT_ERROR_MAX];

			/* Compiled here too, so a configuration file's error has its line. */
			if (alert_spec_check(optarg, err, sizeof(err)) < 0)
				return log_error_errno(-EINVAL, "--alert %s", err);
			if (arg_n_alert_specs >= ELEMENTSOF(arg_alert_specs))
				return log_error_errno(-EINVAL, "too many --alert options (at most %d)",
						       ALERT_MAX);
			arg_alert_specs[arg_n_alert_specs++] = optarg;
			break;
		}
		case ARG_NO_DEFAULT_ALERTS:
			arg_no_default_alerts = true;
			break;
		case ARG_RECORD_DIR:
			if (optarg[0] != '/')
				return log_error_errno(-EINVAL, "--record-dir %s: expected an absolute "
						       "path", optarg);
			arg_config.record_dir = optarg;
			break;
		case ARG_RECORD_MAX:
			if (parse_size(optarg, &arg_config.record_max_size) < 0)
				return log_error_errno(-EINVAL, "--record-max-size %s: expected a size "
						       "from 4K to 4G, e.g. 16M", optarg);
			break;
		case ARG_RECORD_KEEP: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || end == optarg || optarg[0] == '-' || v < 1 ||
			    v > RECORDING_MAX_KEEP)
				return log_error_errno(-EINVAL, "--record-keep %s: expected 1-%d",
						       optarg, RECORDING_MAX_KEEP);
			arg_config.record_keep = (unsigned)v;
			break;
		}
		case ARG_NO_RECORD_REDACT:
			arg_config.record_redact = false;
			break;
		case '?':
			if (optopt)
				return log_error_errno(-EINVAL, "option -%c is unknown or needs an "
						       "argument; see --help", optopt);
			return log_error_errno(-EINVAL, "option %s is unknown or needs an argument; "
					       "see --help", argv[optind - 1]);
		default:
			return -EINVAL;
		}
	}
	if (optind < argc)
		return log_error_errno(-EINVAL, "unexpected argument '%s'; see --help", argv[optind]);
	return 0;
}

/* The alert set the options ask for, into arg_alerts (the defaults first, then --alert). */
static int build_alerts(void)
{
	_cleanup_(alert_set_freep) struct alert_set *set = NULL;
	char err[ALERT_ERROR_MAX];
	int r;

	r = alert_set_new(!arg_no_default_alerts, &set);
	if (r < 0)
		return log_error_errno(r, "cannot set up the alerts");
	for (size_t i = 0; i < arg_n_alert_specs; i++) {
		r = alert_set_add(set, arg_alert_specs[i], err, sizeof(err));
		if (r < 0)
			return log_error_errno(-EINVAL, "--alert %s", err);
	}
	alert_set_free(arg_alerts);
	arg_alerts = TAKE_PTR(set);
	return 0;
}

/*
 * Defaults, then the configuration file, then the command line (which wins
 * for single options; repeatable ones add up).  Used at start and on SIGHUP.
 */
static int load_args(int argc, char *argv[])
{
	int r;

	config_release_args();
	arg_config = default_config;
	arg_n_domain_xml = arg_n_consoles = arg_n_libvirt = arg_n_qmp = 0;
	arg_libvirt_monitor = false;
	arg_no_consoles = false;
	arg_libvirt_power = false;
	arg_lock_dir = NULL;
	arg_guest_user = (struct peer_guest){};
	arg_n_alert_specs = 0;
	arg_no_default_alerts = false;
	arg_config_file = DEFAULT_CONFIG;
	arg_config_required = false;
	config_find_arg(argc, argv, &arg_config_file, &arg_config_required);
	r = config_load(arg_config_file, arg_config_required, config_flags, parse_argv);
	if (r < 0)
		return r;
	r = parse_argv(argc, argv);
	if (r != 0)
		return r;
	if (arg_no_consoles && (arg_n_domain_xml > 0 || arg_n_consoles > 0 || arg_n_libvirt > 0 ||
				arg_n_qmp > 0))
		return log_error_errno(-EINVAL, "--no-consoles excludes --domain-xml, --console, "
				       "--qmp and --libvirt");
	r = build_alerts();
	if (r < 0)
		return r;
	/* Only a configuration without errors takes effect; chardev keeps copies. */
	r = chardev_set_lock_dir(arg_lock_dir);
	if (r < 0)
		return log_error_errno(r, "cannot set the lock directory");
	chardev_set_guest_user(arg_guest_user.set ? &arg_guest_user : NULL);
	return 0;
}

static int main_argc;
static char **main_argv;

static struct source *cmdline_source; /* the --console options; owned by the server */

/*
 * The alerts load_args() compiled become the ones every console scans with
 * (console_env.alerts is read at each scan; scanners keep only line state).
 */
static void apply_alerts(struct server *s)
{
	alert_set_free(active_alerts);
	active_alerts = TAKE_PTR(arg_alerts);
	s->console_env.alerts = active_alerts;
}

/*
 * SIGHUP: read the configuration again and apply what can change without
 * dropping consoles or clients; say what needs a restart.
 */
/* SIGTERM: wind down without dropping what writers typed (server_stop()). */
static int on_stop(sd_event_source *es, const struct signalfd_siginfo *si, void *userdata)
{
	struct server *s = userdata;

	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
	return server_stop(s);
}

static int on_reload(sd_event_source *es, const struct signalfd_siginfo *si, void *userdata)
{
	struct server *s = userdata;
	int r;

	sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
	log_info("SIGHUP: reloading the configuration");
	r = load_args(main_argc, main_argv);
	if (r != 0) {
		log_error("the new configuration has errors; nothing changed");
		/* The access file is read again all the same: revoking a key must not wait. */
		server_policy_reload(s, NULL);
		sd_notify(0, "READY=1");
		return 0;
	}
	server_policy_reload(s, arg_config.access_path);
	s->config.default_replay = arg_config.default_replay;
	s->config.admin_gid = arg_config.admin_gid;
	memcpy(s->config.front_uids, arg_config.front_uids, sizeof(arg_config.front_uids));
	s->config.n_front_uids = arg_config.n_front_uids;
	s->config.max_clients = arg_config.max_clients;
	apply_alerts(s);
	if (server_set_record(s, arg_config.record_dir, arg_config.record_max_size,
			      arg_config.record_keep, arg_config.record_redact) < 0)
		log_error("cannot apply the recording options: out of memory");
	if (server_set_web(s, arg_config.web_url, arg_config.web_link_ttl,
			   arg_config.web_session_ttl) < 0)
		log_error("cannot apply --web-url: out of memory");
	if (strcmp(arg_config.socket_path, s->config.socket_path) != 0 ||
	    arg_config.ring_size != s->config.ring_size ||
	    arg_n_domain_xml != source_list_count(&s->sources, "xmldir") ||
	    arg_n_libvirt != source_list_count(&s->sources, "libvirt") ||
	    arg_n_qmp != source_list_count(&s->sources, "qmp"))
		log_notice("changes to socket, ring-size, domain-xml, libvirt or qmp take effect at "
			   "the next restart");
	if (!cmdline_source != arg_no_consoles)
		log_notice("a change to no-consoles takes effect at the next restart");
	/* The sources see what changed: --console options come and go, XML files are reread. */
	r = cmdline_source ? source_cmdline_set(cmdline_source, arg_consoles, arg_n_consoles) : 0;
	if (r < 0)
		log_error_errno(r, "cannot apply the --console options");
	source_list_rescan(&s->sources);
	sd_notify(0, "READY=1");
	return 0;
}

/* STATUS= for systemctl status. */
static void describe_status(void *userdata, char *buf, size_t size)
{
	struct server *s = userdata;

	snprintf(buf, size, "%u console%s, %u client%s", s->registry.n_consoles,
		 s->registry.n_consoles == 1 ? "" : "s", s->n_clients, s->n_clients == 1 ? "" : "s");
}

static int ensure_socket_dir(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	if ((size_t)snprintf(dir, sizeof(dir), "%s", path) >= sizeof(dir))
		return -ENAMETOOLONG;
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return log_error_errno(negative_errno(), "cannot create %s", dir);
	return 0;
}

/* Every source the options name; the server owns each as soon as it is open. */
static int open_sources(struct server *s)
{
	struct source *src;
	int r;

	if (arg_no_consoles) {
		log_info("no console sources (--no-consoles)");
		return 0;
	}
	for (size_t i = 0; i < arg_n_domain_xml; i++) {
		r = source_xmldir_open(&s->source_env, arg_domain_xml[i], &src);
		if (r < 0)
			return r;
		server_add_source(s, src);
	}
	/* Always there, even with no option: a reload may add some. */
	r = source_cmdline_open(&s->source_env, arg_consoles, arg_n_consoles, &cmdline_source);
	if (r < 0)
		return r;
	server_add_source(s, cmdline_source);
	for (size_t i = 0; i < arg_n_qmp; i++) {
		r = source_qmp_open(&s->source_env, arg_qmp[i], &src);
		if (r < 0)
			return r;
		server_add_source(s, src);
	}
	if (arg_n_domain_xml == 0 && arg_n_consoles == 0 && arg_n_libvirt == 0 && arg_n_qmp == 0)
		arg_libvirt[arg_n_libvirt++] = "qemu:///system";
	for (size_t i = 0; i < arg_n_libvirt; i++) {
		r = source_libvirt_open(&s->source_env, arg_libvirt[i], arg_libvirt_monitor,
					arg_libvirt_power, &src);
		if (r < 0)
			return r;
		server_add_source(s, src);
	}
	return 0;
}

int main(int argc, char *argv[])
{
	sd_event *e = NULL;
	struct server s;
	int listen_fd, r;

	log_set_ident("ttyhubd");
	main_argc = argc;
	main_argv = argv;
	r = load_args(argc, argv);
	if (r != 0)
		return r > 0 ? EXIT_SUCCESS : 2;

	notify_block_signals();
	if (fd_limit_raise() < 0)
		log_warning("cannot raise the open files limit; staying at the soft limit");

	r = sd_event_default(&e);
	if (r < 0) {
		log_error_errno(r, "cannot create the event loop");
		return EXIT_FAILURE;
	}
	arg_config.no_consoles = arg_no_consoles;
	r = server_init(&s, e, &arg_config);
	if (r >= 0)
		r = notify_setup_loop_stop(e, on_stop, &s, on_reload, &s, describe_status, &s);
	if (r < 0) {
		log_error_errno(r, "cannot set up");
		goto out;
	}
	apply_alerts(&s);
	/*
	 * The fd store first: the kept chardev connections are drained into their
	 * kept rings from here on, before the slow work (libvirt, XML) below.
	 */
	r = fdstore_start(e, arg_config.ring_size);
	if (r < 0) {
		log_error_errno(r, "cannot take the fds systemd kept");
		goto out;
	}
	listen_fd = fdstore_take_listen_fd();
	if (listen_fd < 0 && sd_listen_fds(0) <= 0)
		ensure_socket_dir(arg_config.socket_path);
	r = server_listen(&s, listen_fd);
	if (r < 0)
		goto out;

	r = open_sources(&s);
	if (r < 0)
		goto out;
	/*
	 * Kept consoles that no source defined are gone: their history goes to
	 * their logs and they leave the store.  libvirt and QMP define theirs
	 * from the loop, so those get FDSTORE_ORPHAN_USEC to claim them.
	 */
	fdstore_release_orphans(s.console_env.log,
				arg_n_libvirt + arg_n_qmp > 0 ? FDSTORE_ORPHAN_USEC : 0);

	log_info("ttyhubd %s listening on %s with %u consoles", TTYHUB_VERSION,
		 arg_config.socket_path, s.registry.n_consoles);
	sd_notify(0, "READY=1");
	r = sd_event_loop(e);
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
out:
	/*
	 * Nothing reads the chardevs any more (the loop is over) and every log
	 * has what its ring has.  The store keeps the rings and connections for
	 * the next ttyhubd: closing our copies below removes nothing from it.
	 */
	fdstore_freeze();
	server_done(&s);
	fdstore_done();
	sd_event_unref(e);
	config_release_args();
	chardev_set_lock_dir(NULL);
	arg_alerts = alert_set_free(arg_alerts);
	active_alerts = alert_set_free(active_alerts);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
