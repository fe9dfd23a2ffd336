/* SPDX-License-Identifier: MIT */
/*
 * Escape-command parser.  A three-state machine over keystrokes:
 *
 *   state 0  nothing held; a first prefix byte is held and moves to 1,
 *            anything else goes to the guest;
 *   state 1  first prefix byte held; the second prefix byte moves to 2, a
 *            first prefix byte releases the held one and stays in 1, anything
 *            else releases the held byte followed by itself;
 *   state 2  whole prefix held; a command byte is consumed and returned,
 *            anything else releases the prefix followed by itself;
 *   state 3  after S: the next byte is consumed as sysrq's key;
 *   state 4  after R or P with confirm: the next byte is consumed as the answer.
 * States 3 and 4 hold nothing: their byte never reaches the guest.
 *
 * Held bytes live only in the state (they are the known prefix), so a prefix
 * split across reads needs no buffer and at most two held bytes are released
 * by one call, hence the len + 2 output bound.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "escape.h"
#include "util.h"

static const struct {
	enum escape_cmd cmd;
	const char *what;
} escape_table[] = {
	{ ESCAPE_DETACH, "detach" },
	{ ESCAPE_FORCE, "force write access (take over from the current writer)" },
	{ ESCAPE_ATTACH_RW, "attach read-write if nobody is writing" },
	{ ESCAPE_SPY, "drop to read-only (spy)" },
	{ ESCAPE_WHO, "who is attached" },
	{ ESCAPE_REPLAY, "replay recent output" },
	{ ESCAPE_BREAK, "send a serial break" },
	{ ESCAPE_SYSRQ, "KEY: send a serial break and the SysRq KEY (0-9, a-z)" },
	{ ESCAPE_NMI, "send an NMI to the guest" },
	{ ESCAPE_RESET, "reset the guest (asks first)" },
	{ ESCAPE_POWERDOWN, "power the guest down (asks first)" },
	{ ESCAPE_HELP, "this help" },
};

#define ESCAPE_NCMDS (sizeof(escape_table) / sizeof(escape_table[0]))

void escape_init(struct escape *e, uint8_t p0, uint8_t p1)
{
	e->prefix[0] = p0;
	e->prefix[1] = p1;
	e->state = 0;
	e->pending = 0;
	e->arg = 0;
	e->confirm = false; /* the front turns it on for an interactive session */
}

/* A Linux SysRq key as ttyhub sends them (proto.h's PROTO_SYSRQ_KEYS). */
static bool escape_is_sysrq_key(uint8_t b)
{
	return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z');
}

static bool escape_is_cmd(uint8_t b)
{
	for (size_t i = 0; i < ESCAPE_NCMDS; i++)
		if ((uint8_t)escape_table[i].cmd == b)
			return true;
	return false;
}

size_t escape_feed(struct escape *e, const uint8_t *in, size_t len, uint8_t *out,
		   size_t *ret_outlen, enum escape_cmd *ret_cmd)
{
	size_t n = 0, i;

	for (i = 0; i < len; i++) {
		uint8_t b = in[i];

		switch (e->state) {
		case 1:
			if (b == e->prefix[1]) {
				e->state = 2;
				continue;
			}
			out[n++] = e->prefix[0];
			if (b == e->prefix[0])
				continue; /* the new one may start the prefix */
			e->state = 0;
			out[n++] = b;
			continue;
		case 2:
			e->state = 0;
			if (b == ESCAPE_SYSRQ) {
				e->state = 3;
				continue;
			}
			if (e->confirm && (b == ESCAPE_RESET || b == ESCAPE_POWERDOWN)) {
				e->state = 4;
				e->pending = e->arg = b;
				*ret_outlen = n;
				*ret_cmd = ESCAPE_CONFIRM;
				return i + 1;
			}
			if (escape_is_cmd(b)) {
				e->arg = 0;
				*ret_outlen = n;
				*ret_cmd = (enum escape_cmd)b;
				return i + 1;
			}
			out[n++] = e->prefix[0];
			out[n++] = e->prefix[1];
			out[n++] = b;
			continue;
		case 3:
			e->state = 0;
			e->arg = escape_is_sysrq_key(b) ? b : 0;
			*ret_outlen = n;
			*ret_cmd = ESCAPE_SYSRQ;
			return i + 1;
		case 4:
			e->state = 0;
			e->arg = e->pending;
			*ret_outlen = n;
			*ret_cmd = b == 'y' || b == 'Y' ? (enum escape_cmd)e->pending : ESCAPE_CANCEL;
			return i + 1;
		default:
			if (b == e->prefix[0]) {
				e->state = 1;
				continue;
			}
			out[n++] = b;
			continue;
		}
	}
	*ret_outlen = n;
	*ret_cmd = ESCAPE_NONE;
	return len;
}

