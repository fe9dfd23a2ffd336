/* SPDX-License-Identifier: MIT */
/*
 * Replay sanitiser (pure, no I/O).  Guest output that is replayed (not the
 * live stream) is attacker-controlled text for the operator's terminal, so
 * this removes:
 *   - every escape sequence: ESC and the whole sequence it starts (CSI up to
 *     its final byte, OSC/DCS/APC/PM/SOS strings up to BEL or ST, and
 *     two-byte ESC x sequences);
 *   - C0 controls except TAB, CR and LF, and DEL;
 *   - C1 controls, both as raw bytes 0x80-0x9f and as UTF-8 U+0080-U+009F
 *     (8-bit CSI/OSC/DCS... also open a sequence that is removed whole);
 *   - malformed UTF-8 (each invalid byte becomes '?').
 * Valid UTF-8 text passes unchanged.  The output is a fixed point:
 * sanitising it again changes nothing.
 *
 * A raw byte 0x80-0x9f counts as a C1 control only when it is isolated (it
 * follows ASCII, a complete character or another control); right after a
 * malformed byte it is part of the malformed sequence and becomes '?'.
 *
 * Bounds, so that a stray introducer cannot hide unbounded output:
 *   - a control string (OSC, DCS, APC, PM, SOS) ends at BEL, ST (ESC \,
 *     0x9c or U+009C), CAN, SUB, ESC (which starts a new sequence) or any
 *     other C1 control; once it has swallowed SANITIZE_MAX_STRING bytes it
 *     also ends at the next CR or LF, which is then kept as text.  Large
 *     one-line payloads (OSC 52 clipboard, sixel images) are thus dropped
 *     whole, but an unterminated string hides at most that many bytes plus
 *     the rest of one line;
 *   - a CSI or ESC-intermediate sequence with more than
 *     SANITIZE_MAX_PARAMS parameter/intermediate bytes is abandoned and what
 *     follows is treated as text.
 * TAB, CR and LF inside ESC or CSI sequences are kept (terminals execute
 * them there too); every other C0 control and DEL inside a sequence is
 * dropped without ending it.  Any byte that cannot occur in an ESC or CSI
 * sequence (non-ASCII text, malformed UTF-8) ends it and is kept as text.
 *
 * Streaming: state carries partial sequences across calls, so feeding a
 * buffer in pieces gives the same output as feeding it whole (a UTF-8
 * sequence cut at the end of one call is completed by the next, and
 * sanitize_finish() flushes an incomplete one as '?').
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct sanitizer {
	/* private */
	uint8_t state;      /* escape parser state */
	uint8_t npending;   /* bytes of an incomplete UTF-8 sequence held in pending */
	uint8_t need;       /* full length of that sequence */
	uint8_t malformed;  /* last byte was malformed: continuation bytes are '?' */
	uint8_t pending[4];
	uint32_t seqlen;    /* bytes swallowed by the current sequence (saturates) */
};

/* Output never exceeds len + SANITIZE_SLACK bytes for len bytes of input. */
#define SANITIZE_SLACK 4

/* Bytes a control string may swallow before it also ends at CR/LF. */
#define SANITIZE_MAX_STRING 4096
/* Parameter/intermediate bytes a CSI or ESC sequence may have. */
#define SANITIZE_MAX_PARAMS 256

void sanitize_init(struct sanitizer *s);

/* Sanitise len bytes of in into out (capacity >= len + SANITIZE_SLACK).
 * Returns the number of bytes written. */
size_t sanitize_feed(struct sanitizer *s, const uint8_t *in, size_t len, uint8_t *out);

/* End of input: flush an incomplete UTF-8 sequence as '?' and reset s to
 * its initial state (so it can be reused).  out capacity >= SANITIZE_SLACK.
 * Returns bytes written. */
size_t sanitize_finish(struct sanitizer *s, uint8_t *out);
