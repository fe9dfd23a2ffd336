/* SPDX-License-Identifier: MIT */
/*
 * asciicast v2 formatting (see asciicast.h).  Pure: no I/O, no clock, no
 * allocation; every function writes into a buffer whose size the header
 * states as a function of the input length.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "asciicast.h"
#include "util.h"

/* Output escape-sequence states (prompt detection skips the sequences). */
enum {
	CAST_ESC_NONE,
	CAST_ESC_START,  /* after ESC */
	CAST_ESC_CSI,    /* ESC [ ... final byte */
	CAST_ESC_STRING, /* ESC ] / P / _ / ^ / X ... BEL or ESC \ */
	CAST_ESC_STRING_ESC,
};

void asciicast_init(struct asciicast *a, bool redact)
{
	*a = (struct asciicast){ .redact = redact };
}

/*
 * The UTF-8 sequence at s[0..n) (RFC 3629: no overlongs, no surrogates,
 * nothing past U+10FFFF): its length, 0 when s[0] does not start a valid
 * one, -1 when it is a valid beginning cut short by n.
 */
static int cast_utf8_seq(const uint8_t *s, size_t n)
{
	uint8_t b = s[0], lo = 0x80, hi = 0xbf;
	size_t need;

	if (b < 0x80)
		return 1;
	if (b < 0xc2)
		return 0;
	if (b < 0xe0)
		need = 2;
	else if (b < 0xf0) {
		need = 3;
		if (b == 0xe0)
			lo = 0xa0; /* overlong */
		else if (b == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (b < 0xf5) {
		need = 4;
		if (b == 0xf0)
			lo = 0x90; /* overlong */
		else if (b == 0xf4)
			hi = 0x8f; /* past U+10FFFF */
	} else
		return 0;
	for (size_t i = 1; i < need; i++) {
		if (i >= n)
			return -1;
		if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xbf))
			return 0;
	}
	return (int)need;
}

/* Where data stops being complete: the start of a valid sequence cut at the end, or len. */
static size_t cast_utf8_cut(const uint8_t *s, size_t len)
{
	for (size_t back = 1; back <= 3 && back <= len; back++) {
		uint8_t b = s[len - back];

		if (b < 0x80)
			break;
		if (b >= 0xc0)
			return cast_utf8_seq(s + len - back, back) < 0 ? len - back : len;
	}
	return len;
}

size_t asciicast_escape(const uint8_t *s, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, o = 0;

	while (i < len) {
		uint8_t b = s[i];
		int n;

		if (b >= 0x20 && b < 0x80 && b != '"' && b != '\\') {
			out[o++] = (char)b;
			i++;
			continue;
		}
		if (b < 0x80) {
			out[o++] = '\\';
			switch (b) {
			case '"': out[o++] = '"'; break;
			case '\\': out[o++] = '\\'; break;
			case '\n': out[o++] = 'n'; break;
			case '\r': out[o++] = 'r'; break;
			case '\t': out[o++] = 't'; break;
			case '\b': out[o++] = 'b'; break;
			case '\f': out[o++] = 'f'; break;
			default:
				memcpy(out + o, "u00", 3);
				o += 3;
				out[o++] = hex[b >> 4];
				out[o++] = hex[b & 15];
			}
			i++;
			continue;
		}
		n = cast_utf8_seq(s + i, len - i);
		if (n > 0) {
			memcpy(out + o, s + i, (size_t)n);
			o += (size_t)n;
			i += (size_t)n;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3); /* U+FFFD, one per byte (resync) */
			o += 3;
			i++;
		}
	}
	return o;
}

static size_t cast_open(uint64_t t_usec, char type, char *out)
{
	return (size_t)sprintf(out, "[%" PRIu64 ".%06u, \"%c\", \"", t_usec / 1000000,
			       (unsigned)(t_usec % 1000000), type);
}

static size_t cast_close(char *out)
{
	memcpy(out, "\"]\n", 3);
	return 3;
}

/*
 * One event of a stream's bytes: what it held back first, then data up to
 * the last complete character; a cut sequence is held back for the next
 * chunk.  Nothing (0) when no whole character is there yet.  With !open,
 * only the rest of an event already begun, and always its close.
 */
