/* SPDX-License-Identifier: MIT */
/*
 * Access file parser (see access.h for the format).  The model:
 *
 * - The buffer is cut into lines at '\n'; one trailing '\r' is dropped
 *   (CRLF files), a missing final newline is fine.  A line longer than
 *   ACCESS_MAX_LINE bytes (without its line ending) or holding a NUL byte is
 *   an error for that line.  Leading blanks are skipped, then blank lines
 *   and '#' comments.
 * - Each remaining line is copied into one scratch buffer and split as
 *   OpenSSH does: if the first blank-separated token is a known key type
 *   there is no options field; otherwise the options field runs to the
 *   first blank outside double quotes (\" does not toggle quoting), then
 *   come the key type, the base64 blob and the comment (the rest, trimmed).
 * - The key is checked first (type known and no certificate, strict
 *   base64 with padding and zero trailing bits, the decoded blob starts with
 *   the length-prefixed type name and holds more after it), then the
 *   options: comma-separated, names case-insensitive, values double-quoted
 *   with \" as the only escape (other backslashes are kept, as in OpenSSH).
 * - Any error rejects the whole line: it is recorded with its line number
 *   and skipped, and the following lines load.  At most ACCESS_MAX_ERRORS
 *   errors are kept, then one "too many errors" notice.
 *
 * Error messages quote file content with non-printable bytes escaped and
 * long items shortened, so they are safe to log as is.
 */
#include <errno.h>
#include <stddef.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "access.h"
#include "base64.h"
#include "util.h"

#define ACCESS_QUOTE_MAX 80

static const char *const access_key_types[] = {
	"ssh-ed25519",
	"ssh-rsa",
	"ecdsa-sha2-nistp256",
	"ecdsa-sha2-nistp384",
	"ecdsa-sha2-nistp521",
	"sk-ssh-ed25519@openssh.com",
	"sk-ecdsa-sha2-nistp256@openssh.com",
	"ssh-dss",
};

static const char *const access_cert_types[] = {
	"ssh-ed25519-cert-v01@openssh.com",
	"ssh-rsa-cert-v01@openssh.com",
	"ecdsa-sha2-nistp256-cert-v01@openssh.com",
	"ecdsa-sha2-nistp384-cert-v01@openssh.com",
	"ecdsa-sha2-nistp521-cert-v01@openssh.com",
	"sk-ssh-ed25519-cert-v01@openssh.com",
	"sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
	"ssh-dss-cert-v01@openssh.com",
};

enum access_option {
	ACCESS_OPTION_CONSOLES,
	ACCESS_OPTION_FROM,
	ACCESS_OPTION_BREAK,
	ACCESS_OPTION_GATEWAY,
	ACCESS_OPTION_SYSRQ,
	ACCESS_OPTION_NMI,
	ACCESS_OPTION_POWER,
	ACCESS_OPTION_IGNORED, /* OpenSSH restrictions that ttyhub-sshd enforces anyway */
	ACCESS_OPTION_UNKNOWN,
};

static const struct {
	const char *name;
	enum access_option option;
} access_options[] = {
	{ "consoles", ACCESS_OPTION_CONSOLES },
	{ "from", ACCESS_OPTION_FROM },
	{ "break", ACCESS_OPTION_BREAK },
	{ "gateway", ACCESS_OPTION_GATEWAY },
	{ "sysrq", ACCESS_OPTION_SYSRQ },
	{ "nmi", ACCESS_OPTION_NMI },
	{ "power", ACCESS_OPTION_POWER },
	{ "restrict", ACCESS_OPTION_IGNORED },
	{ "no-port-forwarding", ACCESS_OPTION_IGNORED },
	{ "no-agent-forwarding", ACCESS_OPTION_IGNORED },
	{ "no-X11-forwarding", ACCESS_OPTION_IGNORED },
	{ "no-user-rc", ACCESS_OPTION_IGNORED },
};

/* The line parser's state for one line. */
struct access_line {
	struct access_entry *e; /* the entry being filled */
	bool have_from;
	bool grant;             /* a grant (access_parse_grant()): consoles= and break only */
	char msg[ACCESS_MSG_MAX]; /* the error, when a step returns -EINVAL */
};

static bool access_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool access_in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

bool access_is_key_type(const char *s)
{
	return access_in_list(s, access_key_types,
			      sizeof(access_key_types) / sizeof(access_key_types[0]));
}

