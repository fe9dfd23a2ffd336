/* SPDX-License-Identifier: MIT */
/*
 * Alerts (broker/alert.h): spec parsing and its errors, the defaults and
 * their replacement, line splitting across feeds, CR and escape sequences
 * stripped before matching, over-long lines (matched once on their first
 * ALERT_LINE_MAX bytes, the rest skipped), one alert per line, and the rate
 * limit on an injected clock with the suppressed count carried by the next
 * alert let through.  Then the console's side (console.c) on a real loop and
 * a guest socket: output is scanned as it arrives, each byte once (not the
 * console's own marker lines), an alert is a stderr line (no journal here)
 * and a notice to everyone attached after the line was flushed to them, the
 * set can be swapped under a live console, and the rate limit is per console.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "broker-fixture.h"

#include "alert.h"
#include "console.h"
#include "domain.h"
#include "server.h"

#define SEC UINT64_C(1000000)

struct seen {
	size_t n;
	char name[16][ALERT_NAME_MAX + 1];
	char line[16][ALERT_LINE_MAX + 1];
	size_t len[16];
	unsigned suppressed[16];
};

static void on_alert(void *userdata, const struct alert_event *ev)
{
	struct seen *s = userdata;

	assert_true(ev->line_len <= ALERT_LINE_MAX);
	assert_int_equal(strlen(ev->line), ev->line_len);
	if (s->n < 16) {
		snprintf(s->name[s->n], sizeof(s->name[0]), "%s", ev->alert->name);
		memcpy(s->line[s->n], ev->line, ev->line_len + 1);
		s->len[s->n] = ev->line_len;
		s->suppressed[s->n] = ev->suppressed;
	}
	s->n++;
}

static size_t feed(struct alert_scanner *sc, const struct alert_set *set, const char *text,
		   uint64_t now, struct seen *seen)
{
	return alert_scanner_feed(sc, set, text, strlen(text), now, on_alert, seen);
}

static struct alert_set *set_of(bool defaults, const char *const *specs)
{
	struct alert_set *set;

	assert_int_equal(alert_set_new(defaults, &set), 0);
	for (; specs && *specs; specs++)
		assert_int_equal(alert_set_add(set, *specs, NULL, 0), 0);
	return set;
}

static void test_defaults(void **state)
{
	struct alert_set *set = set_of(true, NULL);

	assert_int_equal(set->n, 4);
	assert_string_equal(set->alerts[0].name, "panic");
	assert_string_equal(set->alerts[1].name, "oops");
	assert_string_equal(set->alerts[2].name, "bug");
	assert_string_equal(set->alerts[3].name, "emergency");
	for (size_t i = 0; i < set->n; i++)
		assert_true(set->alerts[i].builtin);
	assert_string_equal(alert_set_match(set, "[ 1.2] Kernel panic - not syncing: VFS")->name,
			    "panic");
	assert_string_equal(alert_set_match(set, "Oops: 0002 [#1] SMP")->name, "oops");
	assert_string_equal(alert_set_match(set, "BUG: unable to handle page fault")->name,
			    "bug");
	assert_string_equal(alert_set_match(set, "You are in emergency mode. After")->name,
			    "emergency");
	assert_null(alert_set_match(set, "kernel panic (lower case)"));
	assert_null(alert_set_match(set, "login: "));
	alert_set_free(set);

	set = set_of(false, NULL);
	assert_int_equal(set->n, 0);
	assert_null(alert_set_match(set, "Kernel panic"));
	alert_set_free(set);
	assert_null(alert_set_free(NULL));
}

static void test_parse(void **state)
{
	static const char *const bad[] = {
		"noequals", "=regex", "name=", "bad name=x", "toolongnametoolongnametoolongname=x",
		"é=x", "a.b=x", "paren=(", "bracket=[a", "brace=a{1", "star=*",
	};
	struct alert_set *set = set_of(false, NULL);
	char err[ALERT_ERROR_MAX];

	assert_int_equal(alert_set_add(set, "disk_full-2=No space left( on device)?", err,
				       sizeof(err)), 0);
	assert_int_equal(alert_set_add(set, "a=b=c", err, sizeof(err)), 0);
	assert_int_equal(set->n, 2);
	assert_string_equal(set->alerts[0].name, "disk_full-2");
	assert_string_equal(set->alerts[0].regex, "No space left( on device)?");
	assert_false(set->alerts[0].builtin);
	/* The first '=' splits: the regex may hold more. */
	assert_string_equal(set->alerts[1].name, "a");
	assert_string_equal(set->alerts[1].regex, "b=c");
	assert_non_null(alert_set_match(set, "write: No space left on device"));
	assert_int_equal(alert_spec_check("x32456789012345678901234567890123=y", NULL, 0), -EINVAL);
	assert_int_equal(alert_spec_check("x3245678901234567890123456789012=y", NULL, 0), 0);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(alert_set_add(set, bad[i], err, sizeof(err)), -EINVAL);
		assert_int_equal(alert_spec_check(bad[i], err, sizeof(err)), -EINVAL);
		/* The message names the spec (escaped) and says why. */
		assert_non_null(strstr(err, "\""));
		assert_true(strlen(err) > strlen("\"\": "));
	}
	assert_int_equal(set->n, 2);
	/* A bad regex: regerror()'s text. */
	assert_int_equal(alert_set_add(set, "paren=(", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "\"paren=(\""));
	assert_non_null(strstr(err, "invalid regular expression: "));
	/* A control character in a spec is shown escaped. */
	assert_int_equal(alert_set_add(set, "a\x1b=x", err, sizeof(err)), -EINVAL);
	assert_null(strchr(err, 0x1b));
	assert_non_null(strstr(err, "\\x1b"));
	/* A tiny error buffer is not overrun; NULL is fine. */
	assert_int_equal(alert_set_add(set, "paren=(", err, 4), -EINVAL);
	assert_true(strlen(err) < 4);
	assert_int_equal(alert_set_add(set, "paren=(", NULL, 0), -EINVAL);
	alert_set_free(set);
}

