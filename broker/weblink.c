/* SPDX-License-Identifier: MIT */
/*
 * Web links and web sessions: two bounded tables of SHA-256 hashes and
 * what each grants (see weblink.h).  Lookups are linear: a table holds at
 * most a few thousand entries and is touched once per link, redeem or web
 * connection, never per byte of console output.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util.h"
#include "weblink.h"

static const char weblink_b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int weblink_new(size_t max_links, size_t max_sessions, struct weblink **ret)
{
	struct weblink *w;

	if (max_links == 0 || max_sessions == 0)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->links.v = calloc(max_links, sizeof(*w->links.v));
	w->sessions.v = calloc(max_sessions, sizeof(*w->sessions.v));
	if (!w->links.v || !w->sessions.v) {
		weblink_free(w);
		return -ENOMEM;
	}
	w->links.max = max_links;
	w->sessions.max = max_sessions;
	weblink_set_ttl(w, WEBLINK_LINK_TTL_DEFAULT * 1000000ULL,
			WEBLINK_SESSION_TTL_DEFAULT * 1000000ULL);
	*ret = w;
	return 0;
}

void weblink_grant_done(struct weblink_grant *g)
{
	if (g->principal) {
		principal_done(g->principal);
		free(g->principal);
	}
	*g = (struct weblink_grant){};
}

static void weblink_table_done(struct weblink_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		weblink_grant_done(&t->v[i].grant);
	free(t->v);
	*t = (struct weblink_table){};
}

struct weblink *weblink_free(struct weblink *w)
{
	if (!w)
		return NULL;
	weblink_table_done(&w->links);
	weblink_table_done(&w->sessions);
	free(w);
	return NULL;
}

void weblink_set_ttl(struct weblink *w, uint64_t link_ttl_usec, uint64_t session_ttl_usec)
{
	w->link_ttl_usec = link_ttl_usec;
	w->session_ttl_usec = session_ttl_usec;
}

int weblink_random(uint8_t secret[WEBLINK_SECRET_SIZE])
{
	ssize_t n = getrandom(secret, WEBLINK_SECRET_SIZE, 0);

	if (n < 0)
		return -errno;
	return n == WEBLINK_SECRET_SIZE ? 0 : -EIO;
}

void weblink_encode(const uint8_t secret[WEBLINK_SECRET_SIZE], char text[WEBLINK_TEXT_LEN + 1])
{
	size_t o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	for (size_t i = 0; i < WEBLINK_SECRET_SIZE; i++) {
		acc = (acc << 8) | secret[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			text[o++] = weblink_b64[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		text[o++] = weblink_b64[(acc << (6 - bits)) & 63];
	text[o] = '\0';
}

static int weblink_b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-')
		return 62;
	if (ch == '_')
		return 63;
	return -EINVAL;
}

int weblink_decode(const char *text, uint8_t secret[WEBLINK_SECRET_SIZE])
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;

	if (!text || strnlen(text, WEBLINK_TEXT_LEN + 1) != WEBLINK_TEXT_LEN)
		return -EINVAL;
	for (size_t i = 0; i < WEBLINK_TEXT_LEN; i++) {
		int v = weblink_b64_value(text[i]);

		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			secret[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* 43 characters carry 258 bits: the last 2 must be zero, so each secret has one text. */
	if (acc & ((1u << bits) - 1))
		return -EINVAL;
	return 0;
}

void weblink_hash(const uint8_t secret[WEBLINK_SECRET_SIZE], uint8_t hash[WEBLINK_HASH_SIZE])
{
	unsigned len = 0;

	if (EVP_Digest(secret, WEBLINK_SECRET_SIZE, hash, &len, EVP_sha256(), NULL) != 1 ||
	    len != WEBLINK_HASH_SIZE)
		abort(); /* SHA-256 of 32 bytes cannot fail unless libcrypto is broken */
}

