/* SPDX-License-Identifier: MIT */
/*
 * Line-oriented logging to stderr.  Under systemd, stderr goes to the
 * journal, which parses the "<N>" priority prefix.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static int max_level = LOG_INFO;
static const char *ident = "ttyhub";
static const char *prefix = "";

void log_set_max_level(int level)
{
	max_level = level;
}

void log_set_ident(const char *s)
{
	ident = s;
}

void log_set_prefix(const char *p)
{
	prefix = p ? p : "";
}

static char *escape(const char *in, size_t len, char *out, size_t outsz, bool keep_backslash);

int log_internal(int level, int error, const char *func, const char *fmt, ...)
{
	char raw[1024], buf[1024];
	va_list ap;
	int saved = errno;

	if (error > 0)
		error = -error;
	if (level > max_level)
		return error;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	/*
	 * Whatever a caller forgot to escape (a path from a VM name, say), one
	 * event stays one line of printable text: controls, C1 and bad UTF-8
	 * become \xNN.  Text log_escape() made passes unchanged.
	 */
	escape(raw, strlen(raw), buf, sizeof(buf), true);

	if (max_level >= LOG_DEBUG)
		fprintf(stderr, "<%d>%s: %s: %s%s%s%s\n", level, ident, func, prefix, buf,
			error ? ": " : "", error ? strerror(-error) : "");
	else
		fprintf(stderr, "<%d>%s: %s%s%s%s\n", level, ident, prefix, buf, error ? ": " : "",
			error ? strerror(-error) : "");
	errno = saved;
	return error;
}

/* Length of a valid UTF-8 sequence at s (n bytes left) that is not a C1 control, else 0. */
static size_t utf8_printable_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned cp;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp <= 0x9f)
		return 0;
	return len;
}

/* log_escape(); with keep_backslash, text already escaped passes unchanged. */
static char *escape(const char *in, size_t len, char *out, size_t outsz, bool keep_backslash)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0;

	if (outsz == 0)
		return out;
	for (size_t i = 0; i < len;) {
		char tmp[8];
		size_t n, used;

		if (s[i] >= 0x20 && s[i] < 0x7f && (s[i] != '\\' || keep_backslash)) {
			tmp[0] = (char)s[i];
			n = used = 1;
		} else if ((used = utf8_printable_len(s + i, len - i)) > 0) {
			memcpy(tmp, s + i, used);
			n = used;
		} else {
			snprintf(tmp, sizeof(tmp), "\\x%02x", s[i]);
			n = 4;
			used = 1;
		}
		if (o + n + 4 > outsz) {
			/* Leave room for "..." and the NUL. */
			if (outsz >= 4) {
				o = MIN(o, outsz - 4);
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(out + o, tmp, n);
		o += n;
		i += used;
	}
	out[o] = '\0';
	return out;
}

char *log_escape(const char *in, size_t len, char *out, size_t outsz)
{
	return escape(in, len, out, outsz, false);
}

char *log_sanitize(const char *in, size_t len, char *out, size_t outsz)
{
	return escape(in, len, out, outsz, true);
}