static void test_replace_and_limit(void **state)
{
	static const char *const specs[] = { "panic=PANIC!", "mine=x", "mine=yz", NULL };
	struct alert_set *set = set_of(true, specs);
	char err[ALERT_ERROR_MAX], spec[64];

	assert_int_equal(set->n, 5);
	/* Replaced in place: still first, no longer built in, the old regex gone. */
	assert_string_equal(set->alerts[0].name, "panic");
	assert_string_equal(set->alerts[0].regex, "PANIC!");
	assert_false(set->alerts[0].builtin);
	assert_null(alert_set_match(set, "Kernel panic - not syncing"));
	assert_string_equal(alert_set_match(set, "a PANIC! b")->name, "panic");
	/* The later of two user specs with one name wins. */
	assert_string_equal(set->alerts[4].name, "mine");
	assert_null(alert_set_match(set, "x"));
	assert_string_equal(alert_set_match(set, "xyz")->name, "mine");

	for (size_t i = set->n; i < ALERT_MAX; i++) {
		snprintf(spec, sizeof(spec), "a%zu=b", i);
		assert_int_equal(alert_set_add(set, spec, err, sizeof(err)), 0);
	}
	assert_int_equal(set->n, ALERT_MAX);
	assert_int_equal(alert_set_add(set, "onemore=x", err, sizeof(err)), -E2BIG);
	assert_non_null(strstr(err, "too many alerts"));
	/* A full set still takes replacements. */
	assert_int_equal(alert_set_add(set, "oops=other", err, sizeof(err)), 0);
	assert_int_equal(set->n, ALERT_MAX);
	alert_set_free(set);
}