static bool access_is_cert_type(const char *s)
{
	return access_in_list(s, access_cert_types,
			      sizeof(access_cert_types) / sizeof(access_cert_types[0]));
}

/*
 * Write s[0..n) to dst as a double-quoted string for a message: '"', '\' and
 * bytes outside printable ASCII are escaped, and the text is cut with "..."
 * when it would not fit into ACCESS_QUOTE_MAX bytes.
 */
static void access_quote(char dst[static ACCESS_QUOTE_MAX], const char *s, size_t n)
{
	size_t o = 0;

	dst[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[5];
		size_t tl;

		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			tl = 2;
		} else if (c < 0x20 || c >= 0x7f) {
			snprintf(tmp, sizeof(tmp), "\\x%02x", c);
			tl = 4;
		} else {
			tmp[0] = (char)c;
			tl = 1;
		}
		/* room for this, then "...", the closing quote and the NUL */
		if (o + tl + 5 > ACCESS_QUOTE_MAX) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(dst + o, tmp, tl);
		o += tl;
	}
	dst[o++] = '"';
	dst[o] = '\0';
}

static int access_fail(struct access_line *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Record the line's error message; always returns -EINVAL. */
static int access_fail(struct access_line *l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(l->msg, sizeof(l->msg), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Check the blob: valid base64 whose data starts with string(keytype) and goes on. */
static int access_check_blob(struct access_line *l, const char *keytype, const char *b64)
{
	size_t n = strlen(b64), len = 0, tl = strlen(keytype);
	uint8_t *blob;
	uint32_t sl;
	int r = 0;

	for (size_t i = 0; i < n; i++)
		if (base64_value((unsigned char)b64[i]) < 0 && b64[i] != '=')
			return access_fail(l, "invalid base64 in key");
	blob = malloc(n / 4 * 3 + 1);
	if (!blob)
		return -ENOMEM;
	if (base64_decode_strict(b64, n, blob, &len) < 0) {
		r = access_fail(l, "invalid base64 in key");
		goto out;
	}
	if (len < 4) {
		r = access_fail(l, "key type mismatch");
		goto out;
	}
	sl = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 | (uint32_t)blob[2] << 8 | blob[3];
	if (sl != tl || len - 4 < tl || memcmp(blob + 4, keytype, tl) != 0) {
		r = access_fail(l, "key type mismatch");
		goto out;
	}
	if (len - 4 == tl)
		r = access_fail(l, "truncated key");
out:
	free(blob);
	return r;
}

int access_key_decode(const char *keytype, const char *base64, uint8_t **ret_blob,
		      size_t *ret_len)
{
	size_t n = strlen(base64), len = 0, tl = strlen(keytype);
	uint8_t *blob;
	uint32_t sl;

	if (!access_is_key_type(keytype) || n == 0 || n > ACCESS_MAX_LINE)
		return -EINVAL;
	blob = malloc(n / 4 * 3 + 1);
	if (!blob)
		return -ENOMEM;
	if (base64_decode_strict(base64, n, blob, &len) < 0 || len < 4)
		goto bad;
	sl = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 | (uint32_t)blob[2] << 8 | blob[3];
	if (sl != tl || len - 4 <= tl || memcmp(blob + 4, keytype, tl) != 0)
		goto bad;
	*ret_blob = blob;
	*ret_len = len;
	return 0;
bad:
	free(blob);
	return -EINVAL;
}

/* Whether an unknown first token is more likely a mistyped key type than an option. */
static bool access_looks_like_key_type(const char *s)
{
	return strncmp(s, "ssh-", 4) == 0 || strncmp(s, "ecdsa-", 6) == 0 ||
	       strncmp(s, "sk-", 3) == 0;
}

/*
 * Read a double-quoted option value at *p into a new string; \" stands for
 * '"', any other backslash is kept.  *p is left after the closing quote.
 */
static int access_dequote(const char **p, char **ret)
{
	const char *s = *p;
	char *v, *o;

	if (*s != '"')
		return -EINVAL;
	s++;
	v = malloc(strlen(s) + 1);
	if (!v)
		return -ENOMEM;
	o = v;
	while (*s && *s != '"') {
		if (s[0] == '\\' && s[1] == '"')
			s++;
		*o++ = *s++;
	}
	if (*s != '"') {
		free(v);
		return -EBADMSG;
	}
	*o = '\0';
	*p = s + 1;
	*ret = v;
	return 0;
}

/* Cut the next comma-separated item of *p (modified in place), trimmed of blanks. */
static char *access_next_item(char **p, size_t *ret_len)
{
	char *s = *p, *end = strchr(s, ',');
	size_t n;

	if (end) {
		*end = '\0';
		*p = end + 1;
	} else {
		*p = NULL;
	}
	while (access_is_blank(*s))
		s++;
	n = strlen(s);
	while (n > 0 && access_is_blank(s[n - 1]))
		s[--n] = '\0';
	*ret_len = n;
	return s;
}

enum access_kind access_pattern_kind(const char *pattern)
{
	const char *colon = strchr(pattern, ':');
	size_t n = colon ? (size_t)(colon - pattern) : strlen(pattern);

	if (uuid_is_canonical_n(pattern, n))
		return colon ? ACCESS_KIND_UUID_ALIAS : ACCESS_KIND_UUID;
	return colon ? ACCESS_KIND_VM_ALIAS : ACCESS_KIND_VM;
}

/* A libvirt-style alias: serial0, console1, channel2, parallel0 ... (digits optional). */
static bool access_looks_alias(const char *s)
{
	static const char *const kinds[] = { "serial", "console", "channel", "parallel" };

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t n = strlen(kinds[i]);

		if (strncmp(s, kinds[i], n) == 0 && strspn(s + n, "0123456789") == strlen(s + n))
			return true;
	}
	return false;
}

int access_pattern_warning(const char *pattern, char *buf, size_t size)
{
	const char *rest = pattern + strspn(pattern, "*");
	char q[ACCESS_QUOTE_MAX];
	bool hexish = true, glob = false, dash = false;
	size_t nhex = 0;

	if (access_pattern_kind(pattern) != ACCESS_KIND_VM)
		return 0;
	access_quote(q, pattern, strlen(pattern));
	/* "*0", "*serial1", "*beef": once an alias or UUID tail, now only VM names ending so. */
	if (rest != pattern && rest[0] &&
	    (strspn(rest, "0123456789abcdefABCDEF-") == strlen(rest) || access_looks_alias(rest))) {
		snprintf(buf, size,
			 "consoles=: pattern %s matches VM names only, never aliases or UUIDs; "
			 "write \"*:ALIAS\" for an alias, a UUID in full", q);
		return 1;
	}
	/* "c7a5fdbd-*", "c7a5fdbd*": part of a UUID, which never matches one. */
	for (const char *p = pattern; *p; p++) {
		if (strchr("*?[]", *p))
			glob = true;
		else if (*p == '-')
			dash = true;
		else if (char_is_hex(*p))
			nhex++;
		else
			hexish = false;
	}
	if (hexish && glob && (dash || nhex >= 8)) {
		snprintf(buf, size,
			 "consoles=: pattern %s matches VM names only; a UUID matches only when "
			 "written in full", q);
		return 1;
	}
	return 0;
}

static int access_add_rule(struct access_entry *e, const char *pattern, size_t n,
			   enum access_right right)
{
	struct access_rule *rules;
	char *pat;

	pat = strndup(pattern, n);
	if (!pat)
		return -ENOMEM;
	rules = realloc(e->rules, (e->n_rules + 1) * sizeof(*rules));
	if (!rules) {
		free(pat);
		return -ENOMEM;
	}
	e->rules = rules;
	rules[e->n_rules].pattern = pat;
	rules[e->n_rules].right = right;
	rules[e->n_rules].kind = access_pattern_kind(pat);
	e->n_rules++;
	return 0;
}

/* consoles="PATTERN:ro|rw,...": each item is split at its last ':'. */
static int access_parse_consoles(struct access_line *l, char *value)
{
	char *p = value;

	while (p) {
		char q[ACCESS_QUOTE_MAX];
		enum access_right right;
		size_t n;
		char *item = access_next_item(&p, &n), *colon = strrchr(item, ':');
		int r;

		if (!colon || (strcmp(colon + 1, "ro") != 0 && strcmp(colon + 1, "rw") != 0)) {
			access_quote(q, item, n);
			return access_fail(l, "consoles=: expected %s, got %s",
					   "PATTERN:ro or PATTERN:rw", q);
		}
		if (colon == item) {
			access_quote(q, item, n);
			return access_fail(l, "consoles=: empty pattern in %s", q);
		}
		right = colon[2] == 'w' ? ACCESS_RW : ACCESS_RO;
		r = access_add_rule(l->e, item, (size_t)(colon - item), right);
		if (r < 0)
			return r;
	}
	return 0;
}

/* from="PATTERN,...": the patterns are kept as written, "!" included. */
static int access_parse_from(struct access_line *l, char *value)
{
	struct access_entry *e = l->e;
	char *p = value;

	if (l->have_from)
		return access_fail(l, "duplicate option \"from\"");
	l->have_from = true;
	while (p) {
		size_t n;
		char *item = access_next_item(&p, &n), *pat, **from;

		if (n == 0 || (n == 1 && item[0] == '!'))
			return access_fail(l, "from=: empty pattern");
		pat = strndup(item, n);
		if (!pat)
			return -ENOMEM;
		from = realloc(e->from, (e->n_from + 1) * sizeof(*from));
		if (!from) {
			free(pat);
			return -ENOMEM;
		}
		e->from = from;
		from[e->n_from++] = pat;
	}
	return 0;
}

/* Look up the option name at s (n bytes), ignoring case. */
static enum access_option access_option_lookup(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(access_options) / sizeof(access_options[0]); i++)
		if (strlen(access_options[i].name) == n &&
		    strncasecmp(s, access_options[i].name, n) == 0)
			return access_options[i].option;
	return ACCESS_OPTION_UNKNOWN;
}

/*
 * Read the value of option q at *p (just after '=') into *ret; *p is left
 * after it, on ',' or the end of the field.
 */
static int access_parse_value(struct access_line *l, const char **p, const char *q, char **ret)
{
	int r = access_dequote(p, ret);

	if (r == -ENOMEM)
		return r;
	if (r == -EBADMSG)
		return access_fail(l, "unterminated quoted string");
	if (r < 0)
		return access_fail(l, "option %s: value must be in double quotes", q);
	if (**p != '\0' && **p != ',') {
		free(*ret);
		*ret = NULL;
		return access_fail(l, "option %s: unexpected text after the value", q);
	}
	return 0;
}

/* Parse the options field (NUL-terminated) into l->e. */
static int access_parse_options(struct access_line *l, const char *p)
{
	for (;;) {
		size_t nlen = strcspn(p, "=,");
		enum access_option opt = access_option_lookup(p, nlen);
		bool takes_value = opt == ACCESS_OPTION_CONSOLES || opt == ACCESS_OPTION_FROM;
		char q[ACCESS_QUOTE_MAX], *value = NULL;
		int r = 0;

		if (nlen == 0)
			return access_fail(l, "empty option");
		access_quote(q, p, nlen);
		p += nlen;
		if (opt == ACCESS_OPTION_UNKNOWN)
			return access_fail(l, "unknown option %s", q);
		if (l->grant && opt != ACCESS_OPTION_CONSOLES && opt != ACCESS_OPTION_BREAK &&
		    opt != ACCESS_OPTION_SYSRQ && opt != ACCESS_OPTION_NMI &&
		    opt != ACCESS_OPTION_POWER)
			return access_fail(l, "option %s is not part of a grant", q);
		if (*p == '=') {
			if (!takes_value)
				return access_fail(l, "option %s takes no value", q);
			p++;
			r = access_parse_value(l, &p, q, &value);
			if (r < 0)
				return r;
		} else if (takes_value) {
			return access_fail(l, "option %s needs a value", q);
		}

		if (opt == ACCESS_OPTION_CONSOLES)
			r = access_parse_consoles(l, value);
		else if (opt == ACCESS_OPTION_FROM)
			r = access_parse_from(l, value);
		else if (opt == ACCESS_OPTION_BREAK)
			l->e->brk = true;
		else if (opt == ACCESS_OPTION_GATEWAY)
			l->e->gateway = true;
		else if (opt == ACCESS_OPTION_SYSRQ)
			l->e->sysrq = true;
		else if (opt == ACCESS_OPTION_NMI)
			l->e->nmi = true;
		else if (opt == ACCESS_OPTION_POWER)
			l->e->power = true;
		free(value);
		if (r < 0)
			return r;

		if (*p == '\0')
			return 0;
		/* *p == ',': strcspn stopped there, or the value was followed by it */
		p++;
		if (*p == '\0')
			return access_fail(l, "empty option");
	}
}

/* Cut the blank-separated token at *p (modified in place); NULL at the end of the line. */
static char *access_next_token(char **p)
{
	char *s = *p, *end;

	while (access_is_blank(*s))
		s++;
	if (*s == '\0')
		return NULL;
	end = s + strcspn(s, " \t");
	if (*end) {
		*end = '\0';
		end++;
	}
	*p = end;
	return s;
}

static void access_entry_done(struct access_entry *e)
{
	free(e->keytype);
	free(e->base64);
	free(e->comment);
	for (size_t i = 0; i < e->n_rules; i++)
		free(e->rules[i].pattern);
	free(e->rules);
	for (size_t i = 0; i < e->n_from; i++)
		free(e->from[i]);
	free(e->from);
	memset(e, 0, sizeof(*e));
}

/* Parse one line (NUL-terminated, no leading blanks, modified in place) into l->e. */
static int access_parse_line(struct access_line *l, char *s)
{
	char q[ACCESS_QUOTE_MAX], *opts = NULL, *type, *b64, *p = s, save;
	bool has_opts;
	size_t n;
	int r;

	/* the first token decides whether there is an options field */
	n = strcspn(s, " \t");
	save = s[n];
	s[n] = '\0';
	if (access_is_cert_type(s))
		return access_fail(l, "certificates are not supported yet");
	has_opts = !access_is_key_type(s);
	s[n] = save;
	if (has_opts) {
		bool quoted = false;

		for (; *p && (quoted || !access_is_blank(*p)); p++) {
			if (p[0] == '\\' && p[1] == '"')
				p++;
			else if (*p == '"')
				quoted = !quoted;
		}
		if (quoted)
			return access_fail(l, "unterminated quoted string");
		opts = s;
		if (*p)
			*p++ = '\0';
	}

	type = access_next_token(&p);
	if (!type)
		return access_fail(l, "missing key");
	if (access_is_cert_type(type))
		return access_fail(l, "certificates are not supported yet");
	if (!access_is_key_type(type)) {
		const char *bad = opts && access_looks_like_key_type(opts) ? opts : type;

		access_quote(q, bad, strlen(bad));
		return access_fail(l, "unknown key type %s", q);
	}
	b64 = access_next_token(&p);
	if (!b64)
		return access_fail(l, "missing key");
	r = access_check_blob(l, type, b64);
	if (r < 0)
		return r;

	if (opts) {
		r = access_parse_options(l, opts);
		if (r < 0)
			return r;
	}

	l->e->keytype = strdup(type);
	l->e->base64 = strdup(b64);
	if (!l->e->keytype || !l->e->base64)
		return -ENOMEM;
	while (access_is_blank(*p))
		p++;
	n = strlen(p);
	while (n > 0 && access_is_blank(p[n - 1]))
		n--;
	if (n > 0) {
		l->e->comment = strndup(p, n);
		if (!l->e->comment)
			return -ENOMEM;
	}
	return 0;
}

struct access_entry *access_entry_free(struct access_entry *e)
{
	if (!e)
		return NULL;
	access_entry_done(e);
	free(e);
	return NULL;
}

int access_parse_grant(const char *s, size_t len, struct access_entry **ret, char *msg,
		       size_t msgsize)
{
	_cleanup_free_ char *copy = NULL;
	struct access_entry *e;
	struct access_line l = {};
	int r;

	msg[0] = '\0';
	if (len > ACCESS_GRANT_MAX) {
		snprintf(msg, msgsize, "grant longer than %u bytes", ACCESS_GRANT_MAX);
		return -EINVAL;
	}
	if (memchr(s, '\0', len)) {
		snprintf(msg, msgsize, "NUL byte in grant");
		return -EINVAL;
	}
	e = calloc(1, sizeof(*e));
	copy = strndup(s, len);
	if (!e || !copy) {
		free(e);
		return -ENOMEM;
	}
	/* "" is a grant of nothing; anything else is an options field. */
	l.e = e;
	l.grant = true;
	r = len > 0 ? access_parse_options(&l, copy) : 0;
	if (r < 0) {
		if (r == -EINVAL)
			snprintf(msg, msgsize, "%s", l.msg);
		access_entry_free(e);
		return r;
	}
	*ret = e;
	return 0;
}

/* Append n bytes of s at *o in buf (size), '"' escaped when quote; false when it does not fit. */
static bool access_grant_put(char *buf, size_t size, size_t *o, const char *s, size_t n,
			     bool quote)
{
	for (size_t i = 0; i < n; i++) {
		size_t need = quote && s[i] == '"' ? 2 : 1;

		/* the NUL too, and never past ACCESS_GRANT_MAX bytes of text */
		if (*o + need >= size || *o + need > ACCESS_GRANT_MAX)
			return false;
		if (need == 2)
			buf[(*o)++] = '\\';
		buf[(*o)++] = s[i];
	}
	buf[*o] = '\0';
	return true;
}

/* ro: every rule as :ro and no flags (a watch-only web link's grant). */
static int access_format(const struct access_entry *e, bool ro, char *buf, size_t size)
{
	size_t o = 0;
	bool ok = size > 0;

	if (ok)
		buf[0] = '\0';
	for (size_t i = 0; ok && i < e->n_rules; i++) {
		const struct access_rule *rule = &e->rules[i];
		const char *right = rule->right == ACCESS_RW && !ro ? ":rw" : ":ro";

		ok = access_grant_put(buf, size, &o, i == 0 ? "consoles=\"" : ",", i == 0 ? 10 : 1,
				      false) &&
		     access_grant_put(buf, size, &o, rule->pattern, strlen(rule->pattern), true) &&
		     access_grant_put(buf, size, &o, right, 3, false);
	}
	if (ok && e->n_rules > 0)
		ok = access_grant_put(buf, size, &o, "\"", 1, false);
	/* The flags, in a fixed order: the same grant always has the same text. */
	static const struct {
		size_t off;
		const char *name;
	} flags[] = {
		{ offsetof(struct access_entry, brk), "break" },
		{ offsetof(struct access_entry, sysrq), "sysrq" },
		{ offsetof(struct access_entry, nmi), "nmi" },
		{ offsetof(struct access_entry, power), "power" },
	};
	for (size_t i = 0; ok && !ro && i < ELEMENTSOF(flags); i++)
		if (*(const bool *)((const char *)e + flags[i].off))
			ok = (o == 0 || access_grant_put(buf, size, &o, ",", 1, false)) &&
			     access_grant_put(buf, size, &o, flags[i].name, strlen(flags[i].name),
					      false);
	if (!ok) {
		if (size > 0)
			buf[0] = '\0';
		return -ENOBUFS;
	}
	return (int)o;
}

int access_format_grant(const struct access_entry *e, char *buf, size_t size)
{
	return access_format(e, false, buf, size);
}

int access_format_grant_ro(const struct access_entry *e, char *buf, size_t size)
{
	return access_format(e, true, buf, size);
}

/* Append (line, a copy of msg) to a list of errors or warnings. */
static int access_note(struct access_error **list, size_t *n, unsigned line, const char *msg)
{
	struct access_error *l;
	char *m;

	m = strdup(msg);
	if (!m)
		return -ENOMEM;
	l = realloc(*list, (*n + 1) * sizeof(*l));
	if (!l) {
		free(m);
		return -ENOMEM;
	}
	*list = l;
	l[*n].line = line;
	l[*n].message = m;
	(*n)++;
	return 0;
}

static void access_notes_free(struct access_error *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i].message);
	free(list);
}

