/* SPDX-License-Identifier: MIT */
/*
 * Replay sanitiser.  Two layers, both driven one input byte at a time with
 * all their state in struct sanitizer, so any split of the input gives the
 * same output as feeding it whole:
 *
 *   1. A strict UTF-8 decoder turns bytes into tokens: a code point (ASCII
 *      or a well-formed multi-byte sequence), an isolated raw byte 0x80-0x9f
 *      (token value = the C1 control it stands for), or SANITIZE_BAD for a
 *      malformed byte.  Overlong forms, surrogates and values above U+10FFFF
 *      are rejected at the first byte that makes them so (by restricting the
 *      range of the first continuation byte); each byte of a rejected or
 *      truncated sequence, and each continuation byte that follows one,
 *      becomes one SANITIZE_BAD token.
 *   2. An escape parser modelled on the DEC/ECMA-48 one (ground, escape,
 *      escape intermediate, CSI, control string) consumes the tokens.  A
 *      C1 control seen in any state behaves as in ground, as on a terminal.
 *      Only ground emits text: printable ASCII, TAB, CR, LF, code points from
 *      U+00A0 (re-encoded, which reproduces the valid input bytes exactly),
 *      and '?' for SANITIZE_BAD; ESC and CSI additionally let TAB/CR/LF
 *      through.
 *
 * The output therefore contains no ESC, no C0 other than TAB/CR/LF, no DEL,
 * no C1 and only valid UTF-8, so feeding it again never leaves ground and
 * reproduces it: the output is a fixed point.
 *
 * Output size: a byte emits at most one byte of its own plus the (at most
 * three) bytes held in pending, which were input of this call or were held
 * back by the previous one, so a call emits at most len + 3 bytes.
 */
#include <stdbool.h>

#include "sanitize.h"

#define SANITIZE_BAD UINT32_MAX

enum {
	SANITIZE_GROUND = 0,
	SANITIZE_ESC,
	SANITIZE_ESC_INTER,
	SANITIZE_CSI,
	SANITIZE_STRING,
};

enum {
	CHAR_BEL = 0x07,
	CHAR_CAN = 0x18,
	CHAR_SUB = 0x1a,
	CHAR_ESC = 0x1b,
	CHAR_DEL = 0x7f,
	C1_DCS = 0x90,
	C1_SOS = 0x98,
	C1_CSI = 0x9b,
	C1_ST = 0x9c,
	C1_OSC = 0x9d,
	C1_PM = 0x9e,
	C1_APC = 0x9f,
};

void sanitize_init(struct sanitizer *s)
{
	*s = (struct sanitizer){ .state = SANITIZE_GROUND };
}

static void sanitize_enter(struct sanitizer *s, uint8_t state)
{
	s->state = state;
	s->seqlen = 0;
}

static size_t utf8_encode(uint32_t cp, uint8_t *out)
{
	if (cp < 0x80) {
		out[0] = cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = 0xc0 | (cp >> 6);
		out[1] = 0x80 | (cp & 0x3f);
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = 0xe0 | (cp >> 12);
		out[1] = 0x80 | ((cp >> 6) & 0x3f);
		out[2] = 0x80 | (cp & 0x3f);
		return 3;
	}
	out[0] = 0xf0 | (cp >> 18);
	out[1] = 0x80 | ((cp >> 12) & 0x3f);
	out[2] = 0x80 | ((cp >> 6) & 0x3f);
	out[3] = 0x80 | (cp & 0x3f);
	return 4;
}

static bool is_c1(uint32_t cp)
{
	return cp >= 0x80 && cp <= 0x9f;
}

static bool is_kept_c0(uint32_t cp)
{
	return cp == '\t' || cp == '\r' || cp == '\n';
}

/* A C1 control in ground: introducers open their sequence, the rest vanish. */
static void sanitize_c1(struct sanitizer *s, uint32_t cp)
{
	switch (cp) {
	case C1_CSI:
		sanitize_enter(s, SANITIZE_CSI);
		break;
	case C1_OSC:
	case C1_DCS:
	case C1_APC:
	case C1_PM:
	case C1_SOS:
		sanitize_enter(s, SANITIZE_STRING);
		break;
	default:
		break;
	}
}

/*
 * Handle one token of n input bytes; returns bytes written to out (<= 4).
 * Abandoning a sequence goes back to ground and handles the token there, so
 * the loop runs at most twice.
 */