static void test_lines(void **state)
{
	static const char *const specs[] = { "word=^hello world$", NULL };
	struct alert_set *set = set_of(true, specs);
	struct alert_scanner sc;
	struct seen seen = {};
	const char *text = "boot\r\nhello world\r\nKernel panic - not syncing\nBUG: x Oops: y\n";

	alert_scanner_init(&sc);
	/* Byte by byte: a line is matched when its LF comes, not before. */
	for (size_t i = 0; text[i]; i++) {
		alert_scanner_feed(&sc, set, text + i, 1, 0, on_alert, &seen);
		if (i + 1 < strlen("boot\r\nhello world\r\n"))
			assert_int_equal(seen.n, 0);
	}
	assert_int_equal(seen.n, 3);
	assert_string_equal(seen.name[0], "word"); /* CR stripped: ^...$ matches */
	assert_string_equal(seen.line[0], "hello world");
	assert_string_equal(seen.name[1], "panic");
	assert_string_equal(seen.line[1], "Kernel panic - not syncing");
	/* One alert per line, the first in order that matches (oops before bug). */
	assert_string_equal(seen.name[2], "oops");

	/* An unterminated line raises nothing yet; its LF in a later feed does. */
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(feed(&sc, set, "Oops: half", 0, &seen), 0);
	assert_int_equal(feed(&sc, set, " a line", 0, &seen), 0);
	assert_int_equal(feed(&sc, set, "\n\n\n", 0, &seen), 1);
	assert_string_equal(seen.line[0], "Oops: half a line");
	/* Empty lines and a NULL or empty set: nothing, and no crash. */
	assert_int_equal(feed(&sc, NULL, "Kernel panic\n", 0, &seen), 0);
	alert_set_free(set);
	set = set_of(false, NULL);
	assert_int_equal(feed(&sc, set, "Kernel panic\n", 0, &seen), 0);
	assert_int_equal(seen.n, 1);
	alert_set_free(set);
}

static void test_escapes(void **state)
{
	struct alert_set *set = set_of(true, NULL);
	struct alert_scanner sc;
	struct seen seen = {};

	alert_scanner_init(&sc);
	/* Colours inside the words, a title (OSC ... BEL), a charset switch, BS and NUL. */
	static const char colours[] = "\x1b[1;31mKer\x1b[0mnel \x1b]0;title\x07pa\x1b(Bnic"
				      "\x08\x00\x7f\r\n";

	assert_int_equal(alert_scanner_feed(&sc, set, colours, sizeof(colours) - 1, 0, on_alert,
					    &seen), 1);
	assert_string_equal(seen.line[0], "Kernel panic");
	/* OSC ended by ESC \, DCS, a two-byte ESC 7, CSI with intermediates, a tab. */
	assert_int_equal(feed(&sc, set, "\x1b]8;;http://x\x1b\\Oo\x1bPq#0\x1b\\ps\x1b" "7:\x1b[?25h"
				   "\tend\n", 0, &seen), 1);
	assert_string_equal(seen.line[1], "Oops: end");
	/* An escape split across feeds. */
	assert_int_equal(feed(&sc, set, "BU\x1b", 0, &seen), 0);
	assert_int_equal(feed(&sc, set, "[3", 0, &seen), 0);
	assert_int_equal(feed(&sc, set, "2mG: yes\n", 0, &seen), 1);
	assert_string_equal(seen.line[2], "BUG: yes");
	/* An unterminated string ends at the LF: the next line is scanned again. */
	assert_int_equal(feed(&sc, set, "\x1b]0;never ends\nKernel panic\n", 0, &seen), 1);
	assert_string_equal(seen.line[3], "Kernel panic");
	/* UTF-8 is kept as it is. */
	assert_int_equal(feed(&sc, set, "\xc3\xa9t\xc3\xa9 Oops: \xe2\x82\xac\n", 0, &seen), 1);
	assert_string_equal(seen.line[4], "\xc3\xa9t\xc3\xa9 Oops: \xe2\x82\xac");
	alert_set_free(set);
}