void weblink_tag(const uint8_t hash[WEBLINK_HASH_SIZE], char tag[WEBLINK_TAG_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < WEBLINK_TAG_LEN / 2; i++) {
		tag[2 * i] = hex[hash[i] >> 4];
		tag[2 * i + 1] = hex[hash[i] & 15];
	}
	tag[WEBLINK_TAG_LEN] = '\0';
}

void weblink_tag_text(const char *text, char tag[WEBLINK_TAG_LEN + 1])
{
	uint8_t secret[WEBLINK_SECRET_SIZE], hash[WEBLINK_HASH_SIZE];
	unsigned len = 0;

	/* A well-formed secret's tag is its hash's; anything else is hashed as text. */
	if (weblink_decode(text, secret) >= 0)
		weblink_hash(secret, hash);
	else if (EVP_Digest(text ? text : "", text ? strnlen(text, 4096) : 0, hash, &len,
			    EVP_sha256(), NULL) != 1)
		memset(hash, 0, sizeof(hash));
	weblink_tag(hash, tag);
	OPENSSL_cleanse(secret, sizeof(secret));
}

/* Remove entry i (the last one moves into its place: order does not matter). */
static void weblink_table_remove(struct weblink_table *t, size_t i)
{
	weblink_grant_done(&t->v[i].grant);
	if (i != t->n - 1)
		t->v[i] = t->v[t->n - 1];
	t->v[--t->n] = (struct weblink_entry){};
}

static size_t weblink_table_sweep(struct weblink_table *t, uint64_t now_usec)
{
	size_t removed = 0;

	for (size_t i = 0; i < t->n;) {
		if (t->v[i].expires_usec <= now_usec) {
			weblink_table_remove(t, i);
			removed++;
		} else
			i++;
	}
	return removed;
}

size_t weblink_sweep(struct weblink *w, uint64_t now_usec)
{
	return weblink_table_sweep(&w->links, now_usec) + weblink_table_sweep(&w->sessions, now_usec);
}

static struct weblink_entry *weblink_table_find(struct weblink_table *t,
						const uint8_t hash[WEBLINK_HASH_SIZE],
						uint64_t now_usec, size_t *ret_index)
{
	for (size_t i = 0; i < t->n; i++) {
		/* Constant time: how much of a hash matched is nobody's business. */
		if (CRYPTO_memcmp(t->v[i].hash, hash, WEBLINK_HASH_SIZE) != 0)
			continue;
		if (t->v[i].expires_usec <= now_usec)
			return NULL;
		if (ret_index)
			*ret_index = i;
		return &t->v[i];
	}
	return NULL;
}

/* Append an entry for hash, taking *grant; the caller made room. */
static struct weblink_entry *weblink_table_add(struct weblink_table *t,
					       const uint8_t hash[WEBLINK_HASH_SIZE],
					       struct weblink_grant *grant, uint64_t now_usec,
					       uint64_t ttl_usec)
{
	struct weblink_entry *e = &t->v[t->n++];

	memcpy(e->hash, hash, WEBLINK_HASH_SIZE);
	e->created_usec = now_usec;
	e->expires_usec = now_usec + ttl_usec;
	e->grant = *grant;
	*grant = (struct weblink_grant){};
	return e;
}

/* Whether two grants speak for the same key (type and blob) or the same local admin. */
static bool weblink_same_owner(const struct weblink_grant *a, const struct weblink_grant *b)
{
	if (!a->principal || !b->principal)
		return !a->principal && !b->principal && strcmp(a->admin, b->admin) == 0;
	return a->principal->blob_len == b->principal->blob_len &&
	       memcmp(a->principal->blob, b->principal->blob, a->principal->blob_len) == 0 &&
	       strcmp(a->principal->keytype, b->principal->keytype) == 0;
}

/* How many entries of t belong to g's owner; *ret_oldest: the index of its oldest. */
static size_t weblink_owner_links(const struct weblink_table *t, const struct weblink_grant *g,
				  size_t *ret_oldest)
{
	size_t n = 0;

	for (size_t i = 0; i < t->n; i++) {
		if (!weblink_same_owner(&t->v[i].grant, g))
			continue;
		if (n++ == 0 || t->v[i].created_usec < t->v[*ret_oldest].created_usec)
			*ret_oldest = i;
	}
	return n;
}

