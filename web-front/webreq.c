/* SPDX-License-Identifier: MIT */
/*
 * The HTTP pieces ttyhub-webd parses itself (webreq.h): bounded, I/O-free,
 * no allocation except the token body's JSON decode.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "webreq.h"

static bool is_b64url(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

static int copy_secret(const char *s, size_t n, char *out, size_t size)
{
	if (n == 0 || n > WEBREQ_SECRET_MAX || n >= size)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!is_b64url(s[i]))
			return -EINVAL;
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

int webreq_session_token(const char *body, size_t len, char *token, size_t size)
{
	json_error_t jerr;
	json_t *o, *t;
	int r = -EINVAL;

	if (len > WEBREQ_BODY_MAX)
		return -EINVAL;
	o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return -EINVAL;
	t = json_object_get(o, "token");
	if (json_is_object(o) && json_is_string(t))
		r = copy_secret(json_string_value(t), json_string_length(t), token, size);
	json_decref(o);
	return r;
}

int webreq_cookie(const char *header, const char *name, char *out, size_t size)
{
	size_t nlen = strlen(name);
	const char *p = header;

	while (*p) {
		const char *end, *eq;

		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		end = strchr(p, ';');
		if (!end)
			end = p + strlen(p);
		eq = memchr(p, '=', (size_t)(end - p));
		if (eq && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0) {
			const char *v = eq + 1;
			size_t vlen = (size_t)(end - v);

			while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
				vlen--;
			return copy_secret(v, vlen, out, size);
		}
		p = end;
	}
	return -ENOENT;
}

int webreq_origin_normalize(const char *url, char *out, size_t size)
{
	const char *host, *end, *colon;
	char buf[WEBREQ_ORIGIN_MAX];
	bool tls;
	unsigned long port = 0;
	size_t hlen;
	int n;

	if (strncasecmp(url, "https://", 8) == 0) {
		tls = true;
		host = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		tls = false;
		host = url + 7;
	} else {
		return -EINVAL;
	}
	end = host + strcspn(host, "/?#");
	if (*end && strcmp(end, "/") != 0)
		return -EINVAL;
	hlen = (size_t)(end - host);
	if (hlen == 0 || hlen >= sizeof(buf) || memchr(host, '@', hlen))
		return -EINVAL;
	/* An IPv6 literal keeps its brackets; the port follows the last ']'. */
	colon = NULL;
	for (const char *c = host; c < end; c++)
		if (*c == ':')
			colon = c;
	if (host[0] == '[') {
		const char *rb = memchr(host, ']', hlen);

		if (!rb || (colon && colon < rb))
			colon = NULL;
		if (!rb || (rb + 1 != end && rb + 1 != colon))
			return -EINVAL;
	}
	if (colon) {
		char *pe;

		if (colon + 1 == end || !isdigit((unsigned char)colon[1]))
			return -EINVAL;
		errno = 0;
		port = strtoul(colon + 1, &pe, 10);
		if (errno || pe != end || port == 0 || port > 65535)
			return -EINVAL;
		hlen = (size_t)(colon - host);
	}
	if (hlen == 0)
		return -EINVAL;
	for (size_t i = 0; i < hlen; i++) {
		unsigned char c = (unsigned char)host[i];
		bool ok;

		/* A name or IPv4 address; an IPv6 literal only inside its brackets. */
		if (host[0] == '[')
			ok = (i == 0 && c == '[') || (i == hlen - 1 && c == ']') ||
			     (i > 0 && i < hlen - 1 && (isxdigit(c) || c == ':' || c == '.'));
		else
			ok = isalnum(c) || c == '.' || c == '-';
		if (!ok)
			return -EINVAL;
		buf[i] = (char)tolower(c);
	}
	buf[hlen] = '\0';
	if (port == (tls ? 443 : 80))
		port = 0;
	if (port)
		n = snprintf(out, size, "%s://%s:%lu", tls ? "https" : "http", buf, port);
	else
		n = snprintf(out, size, "%s://%s", tls ? "https" : "http", buf);
	return n < 0 || (size_t)n >= size ? -EINVAL : 0;
}

bool webreq_origin_allowed(const char *origin, char *const *origins, size_t n)
{
	char norm[WEBREQ_ORIGIN_MAX];

	/* Browsers send the normalised form; normalising again accepts nothing new. */
	if (!origin || webreq_origin_normalize(origin, norm, sizeof(norm)) < 0 ||
	    strcmp(origin, norm) != 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(norm, origins[i]) == 0)
			return true;
	return false;
}

bool webreq_host_allowed(const char *host, char *const *origins, size_t n)
{
	char url[WEBREQ_ORIGIN_MAX + 16], norm[WEBREQ_ORIGIN_MAX];

	if (!host || strlen(host) >= WEBREQ_ORIGIN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool tls = strncmp(origins[i], "https://", 8) == 0;

		/* The Host header under the origin's scheme, normalised: the same string? */
		snprintf(url, sizeof(url), "%s://%s", tls ? "https" : "http", host);
		if (webreq_origin_normalize(url, norm, sizeof(norm)) == 0 &&
		    strcmp(norm, origins[i]) == 0)
			return true;
	}
	return false;
}
