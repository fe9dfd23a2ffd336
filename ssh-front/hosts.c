/* SPDX-License-Identifier: MIT */
/*
 * The gateway's hosts file (see hosts.h): a line-by-line parser over a
 * buffer, no I/O.
 *
 * Every line is checked on its own and either becomes an entry or one
 * error naming its line; a bad line never stops the others, so one typo
 * takes away one host, not the gateway.  The file is trusted as much as its
 * owner (root), but it is still parsed as hostile input: every field is
 * bounded, the key is strict base64 whose blob must name the same type as
 * the line, and nothing is echoed into a message unless it was validated.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "hosts.h"
#include "util.h"

/* After this many, one more error says so and the rest are not reported. */
#define HOSTS_MAX_ERRORS 100
/* Base64 of a 16384-bit RSA key is about 2.8 KiB; anything this long is not a key. */
#define HOSTS_BASE64_MAX 16384
/* DNS: 253 characters in all, 63 per label. */
#define HOSTS_DNS_MAX 253
#define HOSTS_LABEL_MAX 63

/* The key types a host key may have, with the type its blob names. */
static const struct {
	const char *type;
	const char *blob_type;
} hosts_key_types[] = {
	{ "ssh-ed25519", "ssh-ed25519" },
	{ "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256" },
	{ "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384" },
	{ "ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521" },
	{ "ssh-rsa", "ssh-rsa" },
	/* Signature algorithms of an RSA key: the key itself is "ssh-rsa". */
	{ "rsa-sha2-256", "ssh-rsa" },
	{ "rsa-sha2-512", "ssh-rsa" },
};

struct hosts_parser {
	struct hosts_file *f;
	size_t cap_entries;
	size_t cap_errors;
	bool errors_cut; /* the "too many errors" line was added */
};

static int hosts_error(struct hosts_parser *ps, unsigned line, const char *fmt, ...)
	_printf_(3, 4);