int weblink_mint(struct weblink *w, const uint8_t secret[WEBLINK_SECRET_SIZE],
		 struct weblink_grant *grant, uint64_t now_usec)
{
	uint8_t hash[WEBLINK_HASH_SIZE];
	size_t oldest = 0;

	weblink_hash(secret, hash);
	weblink_table_sweep(&w->links, now_usec);
	if (weblink_table_find(&w->links, hash, now_usec, NULL))
		return -EEXIST;
	if (weblink_owner_links(&w->links, grant, &oldest) >= WEBLINK_LINKS_PER_OWNER)
		weblink_table_remove(&w->links, oldest);
	if (w->links.n == w->links.max) {
		oldest = 0;
		for (size_t i = 1; i < w->links.n; i++)
			if (w->links.v[i].created_usec < w->links.v[oldest].created_usec)
				oldest = i;
		weblink_table_remove(&w->links, oldest);
	}
	weblink_table_add(&w->links, hash, grant, now_usec, w->link_ttl_usec);
	return 0;
}

const struct weblink_entry *weblink_redeem(struct weblink *w, const char *token,
					   const uint8_t session_secret[WEBLINK_SECRET_SIZE],
					   uint64_t now_usec, int *ret_error)
{
	uint8_t secret[WEBLINK_SECRET_SIZE], hash[WEBLINK_HASH_SIZE];
	struct weblink_entry *link;
	const struct weblink_entry *s;
	size_t i;

	weblink_sweep(w, now_usec);
	if (weblink_decode(token, secret) < 0) {
		*ret_error = -EPERM;
		return NULL;
	}
	weblink_hash(secret, hash);
	OPENSSL_cleanse(secret, sizeof(secret));
	link = weblink_table_find(&w->links, hash, now_usec, &i);
	if (!link) {
		*ret_error = -EPERM;
		return NULL;
	}
	if (w->sessions.n == w->sessions.max) {
		*ret_error = -ENOSPC;
		return NULL;
	}
	weblink_hash(session_secret, hash);
	if (weblink_table_find(&w->sessions, hash, now_usec, NULL)) {
		*ret_error = -EEXIST; /* the caller's random source repeats itself */
		return NULL;
	}
	s = weblink_table_add(&w->sessions, hash, &link->grant, now_usec, w->session_ttl_usec);
	weblink_table_remove(&w->links, i); /* single use: its grant moved to the session */
	return s;
}

const struct weblink_entry *weblink_session_find(struct weblink *w, const char *text,
						 uint64_t now_usec)
{
	uint8_t secret[WEBLINK_SECRET_SIZE], hash[WEBLINK_HASH_SIZE];

	if (weblink_decode(text, secret) < 0)
		return NULL;
	weblink_hash(secret, hash);
	OPENSSL_cleanse(secret, sizeof(secret));
	return weblink_table_find(&w->sessions, hash, now_usec, NULL);
}

uint64_t weblink_expires_in(const struct weblink_entry *e, uint64_t now_usec)
{
	if (e->expires_usec <= now_usec)
		return 0;
	return (e->expires_usec - now_usec + 999999) / 1000000;
}

static size_t weblink_table_revoke(struct weblink_table *t, bool is_session,
				   bool (*gone)(void *userdata, struct weblink_entry *e,
						bool is_session),
				   void *userdata)
{
	size_t removed = 0;

	for (size_t i = 0; i < t->n;) {
		if (gone(userdata, &t->v[i], is_session)) {
			weblink_table_remove(t, i);
			removed++;
		} else
			i++;
	}
	return removed;
}

size_t weblink_revoke(struct weblink *w,
		      bool (*gone)(void *userdata, struct weblink_entry *e, bool is_session),
		      void *userdata)
{
	return weblink_table_revoke(&w->links, false, gone, userdata) +
	       weblink_table_revoke(&w->sessions, true, gone, userdata);
}
