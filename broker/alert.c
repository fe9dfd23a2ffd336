/* SPDX-License-Identifier: MIT */
/*
 * Alert sets and the per-console line scanner (model in alert.h).  No I/O:
 * the console turns events into journal entries and notices.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "log.h"
#include "util.h"

const char *const alert_defaults[][2] = {
	{ "panic", "Kernel panic" },
	{ "oops", "Oops:" },
	{ "bug", "BUG:" },
	{ "emergency", "emergency mode" },
	{ NULL, NULL },
};

static void alert_done(struct alert *a)
{
	regfree(&a->re);
	free(a->regex);
	a->regex = NULL;
}

struct alert_set *alert_set_free(struct alert_set *set)
{
	if (!set)
		return NULL;
	for (size_t i = 0; i < set->n; i++)
		alert_done(&set->alerts[i]);
	free(set);
	return NULL;
}

static bool alert_name_valid(const char *s, size_t len)
{
	if (len < 1 || len > ALERT_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

static int alert_error(char *err, size_t errsz, const char *spec, int r, const char *fmt, ...)
	_printf_(5, 6);
static int alert_error(char *err, size_t errsz, const char *spec, int r, const char *fmt, ...)
{
	char esc[128];
	int n;
	va_list ap;

	if (!err || errsz == 0)
		return r;
	/* The spec comes from a file or the command line: one printable line. */
	log_escape(spec, strlen(spec), esc, sizeof(esc));
	n = snprintf(err, errsz, "\"%s\": ", esc);
	if (n < 0 || (size_t)n >= errsz)
		return r;
	va_start(ap, fmt);
	vsnprintf(err + n, errsz - (size_t)n, fmt, ap);
	va_end(ap);
	return r;
}

/* Compile spec into *ret (name, regex, re); the caller sets builtin. */
static int alert_compile(const char *spec, struct alert *ret, char *err, size_t errsz)
{
	const char *eq = strchr(spec, '=');
	size_t name_len;
	char msg[256];
	int r;

	if (!eq)
		return alert_error(err, errsz, spec, -EINVAL, "expected NAME=REGEX");
	name_len = (size_t)(eq - spec);
	if (!alert_name_valid(spec, name_len))
		return alert_error(err, errsz, spec, -EINVAL, "the name must be 1-%d of "
				   "A-Z a-z 0-9 _ -", ALERT_NAME_MAX);
	if (eq[1] == '\0')
		return alert_error(err, errsz, spec, -EINVAL, "the regular expression is empty");
	*ret = (struct alert){};
	memcpy(ret->name, spec, name_len);
	ret->name[name_len] = '\0';
	r = regcomp(&ret->re, eq + 1, REG_EXTENDED | REG_NOSUB);
	if (r == REG_ESPACE)
		return alert_error(err, errsz, spec, -ENOMEM, "out of memory");
	if (r != 0) {
		regerror(r, &ret->re, msg, sizeof(msg));
		return alert_error(err, errsz, spec, -EINVAL, "invalid regular expression: %s",
				   msg);
	}
	ret->regex = strdup(eq + 1);
	ret->literal = eq[1 + strcspn(eq + 1, ".[]()*+?{}|^$\\")] == '\0';
	if (!ret->regex) {
		regfree(&ret->re);
		return alert_error(err, errsz, spec, -ENOMEM, "out of memory");
	}
	return 0;
}

int alert_spec_check(const char *spec, char *err, size_t errsz)
{
	struct alert a;
	int r = alert_compile(spec, &a, err, errsz);

	if (r < 0)
		return r;
	alert_done(&a);
	return 0;
}

int alert_set_add(struct alert_set *set, const char *spec, char *err, size_t errsz)
{
	struct alert a;
	size_t i;
	int r;

	r = alert_compile(spec, &a, err, errsz);
	if (r < 0)
		return r;
	for (i = 0; i < set->n; i++)
		if (strcmp(set->alerts[i].name, a.name) == 0)
			break;
	if (i == set->n && set->n >= ALERT_MAX) {
		alert_done(&a);
		return alert_error(err, errsz, spec, -E2BIG, "too many alerts (at most %d, "
				   "the defaults included)", ALERT_MAX);
	}
	if (i < set->n)
		alert_done(&set->alerts[i]); /* replaced in place: it keeps its turn */
	else
		set->n++;
	set->alerts[i] = a;
	return 0;
}

int alert_set_new(bool with_defaults, struct alert_set **ret)
{
	struct alert_set *set = calloc(1, sizeof(*set));

	if (!set)
		return -ENOMEM;
	for (size_t i = 0; with_defaults && alert_defaults[i][0]; i++) {
		char spec[ALERT_NAME_MAX + 64];
		int r;

		snprintf(spec, sizeof(spec), "%s=%s", alert_defaults[i][0], alert_defaults[i][1]);
		r = alert_set_add(set, spec, NULL, 0);
		if (r < 0) {
			alert_set_free(set);
			return r;
		}
		set->alerts[set->n - 1].builtin = true;
	}
	*ret = set;
	return 0;
}

const struct alert *alert_set_match(const struct alert_set *set, const char *line)
{
	for (size_t i = 0; set && i < set->n; i++)
		if (set->alerts[i].literal ? strstr(line, set->alerts[i].regex) != NULL
					   : regexec(&set->alerts[i].re, line, 0, NULL, 0) == 0)
			return &set->alerts[i];
	return NULL;
}

void alert_scanner_init(struct alert_scanner *s)
{
	*s = (struct alert_scanner){ .state = ALERT_SCAN_TEXT };
}