static void test_long_lines(void **state)
{
	struct alert_set *set = set_of(true, NULL);
	struct alert_scanner sc;
	struct seen seen = {};
	char *buf = malloc(3 * ALERT_LINE_MAX + 2);

	assert_non_null(buf);
	alert_scanner_init(&sc);
	/* A match within the first ALERT_LINE_MAX bytes: raised once, as soon as they are in. */
	memset(buf, 'x', 3 * ALERT_LINE_MAX);
	memcpy(buf + 10, "Oops:", 5);
	memcpy(buf + 2 * ALERT_LINE_MAX, "Oops:", 5); /* in the skipped rest */
	assert_int_equal(alert_scanner_feed(&sc, set, buf, ALERT_LINE_MAX, 0, on_alert, &seen), 1);
	assert_int_equal(seen.len[0], ALERT_LINE_MAX);
	assert_int_equal(alert_scanner_feed(&sc, set, buf + ALERT_LINE_MAX, 2 * ALERT_LINE_MAX, 0,
					    on_alert, &seen), 0);
	assert_int_equal(feed(&sc, set, "\n", 0, &seen), 0);
	assert_int_equal(seen.n, 1);
	/* A match past the first ALERT_LINE_MAX bytes is not seen ... */
	memset(buf, 'x', 3 * ALERT_LINE_MAX);
	memcpy(buf + ALERT_LINE_MAX + 5, "Kernel panic", 12);
	buf[3 * ALERT_LINE_MAX] = '\n';
	assert_int_equal(alert_scanner_feed(&sc, set, buf, 3 * ALERT_LINE_MAX + 1, 0, on_alert,
					    &seen), 0);
	/* ... and the line after it is scanned from its start. */
	assert_int_equal(feed(&sc, set, "Kernel panic\n", 0, &seen), 1);
	assert_string_equal(seen.line[1], "Kernel panic");
	/* Escape sequences do not count against the bound: it is the cleaned text. */
	for (size_t i = 0; i < 400; i++)
		feed(&sc, set, "\x1b[31m\x1b[0m", 0, &seen);
	assert_int_equal(feed(&sc, set, "BUG: after colours\n", 0, &seen), 1);
	assert_string_equal(seen.line[2], "BUG: after colours");
	free(buf);
	alert_set_free(set);
}

static void test_rate_limit(void **state)
{
	struct alert_set *set = set_of(true, NULL);
	struct alert_scanner sc, other;
	struct seen seen = {};
	uint64_t t = 1000 * SEC;

	alert_scanner_init(&sc);
	alert_scanner_init(&other);
	for (int i = 0; i < 20; i++)
		feed(&sc, set, "Kernel panic\n", t + (uint64_t)i * SEC, &seen);
	assert_int_equal(seen.n, ALERT_RATE_BURST);
	for (size_t i = 0; i < ALERT_RATE_BURST; i++)
		assert_int_equal(seen.suppressed[i], 0);
	assert_int_equal(sc.raised, ALERT_RATE_BURST);
	assert_int_equal(sc.dropped, 20 - ALERT_RATE_BURST);
	/* Per scanner (console): another one is not limited by this one. */
	assert_int_equal(feed(&other, set, "Oops: 1\n", t + 20 * SEC, &seen), 1);
	/* Still inside the window (it started at t): dropped. */
	assert_int_equal(feed(&sc, set, "Kernel panic\n", t + ALERT_RATE_WINDOW_USEC - 1, &seen),
			 0);
	/* The next window: the first alert carries what was suppressed. */
	assert_int_equal(feed(&sc, set, "BUG: next\n", t + ALERT_RATE_WINDOW_USEC, &seen), 1);
	assert_int_equal(seen.n, ALERT_RATE_BURST + 2);
	assert_string_equal(seen.name[ALERT_RATE_BURST + 1], "bug");
	assert_int_equal(seen.suppressed[ALERT_RATE_BURST + 1], 20 - ALERT_RATE_BURST + 1);
	/* ... and only that one. */
	assert_int_equal(feed(&sc, set, "BUG: again\n", t + ALERT_RATE_WINDOW_USEC + 1, &seen), 1);
	assert_int_equal(seen.suppressed[ALERT_RATE_BURST + 2], 0);
	/* A clock that goes back (another clock after a restart) starts a new window. */
	alert_scanner_init(&sc);
	for (int i = 0; i < ALERT_RATE_BURST; i++)
		feed(&sc, set, "Kernel panic\n", t, &seen);
	assert_int_equal(feed(&sc, set, "Kernel panic\n", t, &seen), 0);
	assert_int_equal(feed(&sc, set, "Kernel panic\n", 5, &seen), 1);
	/* 10,000 matching lines in one feed at one instant: exactly the burst. */
	alert_scanner_init(&sc);
	memset(&seen, 0, sizeof(seen));
	{
		size_t n = 10000 * 13;
		char *many = malloc(n);

		assert_non_null(many);
		for (size_t i = 0; i < 10000; i++)
			memcpy(many + 13 * i, "Kernel panic\n", 13);
		assert_int_equal(alert_scanner_feed(&sc, set, many, n, t, on_alert, &seen),
				 ALERT_RATE_BURST);
		free(many);
	}
	assert_int_equal(sc.dropped, 10000 - ALERT_RATE_BURST);
	alert_set_free(set);
}