/* Record an error on line; -ENOMEM or 0 (the line is skipped either way). */
static int hosts_error(struct hosts_parser *ps, unsigned line, const char *fmt, ...)
{
	struct hosts_file *f = ps->f;
	struct hosts_error *e;
	va_list ap;

	if (ps->errors_cut)
		return 0;
	if (f->n_errors == ps->cap_errors) {
		size_t cap = ps->cap_errors ? ps->cap_errors * 2 : 8;
		struct hosts_error *n;

		cap = MIN(cap, (size_t)HOSTS_MAX_ERRORS + 1);
		n = realloc(f->errors, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		f->errors = n;
		ps->cap_errors = cap;
	}
	e = &f->errors[f->n_errors++];
	e->line = line;
	if (f->n_errors > HOSTS_MAX_ERRORS) {
		snprintf(e->message, sizeof(e->message), "too many errors; the rest are not shown");
		ps->errors_cut = true;
		return 0;
	}
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return 0;
}

static bool hosts_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static bool hosts_is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

/* The key's blob: strict base64 starting with string(blob_type) and something after it. */
static const char *hosts_check_key(const char *blob_type, const char *b64, size_t n)
{
	size_t len = 0, tl = strlen(blob_type);
	_cleanup_free_ uint8_t *blob = NULL;
	uint32_t sl;

	if (n > HOSTS_BASE64_MAX)
		return "key too long";
	blob = malloc(n / 4 * 3 + 1);
	if (!blob)
		return NULL;
	if (base64_decode_strict(b64, n, blob, &len) < 0)
		return "invalid base64 in key";
	if (len < 4)
		return "key type mismatch";
	sl = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 | (uint32_t)blob[2] << 8 | blob[3];
	if (sl != tl || len - 4 < tl || memcmp(blob + 4, blob_type, tl) != 0)
		return "key type mismatch";
	if (len - 4 == tl)
		return "truncated key";
	return "";
}

/* A DNS name: dot-separated labels of [A-Za-z0-9-], not starting or ending with '-'. */
static bool hosts_dns_ok(const char *s, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > HOSTS_DNS_MAX)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = i < n ? s[i] : '.';

		if (c == '.') {
			/* One trailing dot (a fully qualified name) is fine; an empty label is not. */
			if (label == 0 && !(i == n && n > 0 && s[n - 1] == '.'))
				return false;
			if (label > 0 && s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
		if (label == 0 && c == '-')
			return false;
		if (++label > HOSTS_LABEL_MAX)
			return false;
	}
	return true;
}

/* Only digits and dots: meant as an IPv4 address, so it must be one. */
static bool hosts_looks_ipv4(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
			return false;
	return true;
}

/* ADDRESS:PORT into e: "" on success, else why not. */
static const char *hosts_parse_address(const char *s, size_t n, struct hosts_entry *e)
{
	const char *host, *port;
	size_t hn, pn;
	unsigned long v = 0;
	char tmp[HOSTS_ADDRESS_MAX];

	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);

		if (!close)
			return "missing ']' after the IPv6 address";
		host = s + 1;
		hn = (size_t)(close - host);
		if ((size_t)(close - s) + 1 >= n || close[1] != ':')
			return "missing port (ADDRESS:PORT)";
		port = close + 2;
		pn = n - (size_t)(port - s);
		if (hn == 0 || hn >= sizeof(tmp))
			return "invalid IPv6 address";
		memcpy(tmp, host, hn);
		tmp[hn] = '\0';
		{
			struct in6_addr a6;

			if (inet_pton(AF_INET6, tmp, &a6) != 1)
				return "invalid IPv6 address";
		}
	} else {
		const char *colon = NULL;

		for (size_t i = 0; i < n; i++)
			if (s[i] == ':')
				colon = s + i;
		if (!colon)
			return "missing port (ADDRESS:PORT)";
		host = s;
		hn = (size_t)(colon - s);
		port = colon + 1;
		pn = n - hn - 1;
		if (memchr(host, ':', hn))
			return "an IPv6 address needs brackets: [ADDRESS]:PORT";
		if (hn == 0)
			return "missing address";
		if (hn >= sizeof(tmp))
			return "address too long";
		memcpy(tmp, host, hn);
		tmp[hn] = '\0';
		if (hosts_looks_ipv4(host, hn)) {
			struct in_addr a4;

			if (inet_pton(AF_INET, tmp, &a4) != 1)
				return "invalid IPv4 address";
		} else if (!hosts_dns_ok(host, hn)) {
			return "invalid host address";
		}
	}
	if (pn == 0)
		return "missing port (ADDRESS:PORT)";
	if (pn > 5 || port[0] == '0')
		return "invalid port (1..65535)";
	for (size_t i = 0; i < pn; i++) {
		if (port[i] < '0' || port[i] > '9')
			return "invalid port (1..65535)";
		v = v * 10 + (unsigned long)(port[i] - '0');
	}
	if (v < 1 || v > 65535)
		return "invalid port (1..65535)";
	memcpy(e->address, tmp, hn + 1);
	e->port = (unsigned)v;
	return "";
}

static const char *hosts_blob_type(const char *type, size_t n)
{
	for (size_t i = 0; i < ELEMENTSOF(hosts_key_types); i++)
		if (strlen(hosts_key_types[i].type) == n &&
		    memcmp(hosts_key_types[i].type, type, n) == 0)
			return hosts_key_types[i].blob_type;
	return NULL;
}

static bool hosts_has_suffix(const char *s, size_t n, const char *suffix)
{
	size_t sn = strlen(suffix);

	return n >= sn && memcmp(s + n - sn, suffix, sn) == 0;
}

const struct hosts_entry *hosts_find(const struct hosts_file *f, const char *name)
{
	if (!f || !name)
		return NULL;
	for (size_t i = 0; i < f->n_entries; i++)
		if (strcmp(f->entries[i].name, name) == 0)
			return &f->entries[i];
	return NULL;
}