/* Caret letter for a control byte: 0x05 -> 'E', 0x1d -> ']', 0x00 -> '@'. */
static int escape_parse_caret(char c, uint8_t *ret)
{
	unsigned char u = toupper((unsigned char)c);

	if (u < '@' || u > '_')
		return -EINVAL;
	*ret = u - '@';
	return 0;
}

int escape_parse_prefix(const char *s, uint8_t ret[2])
{
	uint8_t p0;
	int r;

	if (!s)
		return -EINVAL;

	if (s[0] == '^') {
		r = escape_parse_caret(s[1], &p0);
		if (r < 0)
			return r;
		s += 2;
	} else if (s[0] == '\\' && s[1] == 'x') {
		int hi = unhexchar(s[2]);
		int lo = hi < 0 ? -EINVAL : unhexchar(s[3]);

		if (lo < 0)
			return -EINVAL;
		if (hi * 16 + lo > 0x1f)
			return -EINVAL; /* must be a control character */
		p0 = hi * 16 + lo;
		s += 4;
	} else if (strncasecmp(s, "ctrl-", 5) == 0) {
		r = escape_parse_caret(s[5], &p0);
		if (r < 0)
			return r;
		s += 6;
		if (s[0] == ' ')
			s++;
	} else
		return -EINVAL;

	if (s[0] < 0x21 || s[0] > 0x7e || s[1] != '\0')
		return -EINVAL;

	ret[0] = p0;
	ret[1] = (uint8_t)s[0];
	return 0;
}

const char *escape_help(void)
{
	return "ttyhub escape commands:\r\n"
	       "  <escape> .  detach\r\n"
	       "  <escape> f  force write access (take over from the current writer)\r\n"
	       "  <escape> a  attach read-write if nobody is writing\r\n"
	       "  <escape> s  drop to read-only (spy)\r\n"
	       "  <escape> w  who is attached\r\n"
	       "  <escape> r  replay recent output\r\n"
	       "  <escape> b  send a serial break\r\n"
	       "  <escape> S  KEY: send a serial break and the SysRq KEY (0-9, a-z)\r\n"
	       "  <escape> N  send an NMI to the guest\r\n"
	       "  <escape> R  reset the guest (asks first)\r\n"
	       "  <escape> P  power the guest down (asks first)\r\n"
	       "  <escape> ?  this help\r\n"
	       "  <escape> followed by any other key sends both to the console.\r\n";
}

/* Human name of one prefix byte: "Ctrl-E", "c", "\x80". buf has 8 bytes. */
static void escape_name_byte(uint8_t b, char buf[static 8])
{
	if (b < 0x20)
		snprintf(buf, 8, "Ctrl-%c", '@' + b);
	else if (b < 0x7f && b != ' ')
		snprintf(buf, 8, "%c", b);
	else
		snprintf(buf, 8, "\\x%02x", b);
}

/* Append to buf at *pos; false once it no longer fits. */
static bool escape_append(char *buf, size_t size, size_t *pos, const char *fmt, ...)
	_printf_(4, 5);

static bool escape_append(char *buf, size_t size, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(buf + *pos, size - *pos, fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= size - *pos) {
		*pos = size - 1;
		return false;
	}
	*pos += r;
	return true;
}

int escape_format_help(const struct escape *e, char *buf, size_t size)
{
	char n0[8], n1[8], prefix[20];
	size_t pos = 0;
	bool ok;

	if (size == 0)
		return -ENOBUFS;
	buf[0] = '\0';

	escape_name_byte(e->prefix[0], n0);
	escape_name_byte(e->prefix[1], n1);
	snprintf(prefix, sizeof(prefix), "%s %s", n0, n1);

	ok = escape_append(buf, size, &pos, "ttyhub escape commands:\r\n");
	for (size_t i = 0; ok && i < ESCAPE_NCMDS; i++)
		ok = escape_append(buf, size, &pos, "  %s %c  %s\r\n", prefix,
				   (char)escape_table[i].cmd, escape_table[i].what);
	if (ok)
		ok = escape_append(buf, size, &pos,
				   "  %s followed by any other key sends both to the console.\r\n",
				   prefix);
	if (!ok)
		return -ENOBUFS;
	return (int)pos;
}