/* ---- the console's side --------------------------------------------------- */

#define NOTICES 32
struct att {
	struct console_attachment att;
	char notices[NOTICES][512];
	bool flushed_before[NOTICES]; /* everything read was flushed when it came */
	unsigned n;
};

static struct att *att_of(struct console_attachment *a)
{
	return (struct att *)((char *)a - offsetof(struct att, att));
}

static void att_notice(struct console_attachment *a, const char *text)
{
	struct att *t = att_of(a);

	assert_true(t->n < NOTICES);
	snprintf(t->notices[t->n], sizeof(t->notices[0]), "%s", text);
	t->flushed_before[t->n] = a->pos == ring_head(&a->console->ring);
	t->n++;
}

static void att_send(struct console_attachment *a, json_t *msg)
{
	json_decref(msg);
}

static void att_flush(struct console_attachment *a)
{
	a->pos = ring_head(&a->console->ring);
}

static void att_resume_input(struct console_attachment *a)
{
}

static void att_who(const struct console_attachment *a, bool with_local,
		    struct proto_who_client *ret)
{
}

static const struct console_attachment_ops att_ops = {
	.notice = att_notice,
	.send = att_send,
	.flush = att_flush,
	.resume_input = att_resume_input,
	.who = att_who,
};

static unsigned alert_notices(const struct att *t)
{
	unsigned n = 0;

	for (unsigned i = 0; i < t->n; i++)
		n += strncmp(t->notices[i], "alert ", 6) == 0;
	return n;
}

/* The guest writes text; the loop runs until the console has read all of it. */
static void guest_says(sd_event *e, struct guest *g, struct console *c, const char *text)
{
	uint64_t want = ring_head(&c->ring) + strlen(text);

	assert_int_equal(write(g->fd, text, strlen(text)), (ssize_t)strlen(text));
	LOOP_UNTIL(e, ring_head(&c->ring) >= want);
	loop_pump(e);
}

