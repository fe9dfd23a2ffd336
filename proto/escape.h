/* SPDX-License-Identifier: MIT */
/*
 * Escape-command parser for user keystrokes (pure, no I/O), shared by the
 * ttyhub CLI and ttyhub-sshd.  The prefix is two bytes, Ctrl-E c by default
 * (conserver-compatible).  After the prefix, one command byte:
 *   .  detach          f  force write       a  attach read-write if free
 *   s  drop to read-only  w  who            r  replay recent output
 *   b  serial break    ?  help
 * and the rescue actions (each needs its own right in the access file):
 *   S KEY  sysrq KEY (the next byte is the key)   N  NMI
 *   R  reset           P  powerdown
 * When confirm is set (an interactive session), R and P ask first: the
 * parser returns ESCAPE_CONFIRM (arg: 'R' or 'P'; the front shows the
 * question) and the next byte answers it: y or Y returns the command, any
 * other byte ESCAPE_CANCEL (arg: the command).  After S, a byte that is not
 * a SysRq key (0-9, a-z) returns ESCAPE_SYSRQ with arg 0: cancelled.
 * Anything else after the prefix is passed through unchanged (the prefix
 * bytes and the byte itself), and so is a first prefix byte followed by
 * anything but the second prefix byte.  A first prefix byte repeated is the
 * exception: the earlier one is passed through and the later one may still
 * start the prefix.  Recognition does not depend on line position.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum escape_cmd {
	ESCAPE_NONE = 0,
	ESCAPE_DETACH = '.',
	ESCAPE_FORCE = 'f',
	ESCAPE_ATTACH_RW = 'a',
	ESCAPE_SPY = 's',
	ESCAPE_WHO = 'w',
	ESCAPE_REPLAY = 'r',
	ESCAPE_BREAK = 'b',
	ESCAPE_HELP = '?',
	ESCAPE_SYSRQ = 'S',     /* arg: the key, or 0 (cancelled: not a key) */
	ESCAPE_NMI = 'N',
	ESCAPE_RESET = 'R',
	ESCAPE_POWERDOWN = 'P',
	ESCAPE_CONFIRM = 1,     /* arg: the command awaiting y/N (never a key byte) */
	ESCAPE_CANCEL = 2,      /* arg: the command the answer cancelled */
};

struct escape {
	uint8_t prefix[2]; /* default 0x05 'c' */
	uint8_t state;     /* private: where in the prefix, the key or the answer we are */
	uint8_t pending;   /* private: the command awaiting an answer */
	bool confirm;      /* R and P ask y/N first (an interactive session); the front's */
	uint8_t arg;       /* the last command's argument (see above) */
};

#define ESCAPE_DEFAULT_PREFIX0 0x05
#define ESCAPE_DEFAULT_PREFIX1 'c'

void escape_init(struct escape *e, uint8_t p0, uint8_t p1);

/*
 * Parse a string such as "^Ec", "^]x", "\x05c" or "ctrl-e c" into a prefix.
 * The first byte is a control character (0x00-0x1f) written as caret
 * notation ("^E", "^e", "^]", "^@"), as a C hex escape with exactly two
 * digits ("\x05") or as "ctrl-" plus the caret letter (case-insensitive;
 * an optional single space may follow it).  The second is one literal
 * printable ASCII character (0x21-0x7e).  Nothing may follow.
 * Returns 0 or -EINVAL; ret is written only on success.
 */
int escape_parse_prefix(const char *s, uint8_t ret[2]);

/*
 * Feed keystrokes.  Bytes to send to the guest are appended to out (capacity
 * >= len + 2: held prefix bytes may be released).  Stops after the first
 * recognised command, which is stored in *ret_cmd (ESCAPE_NONE if none).
 * Returns how many input bytes were consumed; the caller feeds the rest
 * after acting on the command.  *ret_outlen receives the bytes written.
 */
size_t escape_feed(struct escape *e, const uint8_t *in, size_t len, uint8_t *out,
		   size_t *ret_outlen, enum escape_cmd *ret_cmd);

/* One line per command, for the '?' help text, with the prefix written as
 * "<escape>".  Lines end in "\r\n" (printed to a raw terminal). */
const char *escape_help(void);

/*
 * The same help text with the real prefix, e.g. "Ctrl-E c .  detach".  buf is
 * always NUL-terminated when size > 0.  Returns the length written (without
 * the NUL), or -ENOBUFS if size is too small (buf then holds a truncated text).
 */
int escape_format_help(const struct escape *e, char *buf, size_t size);