/* The current line is complete (or full): match it, maybe raise.  Returns 1 if raised. */
static size_t alert_scanner_line(struct alert_scanner *s, const struct alert_set *set,
				 uint64_t now_usec, alert_fn fn, void *userdata)
{
	const struct alert *a;
	struct alert_event ev;

	if (s->len == 0 || !set || set->n == 0)
		return 0;
	s->line[s->len] = '\0';
	a = alert_set_match(set, s->line);
	if (!a)
		return 0;
	/* A fresh window when the last one is over (or none was started). */
	if (s->in_window == 0 || now_usec - s->window_start >= ALERT_RATE_WINDOW_USEC ||
	    now_usec < s->window_start) {
		s->window_start = now_usec;
		s->in_window = 0;
	}
	if (s->in_window >= ALERT_RATE_BURST) {
		s->suppressed++;
		s->dropped++;
		return 0;
	}
	s->in_window++;
	s->raised++;
	ev = (struct alert_event){
		.alert = a,
		.line = s->line,
		.line_len = s->len,
		.suppressed = s->suppressed,
	};
	s->suppressed = 0;
	if (fn)
		fn(userdata, &ev);
	return 1;
}

/* Bytes that are not plain text to the scanner: C0 controls (NUL ends the string) and DEL. */
#define ALERT_CONTROLS \
	"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14" \
	"\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f"

size_t alert_scanner_feed(struct alert_scanner *s, const struct alert_set *set,
			  const void *data, size_t len, uint64_t now_usec, alert_fn fn,
			  void *userdata)
{
	const uint8_t *p = data;
	size_t raised = 0;

	for (size_t i = 0; i < len; i++) {
		uint8_t b = p[i];

		/*
		 * The most common case, a whole plain line at a line start: found
		 * and checked by libc's string functions (one pass each, no state
		 * step per byte), then matched as the state machine would.
		 */
		if (s->state == ALERT_SCAN_TEXT && s->len == 0) {
			const uint8_t *nl = memchr(p + i, '\n', len - i);
			size_t n = nl ? (size_t)(nl - (p + i)) : 0;

			if (nl && n < ALERT_LINE_MAX) {
				memcpy(s->line, p + i, n);
				s->line[n] = '\0';
				if (strcspn(s->line, ALERT_CONTROLS) == n) {
					s->len = n;
					raised += alert_scanner_line(s, set, now_usec, fn, userdata);
					s->len = 0;
					i += n; /* the LF: the next line starts after it */
					continue;
				}
			}
		}
		/*
		 * Plain text within a line: find the run of printable bytes and
		 * copy it at once (no state step per byte), up to the line's room.
		 */
		if (s->state == ALERT_SCAN_TEXT && b >= 0x20 && b != 0x7f) {
			size_t room = ALERT_LINE_MAX - s->len, n = 1;

			while (n < room && i + n < len && p[i + n] >= 0x20 && p[i + n] != 0x7f)
				n++;
			memcpy(s->line + s->len, p + i, n);
			s->len += n;
			i += n - 1;
			if (s->len == ALERT_LINE_MAX) {
				raised += alert_scanner_line(s, set, now_usec, fn, userdata);
				s->state = ALERT_SCAN_SKIP;
			}
			continue;
		}
		/* LF ends the line in every state: nothing unterminated eats more than one. */
		if (b == '\n') {
			if (s->state != ALERT_SCAN_SKIP)
				raised += alert_scanner_line(s, set, now_usec, fn, userdata);
			s->len = 0;
			s->state = ALERT_SCAN_TEXT;
			continue;
		}
		switch (s->state) {
		case ALERT_SCAN_TEXT:
			if (b == 0x1b) {
				s->state = ALERT_SCAN_ESC;
				continue;
			}
			if (b == '\t')
				b = ' ';
			else if (b < 0x20 || b == 0x7f)
				continue; /* CR, BS, BEL, NUL...: not text */
			s->line[s->len++] = (char)b;
			if (s->len == ALERT_LINE_MAX) {
				raised += alert_scanner_line(s, set, now_usec, fn, userdata);
				s->state = ALERT_SCAN_SKIP;
			}
			break;
		case ALERT_SCAN_ESC:
			if (b == '[')
				s->state = ALERT_SCAN_CSI;
			else if (b == ']' || b == 'P' || b == '_' || b == '^' || b == 'X')
				s->state = ALERT_SCAN_STRING;
			else if (b >= 0x20 && b <= 0x2f)
				s->state = ALERT_SCAN_ESC_INT;
			else if (b == 0x1b)
				s->state = ALERT_SCAN_ESC;
			else
				s->state = ALERT_SCAN_TEXT; /* ESC 7, ESC M...: two bytes */
			break;
		case ALERT_SCAN_ESC_INT:
			if (b < 0x20 || b > 0x2f)
				s->state = b == 0x1b ? ALERT_SCAN_ESC : ALERT_SCAN_TEXT;
			break;
		case ALERT_SCAN_CSI:
			if (b == 0x1b)
				s->state = ALERT_SCAN_ESC;
			else if (b >= 0x40 && b <= 0x7e)
				s->state = ALERT_SCAN_TEXT;
			/* parameters, intermediates and stray controls stay in the sequence */
			break;
		case ALERT_SCAN_STRING:
			if (b == 0x07)
				s->state = ALERT_SCAN_TEXT;
			else if (b == 0x1b)
				s->state = ALERT_SCAN_STRING_ESC;
			break;
		case ALERT_SCAN_STRING_ESC:
			/* ESC \ ends the string; any other ESC ends it too, as terminals do. */
			s->state = b == '[' ? ALERT_SCAN_CSI : ALERT_SCAN_TEXT;
			break;
		case ALERT_SCAN_SKIP:
			break;
		}
	}
	return raised;
}