/* One line (without its '\n'): an entry, an error, or nothing. */
static int hosts_parse_line(struct hosts_parser *ps, unsigned lineno, const char *s, size_t n)
{
	struct hosts_file *f = ps->f;
	const char *field[5];
	size_t flen[5], nf = 0, i = 0;
	struct hosts_entry e = { .line = lineno };
	const char *why, *blob_type;

	if (memchr(s, '\0', n))
		return hosts_error(ps, lineno, "NUL byte in line");
	while (i < n && nf < ELEMENTSOF(field)) {
		while (i < n && hosts_is_space(s[i]))
			i++;
		if (i == n)
			break;
		if (nf == 0 && s[i] == '#')
			return 0;
		field[nf] = s + i;
		while (i < n && !hosts_is_space(s[i]))
			i++;
		flen[nf] = (size_t)(s + i - field[nf]);
		nf++;
	}
	if (nf == 0)
		return 0;
	if (nf > 4)
		return hosts_error(ps, lineno, "unexpected text after the key "
				   "(NAME ADDRESS:PORT KEYTYPE BASE64, no comment)");
	if (nf < 4)
		return hosts_error(ps, lineno, "expected NAME ADDRESS:PORT KEYTYPE BASE64");

	/* NAME */
	if (flen[0] >= HOSTS_NAME_MAX)
		return hosts_error(ps, lineno, "host name too long (at most %d bytes)",
				   HOSTS_NAME_MAX - 1);
	for (size_t k = 0; k < flen[0]; k++)
		if (!hosts_is_name_char(field[0][k]))
			return hosts_error(ps, lineno,
					   "invalid host name (letters, digits, '_', '.', '-')");
	if (field[0][0] == '.' || field[0][0] == '-')
		return hosts_error(ps, lineno, "a host name may not start with '.' or '-'");
	memcpy(e.name, field[0], flen[0]);
	e.name[flen[0]] = '\0';

	/* ADDRESS:PORT */
	if (flen[1] >= HOSTS_ADDRESS_MAX + 8)
		return hosts_error(ps, lineno, "host %s: address too long", e.name);
	why = hosts_parse_address(field[1], flen[1], &e);
	if (why[0])
		return hosts_error(ps, lineno, "host %s: %s", e.name, why);

	/* KEYTYPE */
	blob_type = hosts_blob_type(field[2], flen[2]);
	if (!blob_type) {
		if (hosts_has_suffix(field[2], flen[2], "-cert-v01@openssh.com"))
			return hosts_error(ps, lineno,
					   "host %s: certificates are not accepted; pin the host key",
					   e.name);
		return hosts_error(ps, lineno, "host %s: unknown key type", e.name);
	}
	memcpy(e.keytype, field[2], flen[2]);
	e.keytype[flen[2]] = '\0';

	/* BASE64 */
	why = hosts_check_key(blob_type, field[3], flen[3]);
	if (!why)
		return -ENOMEM;
	if (why[0])
		return hosts_error(ps, lineno, "host %s: %s", e.name, why);

	if (hosts_find(f, e.name))
		return hosts_error(ps, lineno, "duplicate host name \"%s\"", e.name);
	if (f->n_entries >= HOSTS_MAX_HOSTS)
		return hosts_error(ps, lineno, "too many hosts (at most %d); host %s skipped",
				   HOSTS_MAX_HOSTS, e.name);
	e.base64 = strndup(field[3], flen[3]);
	if (!e.base64)
		return -ENOMEM;
	if (f->n_entries == ps->cap_entries) {
		size_t cap = ps->cap_entries ? ps->cap_entries * 2 : 8;
		struct hosts_entry *ne;

		cap = MIN(cap, (size_t)HOSTS_MAX_HOSTS);
		ne = realloc(f->entries, cap * sizeof(*ne));
		if (!ne) {
			free(e.base64);
			return -ENOMEM;
		}
		f->entries = ne;
		ps->cap_entries = cap;
	}
	f->entries[f->n_entries++] = e;
	return 0;
}

int hosts_parse(const char *buf, size_t len, struct hosts_file **ret)
{
	struct hosts_parser ps = { 0 };
	unsigned lineno = 0;
	size_t pos = 0;
	int r;

	if (len > HOSTS_MAX_SIZE)
		return -EFBIG;
	ps.f = calloc(1, sizeof(*ps.f));
	if (!ps.f)
		return -ENOMEM;
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;

		lineno++;
		r = hosts_parse_line(&ps, lineno, buf + pos, n);
		if (r < 0) {
			hosts_file_free(ps.f);
			return r;
		}
		pos += n + (nl ? 1 : 0);
	}
	*ret = ps.f;
	return 0;
}

struct hosts_file *hosts_file_free(struct hosts_file *f)
{
	if (!f)
		return NULL;
	for (size_t i = 0; i < f->n_entries; i++)
		free(f->entries[i].base64);
	free(f->entries);
	free(f->errors);
	free(f);
	return NULL;
}