static void test_console(void **state)
{
	static const char *const specs[] = { "colour=^MARKER$", NULL };
	const struct server_config cfg = {
		.socket_path = "/nonexistent/ttyhub-unit.sock",
		.ring_size = 64 * 1024,
		.default_replay = 10,
		.admin_gid = (gid_t)-1,
		.max_clients = 16,
	};
	struct console_spec spec = {
		.vm = "vm", .alias = "serial0", .origin = "test", .primary = true,
		.supported = true, .backend = DOMXML_BACKEND_UNIX, .type = "unix",
	};
	struct alert_set *set = set_of(true, specs);
	struct att t = { .att = { .ops = &att_ops, .right = ACCESS_RO } };
	char errpath[] = "/tmp/ttyhub-unit-alert-XXXXXX", log[8192];
	struct server s;
	struct console *c;
	struct guest g;
	sd_event *e;
	int errfd, saved;
	ssize_t n;

	/* stderr into a file: no journal here, so alerts are stderr lines. */
	unsetenv("JOURNAL_STREAM");
	errfd = mkstemp(errpath);
	assert_true(errfd >= 0);
	unlink(errpath);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0 && dup2(errfd, STDERR_FILENO) == STDERR_FILENO);

	assert_int_equal(sd_event_new(&e), 0);
	assert_int_equal(server_init(&s, e, &cfg), 0);
	s.console_env.alerts = set;
	guest_listen(&g);
	spec.path = g.path;
	assert_int_equal(domain_add_console(&s.source_env, &spec, &c), 0);
	guest_accept(&g, e);
	LOOP_UNTIL(e, c->chardev.state == CHARDEV_CONNECTED);
	console_attach(c, &t.att, ATTACH_RO, 0);
	t.n = 0;

	/* Half a line: nothing yet; its end raises the alert, after the line was flushed. */
	guest_says(e, &g, c, "boot ok\r\nKernel pa");
	assert_int_equal(alert_notices(&t), 0);
	guest_says(e, &g, c, "nic - not syncing\r\n\x1b[1mMARK\x1b[0mER\r\n");
	assert_int_equal(t.n, 2);
	assert_string_equal(t.notices[0], "alert panic: Kernel panic - not syncing");
	assert_string_equal(t.notices[1], "alert colour: MARKER");
	assert_true(t.flushed_before[0] && t.flushed_before[1]);

	/* ttyhub's own marker lines are not guest output: not scanned. */
	console_mark(c, "Kernel panic in a marker");
	assert_int_equal(alert_notices(&t), 2);
	/* Guest text is escaped in the notice. */
	guest_says(e, &g, c, "Oops: \xff\xfe\n");
	assert_string_equal(t.notices[t.n - 1], "alert oops: Oops: \\xff\\xfe");

	/* No set (a reload could do that): nothing; a new set applies at once. */
	s.console_env.alerts = NULL;
	guest_says(e, &g, c, "Kernel panic\n");
	assert_int_equal(alert_notices(&t), 3);
	s.console_env.alerts = set;

	/* The rate limit: 5 in the window, then silence. */
	for (int i = 0; i < 20; i++)
		guest_says(e, &g, c, "BUG: again\n");
	assert_int_equal(alert_notices(&t), ALERT_RATE_BURST);
	assert_int_equal(c->alerts.dropped, 20 - (ALERT_RATE_BURST - 3));

	/* The stderr lines, one per alert, crit for the defaults and err for the others. */
	fflush(stderr);
	n = pread(errfd, log, sizeof(log) - 1, 0);
	assert_true(n > 0);
	log[n] = '\0';
	assert_non_null(strstr(log, "<2>ttyhub: alert panic on vm:serial0: Kernel panic - not "
				    "syncing\n"));
	assert_non_null(strstr(log, "<3>ttyhub: alert colour on vm:serial0: MARKER\n"));
	assert_non_null(strstr(log, "<2>ttyhub: alert oops on vm:serial0: Oops: \\xff\\xfe\n"));
	{
		unsigned lines = 0;

		for (const char *p = log; (p = strstr(p, ": alert ")); p++)
			lines++;
		assert_int_equal(lines, ALERT_RATE_BURST);
	}

	assert_true(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
	close(saved);
	close(errfd);
	console_detach(c, &t.att, false);
	s.console_env.alerts = NULL;
	server_done(&s);
	guest_done(&g);
	sd_event_unref(e);
	alert_set_free(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_replace_and_limit),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_rate_limit),
		cmocka_unit_test(test_console),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