static size_t cast_stream_event(struct asciicast_utf8 *st, uint64_t t_usec, char type, bool open,
				const uint8_t *data, size_t len, char *out)
{
	size_t o = open ? cast_open(t_usec, type, out) : 0, start = o, used = 0, cut;

	if (st->n > 0) {
		uint8_t tmp[6];
		size_t k = MIN(len, (size_t)(4 - st->n));
		int n;

		memcpy(tmp, st->held, st->n);
		memcpy(tmp + st->n, data, k);
		n = cast_utf8_seq(tmp, st->n + k);
		if (n < 0) {
			/* Still cut (len was smaller than what completes it): hold it all. */
			memcpy(st->held + st->n, data, k);
			st->n = (uint8_t)(st->n + k);
			return open ? 0 : cast_close(out);
		}
		if (n > 0) {
			memcpy(out + o, tmp, (size_t)n);
			o += (size_t)n;
			used = (size_t)n - st->n;
		} else {
			/* A valid beginning that the next byte broke: one U+FFFD per held byte. */
			for (size_t i = 0; i < st->n; i++) {
				memcpy(out + o, "\xef\xbf\xbd", 3);
				o += 3;
			}
		}
		st->n = 0;
	}
	cut = used + cast_utf8_cut(data + used, len - used);
	o += asciicast_escape(data + used, cut - used, out + o);
	memcpy(st->held, data + cut, len - cut);
	st->n = (uint8_t)(len - cut);
	if (o == start && open)
		return 0;
	return o + cast_close(out + o);
}

void asciicast_prompt_init(struct asciicast_prompt *p)
{
	*p = (struct asciicast_prompt){};
}

/* Follow the output's current line (lower-cased, escape sequences and controls left out). */
void asciicast_prompt_feed(struct asciicast_prompt *a, const void *data, size_t len)
{
	const uint8_t *s = data;

	a->seen += len;
	for (size_t i = 0; i < len; i++) {
		uint8_t b = s[i];

		/*
		 * A line end ends any escape sequence too.  A terminal would let a
		 * broken one (ESC [ with no final byte, an OSC never terminated)
		 * swallow the prompt's first letters or all of it; the program
		 * still reads a password, so the prompt must still count.
		 */
		if (b == '\n' || b == '\r') {
			a->esc = CAST_ESC_NONE;
			a->line_len = 0;
			continue;
		}
		switch (a->esc) {
		case CAST_ESC_START:
			if (b == '[')
				a->esc = CAST_ESC_CSI;
			else if (b == ']' || b == 'P' || b == '_' || b == '^' || b == 'X')
				a->esc = CAST_ESC_STRING;
			else
				a->esc = CAST_ESC_NONE;
			continue;
		case CAST_ESC_CSI:
			if (b >= 0x40 && b <= 0x7e)
				a->esc = CAST_ESC_NONE;
			else if (b == 0x1b)
				a->esc = CAST_ESC_START;
			continue;
		case CAST_ESC_STRING:
			if (b == 0x07)
				a->esc = CAST_ESC_NONE;
			else if (b == 0x1b)
				a->esc = CAST_ESC_STRING_ESC;
			continue;
		case CAST_ESC_STRING_ESC:
			a->esc = b == '\\' ? CAST_ESC_NONE : CAST_ESC_STRING;
			continue;
		default:
			break;
		}
		if (b == 0x1b)
			a->esc = CAST_ESC_START;
		else if (b == '\b') {
			if (a->line_len > 0)
				a->line_len--;
		} else if (b >= 0x20 && b != 0x7f) {
			/* Full: keep the later half (a prompt is judged by how the line ends). */
			if (a->line_len == sizeof(a->line)) {
				memmove(a->line, a->line + sizeof(a->line) / 2, sizeof(a->line) / 2);
				a->line_len = sizeof(a->line) / 2;
			}
			a->line[a->line_len++] = b >= 'A' && b <= 'Z' ? (char)(b + 32)
					       : b < 0x80 ? (char)b : '?';
		}
	}
}

static bool cast_is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool asciicast_is_prompt(const char *line, size_t len)
{
	static const char *const words[] = { "password", "passphrase" };

	while (len > 0 && line[len - 1] == ' ')
		len--;
	if (len == 0 || line[len - 1] != ':')
		return false;
	len--;
	for (size_t w = 0; w < ELEMENTSOF(words); w++)
		if (memmem(line, len, words[w], strlen(words[w])))
			return true;
	/* "pin" only as a word: not "spinning:" or "mapping:". */
	for (size_t i = 0; i + 3 <= len; i++)
		if ((line[i] == 'p' || line[i] == 'P') && (line[i + 1] == 'i' || line[i + 1] == 'I') &&
		    (line[i + 2] == 'n' || line[i + 2] == 'N') &&
		    (i == 0 || !cast_is_alpha(line[i - 1])) &&
		    (i + 3 == len || !cast_is_alpha(line[i + 3])))
			return true;
	return false;
}

bool asciicast_prompt_now(const struct asciicast_prompt *p)
{
	/* Only the end of the output counts: a prompt followed by more text is gone. */
	return p->esc == CAST_ESC_NONE && asciicast_is_prompt(p->line, p->line_len);
}

size_t asciicast_output(struct asciicast *a, uint64_t t_usec, const void *data, size_t len,
			char *out)
{
	return cast_stream_event(&a->out, t_usec, 'o', true, data, len, out);
}