static size_t sanitize_token(struct sanitizer *s, uint32_t cp, size_t n, uint8_t *out)
{
	for (;;) {
		switch (s->state) {
		case SANITIZE_GROUND:
			if (cp == SANITIZE_BAD) {
				out[0] = '?';
				return 1;
			}
			if (cp == CHAR_ESC) {
				sanitize_enter(s, SANITIZE_ESC);
				return 0;
			}
			if (is_kept_c0(cp) || (cp >= 0x20 && cp < CHAR_DEL) || cp >= 0xa0)
				return utf8_encode(cp, out);
			if (is_c1(cp))
				sanitize_c1(s, cp);
			return 0; /* other C0, DEL */

		case SANITIZE_ESC:
		case SANITIZE_ESC_INTER:
		case SANITIZE_CSI:
			if (cp == SANITIZE_BAD || cp >= 0x80) {
				/* non-ASCII text or C1: not part of this sequence */
				s->state = SANITIZE_GROUND;
				continue;
			}
			if (cp == CHAR_ESC) {
				sanitize_enter(s, SANITIZE_ESC);
				return 0;
			}
			if (cp == CHAR_CAN || cp == CHAR_SUB) {
				sanitize_enter(s, SANITIZE_GROUND);
				return 0;
			}
			if (is_kept_c0(cp))
				return utf8_encode(cp, out);
			if (cp < 0x20 || cp == CHAR_DEL)
				return 0;

			if (s->state == SANITIZE_ESC) {
				switch (cp) {
				case '[':
					sanitize_enter(s, SANITIZE_CSI);
					break;
				case ']':
				case 'P':
				case '_':
				case '^':
				case 'X':
					sanitize_enter(s, SANITIZE_STRING);
					break;
				default:
					/* 0x20-0x2f intermediate, else a final byte */
					sanitize_enter(s, cp < 0x30 ? SANITIZE_ESC_INTER
								    : SANITIZE_GROUND);
					break;
				}
				return 0;
			}

			/* CSI: 0x20-0x3f parameters and intermediates, 0x40-0x7e final.
			 * ESC intermediate: 0x20-0x2f intermediates, 0x30-0x7e final. */
			if (cp < (s->state == SANITIZE_CSI ? 0x40u : 0x30u)) {
				if (s->seqlen >= SANITIZE_MAX_PARAMS) {
					/* runaway: give up, the rest is text */
					sanitize_enter(s, SANITIZE_GROUND);
					continue;
				}
				s->seqlen++;
				return 0;
			}
			sanitize_enter(s, SANITIZE_GROUND);
			return 0;

		case SANITIZE_STRING:
			if (cp == C1_ST || cp == CHAR_BEL || cp == CHAR_CAN || cp == CHAR_SUB) {
				sanitize_enter(s, SANITIZE_GROUND);
				return 0;
			}
			if (cp == CHAR_ESC) {
				/* ESC \ is ST; any other ESC x also ends the string */
				sanitize_enter(s, SANITIZE_ESC);
				return 0;
			}
			if (is_c1(cp) || (s->seqlen >= SANITIZE_MAX_STRING &&
					  (cp == '\r' || cp == '\n'))) {
				s->state = SANITIZE_GROUND;
				continue;
			}
			if (s->seqlen < SANITIZE_MAX_STRING)
				s->seqlen += n;
			return 0;

		default:
			/* unreachable: state is private */
			sanitize_enter(s, SANITIZE_GROUND);
			continue;
		}
	}
}

/* Each held byte of an incomplete or rejected UTF-8 sequence becomes a bad token. */
static size_t sanitize_flush(struct sanitizer *s, uint8_t *out)
{
	size_t n = 0;

	for (uint8_t i = 0; i < s->npending; i++)
		n += sanitize_token(s, SANITIZE_BAD, 1, out + n);
	s->npending = 0;
	s->need = 0;
	s->malformed = 1;
	return n;
}

/* Whether b can be byte number pos (>= 1) of the sequence that starts with lead. */
static bool utf8_cont_ok(uint8_t lead, uint8_t pos, uint8_t b)
{
	uint8_t lo = 0x80, hi = 0xbf;

	if (pos == 1) {
		switch (lead) {
		case 0xe0:
			lo = 0xa0; /* overlong */
			break;
		case 0xed:
			hi = 0x9f; /* surrogates */
			break;
		case 0xf0:
			lo = 0x90; /* overlong */
			break;
		case 0xf4:
			hi = 0x8f; /* > U+10FFFF */
			break;
		default:
			break;
		}
	}
	return b >= lo && b <= hi;
}

static uint32_t utf8_decode(const uint8_t *p, uint8_t len)
{
	static const uint8_t lead_mask[5] = { 0, 0x7f, 0x1f, 0x0f, 0x07 };
	uint32_t cp = p[0] & lead_mask[len];

	for (uint8_t i = 1; i < len; i++)
		cp = (cp << 6) | (p[i] & 0x3f);
	return cp;
}

static size_t sanitize_byte(struct sanitizer *s, uint8_t b, uint8_t *out)
{
	size_t n = 0;

	if (s->npending > 0) {
		if (utf8_cont_ok(s->pending[0], s->npending, b)) {
			uint8_t len = s->need;

			s->pending[s->npending++] = b;
			if (s->npending < len)
				return 0;
			s->npending = 0;
			s->need = 0;
			return sanitize_token(s, utf8_decode(s->pending, len), len, out);
		}
		n = sanitize_flush(s, out);
	}

	if (b < 0x80) {
		s->malformed = 0;
		return n + sanitize_token(s, b, 1, out + n);
	}
	if (b <= 0xbf) {
		/* continuation byte with nothing to continue */
		if (b <= 0x9f && !s->malformed)
			return n + sanitize_token(s, b, 1, out + n); /* raw C1 */
		s->malformed = 1;
		return n + sanitize_token(s, SANITIZE_BAD, 1, out + n);
	}
	if (b >= 0xc2 && b <= 0xf4) {
		s->malformed = 0;
		s->pending[0] = b;
		s->npending = 1;
		s->need = b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
		return n;
	}
	/* 0xc0, 0xc1 (always overlong) and 0xf5-0xff */
	s->malformed = 1;
	return n + sanitize_token(s, SANITIZE_BAD, 1, out + n);
}

size_t sanitize_feed(struct sanitizer *s, const uint8_t *in, size_t len, uint8_t *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += sanitize_byte(s, in[i], out + n);
	return n;
}

size_t sanitize_finish(struct sanitizer *s, uint8_t *out)
{
	size_t n = sanitize_flush(s, out);

	sanitize_init(s);
	return n;
}