static int access_add_error(struct access_file *f, unsigned line, const char *msg)
{
	if (f->n_errors > ACCESS_MAX_ERRORS)
		return 0;
	if (f->n_errors == ACCESS_MAX_ERRORS)
		msg = "too many errors, no more are reported";
	return access_note(&f->errors, &f->n_errors, line, msg);
}

static int access_add_warning(struct access_file *f, unsigned line, const char *msg)
{
	if (f->n_warnings >= ACCESS_MAX_ERRORS)
		return 0;
	return access_note(&f->warnings, &f->n_warnings, line, msg);
}

/* Warnings for the patterns of a line that loads. */
static int access_warn_rules(struct access_file *f, const struct access_entry *e)
{
	for (size_t i = 0; i < e->n_rules; i++) {
		char msg[ACCESS_MSG_MAX];
		int r;

		if (access_pattern_warning(e->rules[i].pattern, msg, sizeof(msg)) <= 0)
			continue;
		r = access_add_warning(f, e->line, msg);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Append *e to f (moved: *e is cleared). */
static int access_add_entry(struct access_file *f, size_t *allocated, struct access_entry *e)
{
	if (f->n_entries == *allocated) {
		size_t n = *allocated ? *allocated * 2 : 16;
		struct access_entry *entries = realloc(f->entries, n * sizeof(*entries));

		if (!entries)
			return -ENOMEM;
		f->entries = entries;
		*allocated = n;
	}
	f->entries[f->n_entries++] = *e;
	memset(e, 0, sizeof(*e));
	return 0;
}

/* Handle one line (without its '\n'): skip, add an entry or record an error. */
static int access_handle_line(struct access_file *f, size_t *allocated, char *scratch,
			      unsigned lineno, const char *s, size_t n)
{
	struct access_entry e = { .line = lineno };
	struct access_line l = { .e = &e };
	int r;

	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (n > ACCESS_MAX_LINE)
		return access_add_error(f, lineno, "line too long");
	if (memchr(s, '\0', n))
		return access_add_error(f, lineno, "NUL byte in line");
	while (n > 0 && access_is_blank(*s)) {
		s++;
		n--;
	}
	if (n == 0 || *s == '#')
		return 0;

	memcpy(scratch, s, n);
	scratch[n] = '\0';
	r = access_parse_line(&l, scratch);
	if (r == -EINVAL)
		r = access_add_error(f, lineno, l.msg);
	else if (r == 0) {
		r = access_warn_rules(f, &e);
		if (r >= 0)
			r = access_add_entry(f, allocated, &e);
	}
	access_entry_done(&e);
	return r;
}

int access_parse(const char *buf, size_t len, struct access_file **ret)
{
	struct access_file *f;
	size_t allocated = 0, pos = 0;
	unsigned lineno = 0;
	char *scratch;
	int r = 0;

	if (len > ACCESS_MAX_SIZE)
		return -EFBIG;
	f = calloc(1, sizeof(*f));
	scratch = malloc(ACCESS_MAX_LINE + 1);
	if (!f || !scratch) {
		r = -ENOMEM;
		goto fail;
	}
	while (pos < len) {
		const char *s = buf + pos, *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;

		lineno++;
		r = access_handle_line(f, &allocated, scratch, lineno, s, n);
		if (r < 0)
			goto fail;
		pos += n + (nl ? 1 : 0);
	}
	free(scratch);
	*ret = f;
	return 0;
fail:
	free(scratch);
	access_file_free(f);
	return r;
}

struct access_file *access_file_free(struct access_file *f)
{
	if (!f)
		return NULL;
	for (size_t i = 0; i < f->n_entries; i++)
		access_entry_done(&f->entries[i]);
	free(f->entries);
	access_notes_free(f->errors, f->n_errors);
	access_notes_free(f->warnings, f->n_warnings);
	free(f);
	return NULL;
}

/* Whether one rule applies to the console (see access.h for the kinds). */
static bool access_rule_matches(const struct access_rule *rule, const struct access_console *con)
{
	const char *pat = rule->pattern;
	char name[ACCESS_NAME_MAX];

	switch (rule->kind) {
	case ACCESS_KIND_VM:
		return con->vm && fnmatch(pat, con->vm, 0) == 0;
	case ACCESS_KIND_VM_ALIAS:
		if (!con->vm || !con->alias ||
		    (size_t)snprintf(name, sizeof(name), "%s:%s", con->vm, con->alias) >=
			    sizeof(name))
			return false; /* longer than any console name: no rule can mean it */
		return fnmatch(pat, name, 0) == 0;
	case ACCESS_KIND_UUID:
		return con->uuid && strcasecmp(pat, con->uuid) == 0;
	case ACCESS_KIND_UUID_ALIAS:
		return con->uuid && con->alias && strlen(con->uuid) == UUID_STRING_LEN &&
		       strncasecmp(pat, con->uuid, UUID_STRING_LEN) == 0 &&
		       fnmatch(pat + UUID_STRING_LEN + 1, con->alias, 0) == 0;
	}
	return false;
}

enum access_right access_check(const struct access_entry *e, const struct access_console *con)
{
	enum access_right best = ACCESS_NONE;

	for (size_t i = 0; i < e->n_rules; i++)
		if (e->rules[i].right > best && access_rule_matches(&e->rules[i], con))
			best = e->rules[i].right;
	return best;
}

bool access_from_allows(const struct access_entry *e, const char *addr)
{
	bool allowed = false;

	if (e->n_from == 0)
		return true;
	if (!addr)
		return false;
	for (size_t i = 0; i < e->n_from; i++) {
		const char *pat = e->from[i];
		bool negated = pat[0] == '!';

		if (fnmatch(negated ? pat + 1 : pat, addr, 0) != 0)
			continue;
		if (negated)
			return false;
		allowed = true;
	}
	return allowed;
}