size_t asciicast_output_more(struct asciicast *a, const void *data, size_t len, char *out)
{
	return cast_stream_event(&a->out, 0, 'o', false, data, len, out);
}

size_t asciicast_input(struct asciicast *a, uint64_t t_usec,
		       const struct asciicast_prompt *prompt, const void *data, size_t len,
		       char *out)
{
	const uint8_t *s = data;
	size_t i = 0, o = 0;

	if (a->redact && prompt && !a->redacting && len > 0 && asciicast_prompt_now(prompt) &&
	    !(a->answered && a->answered_at == prompt->seen)) {
		a->redacting = true;
		a->answered = true;
		a->answered_at = prompt->seen;
		a->redacted_any = false;
		a->in.n = 0; /* a character begun before the prompt: part of what is hidden */
	}
	if (a->redacting) {
		const uint8_t *cr = memchr(s, '\r', len), *lf = memchr(s, '\n', len);
		const uint8_t *end = cr && (!lf || cr < lf) ? cr : lf;
		size_t e;

		if (!end) {
			a->redacted_any = true;
			return 0;
		}
		e = (size_t)(end - s) + 1;
		if (*end == '\r' && e < len && s[e] == '\n')
			e++;
		o = cast_open(t_usec, 'i', out);
		memcpy(out + o, ASCIICAST_REDACTED, strlen(ASCIICAST_REDACTED));
		o += strlen(ASCIICAST_REDACTED);
		o += asciicast_escape(end, (size_t)(s + e - end), out + o);
		o += cast_close(out + o);
		a->redacting = a->redacted_any = false;
		i = e;
	}
	if (i < len)
		o += cast_stream_event(&a->in, t_usec, 'i', true, s + i, len - i, out + o);
	return o;
}

size_t asciicast_event(uint64_t t_usec, char type, const char *text, char *out)
{
	size_t o = cast_open(t_usec, type, out);

	o += asciicast_escape((const uint8_t *)text, strlen(text), out + o);
	return o + cast_close(out + o);
}

size_t asciicast_finish(struct asciicast *a, uint64_t t_usec, char *out)
{
	size_t o = 0;

	/* Held bytes never completed: one U+FFFD each (what repair makes of them). */
	for (int k = 0; k < 2; k++) {
		struct asciicast_utf8 *st = k == 0 ? &a->out : &a->in;

		if (st->n == 0)
			continue;
		o += cast_open(t_usec, k == 0 ? 'o' : 'i', out + o);
		for (size_t i = 0; i < st->n; i++) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
		}
		o += cast_close(out + o);
		st->n = 0;
	}
	if (a->redacting && a->redacted_any)
		o += asciicast_event(t_usec, 'i', ASCIICAST_REDACTED, out + o);
	a->redacting = a->redacted_any = false;
	return o;
}

static int cast_put(char *out, size_t size, size_t *o, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int cast_put(char *out, size_t size, size_t *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out + *o, size - *o, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size - *o)
		return -ENOBUFS;
	*o += (size_t)n;
	return 0;
}

/* ", \"key\": \"escaped value\"" */
static int cast_put_string(char *out, size_t size, size_t *o, const char *key, const char *value)
{
	size_t len = strlen(value);

	if (cast_put(out, size, o, ", \"%s\": \"", key) < 0 || size - *o < 6 * len + 2)
		return -ENOBUFS;
	*o += asciicast_escape((const uint8_t *)value, len, out + *o);
	return cast_put(out, size, o, "\"");
}

int asciicast_header(const struct asciicast_header *h, char *out, size_t size)
{
	size_t o = 0;

	if (cast_put(out, size, &o, "{\"version\": 2, \"width\": %u, \"height\": %u, "
		     "\"timestamp\": %" PRId64, h->width, h->height, h->timestamp) < 0 ||
	    (h->title && cast_put_string(out, size, &o, "title", h->title) < 0))
		return -ENOBUFS;
	if (h->term) {
		size_t len = strlen(h->term);

		if (cast_put(out, size, &o, ", \"env\": {\"TERM\": \"") < 0 || size - o < 6 * len + 2)
			return -ENOBUFS;
		o += asciicast_escape((const uint8_t *)h->term, len, out + o);
		if (cast_put(out, size, &o, "\"}") < 0)
			return -ENOBUFS;
	}
	if ((h->console && cast_put_string(out, size, &o, "console", h->console) < 0) ||
	    (h->vm && cast_put_string(out, size, &o, "vm", h->vm) < 0) ||
	    (h->principal && cast_put_string(out, size, &o, "principal", h->principal) < 0) ||
	    cast_put(out, size, &o, "}\n") < 0)
		return -ENOBUFS;
	return (int)o;
}
