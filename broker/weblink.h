/* SPDX-License-Identifier: MIT */
/*
 * Web links and web sessions (docs/protocol.md "Web links and sessions").
 *
 * A principal who may use a console mints a one-time link for it: a 256-bit
 * random token that the browser's page exchanges once (`redeem`, through
 * ttyhub-webd) for a web session, itself a 256-bit random secret that the
 * page's cookie carries on every connection (`hello` with "session").
 *
 * Model: two bounded tables, pending links and sessions, each entry keyed by
 * the SHA-256 of its secret (the secret itself is never stored, so a memory
 * or core dump gives nothing to replay) with what it grants: the principal
 * (an SSH key, bound to the current policy, or a local admin's user name),
 * the narrowing (ro) and, for a link, the console.  A link is single use:
 * redeeming removes it.  Expiry is checked on every lookup and swept on
 * every insertion; a full link table drops its oldest link (a link is cheap
 * to mint again), and so does one owner's share of it (WEBLINK_LINKS_PER_OWNER:
 * one key minting in a loop pushes out only its own links); a full session
 * table refuses (a live session is someone's open page).  Revocation removes every entry a predicate names (a key gone
 * from the access file).
 *
 * Pure but for weblink_random(): the caller passes the clock (any monotonic
 * microseconds) and the random secrets, so tests choose both.  Secrets travel
 * as base64url without padding (43 characters); logs name one by
 * weblink_tag(): the first 12 hex digits of its SHA-256.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define WEBLINK_SECRET_SIZE 32
#define WEBLINK_TEXT_LEN 43 /* base64url of 32 bytes, no padding */
#define WEBLINK_HASH_SIZE 32
#define WEBLINK_TAG_LEN 12
#define WEBLINK_LINKS_MAX 1024
#define WEBLINK_LINKS_PER_OWNER 16 /* pending links of one key or local admin */
#define WEBLINK_SESSIONS_MAX 4096
#define WEBLINK_CONSOLE_MAX 513 /* a name of up to 512 bytes (a gateway's HOST/VM:ALIAS) + NUL */
#define WEBLINK_ADMIN_MAX 72
#define WEBLINK_LINK_TTL_DEFAULT 60           /* seconds */
#define WEBLINK_SESSION_TTL_DEFAULT (12 * 3600) /* seconds */

/* What a link or session grants. */
struct weblink_grant {
	struct principal *principal;  /* owned, bound to the current policy; NULL: a local admin */
	char admin[WEBLINK_ADMIN_MAX]; /* the local admin's user name (no principal) */
	bool ro;                      /* narrowed to watching */
	char console[WEBLINK_CONSOLE_MAX]; /* a link's console (a session keeps it too) */
};

struct weblink_entry {
	uint8_t hash[WEBLINK_HASH_SIZE]; /* SHA-256 of the secret */
	uint64_t created_usec, expires_usec;
	struct weblink_grant grant;
};

struct weblink_table {
	struct weblink_entry *v; /* owned, n used of max */
	size_t n, max;
};

struct weblink {
	struct weblink_table links, sessions;
	uint64_t link_ttl_usec, session_ttl_usec;
};

/* Tables of at most max_links and max_sessions entries.  -ENOMEM, -EINVAL for a 0 bound. */
int weblink_new(size_t max_links, size_t max_sessions, struct weblink **ret);
struct weblink *weblink_free(struct weblink *w);
void weblink_set_ttl(struct weblink *w, uint64_t link_ttl_usec, uint64_t session_ttl_usec);

/* Release what a grant owns (its principal); accepts an empty grant. */
void weblink_grant_done(struct weblink_grant *g);

/* 32 bytes from getrandom().  0 or -errno. */
int weblink_random(uint8_t secret[WEBLINK_SECRET_SIZE]);
/* base64url without padding; text holds WEBLINK_TEXT_LEN + 1 bytes. */
void weblink_encode(const uint8_t secret[WEBLINK_SECRET_SIZE], char text[WEBLINK_TEXT_LEN + 1]);
/* Strict inverse of weblink_encode(): -EINVAL unless text is exactly such a string. */
int weblink_decode(const char *text, uint8_t secret[WEBLINK_SECRET_SIZE]);
void weblink_hash(const uint8_t secret[WEBLINK_SECRET_SIZE], uint8_t hash[WEBLINK_HASH_SIZE]);
/* The first WEBLINK_TAG_LEN hex digits of hash: what logs say instead of a secret. */
void weblink_tag(const uint8_t hash[WEBLINK_HASH_SIZE], char tag[WEBLINK_TAG_LEN + 1]);
/* The tag of a secret's text as received (any string: hashed as it is). */
void weblink_tag_text(const char *text, char tag[WEBLINK_TAG_LEN + 1]);

/*
 * Keep a new link: the hash of secret, granting *grant (taken on success:
 * the caller's is emptied) until now + the link TTL.  Expired links go
 * first; then the owner's oldest if it has WEBLINK_LINKS_PER_OWNER pending,
 * then the table's oldest if it is full.  0 or -EEXIST (same secret).
 */
int weblink_mint(struct weblink *w, const uint8_t secret[WEBLINK_SECRET_SIZE],
		 struct weblink_grant *grant, uint64_t now_usec);

/*
 * Redeem a link's token (its text as received): a known, unexpired link is
 * removed and becomes a session keyed by session_secret until now + the
 * session TTL.  Returns the session, or NULL with *ret_error -EPERM (unknown,
 * used, expired or malformed: callers answer all alike) or -ENOSPC (the
 * session table is full of live sessions; the link is kept).
 */
const struct weblink_entry *weblink_redeem(struct weblink *w, const char *token,
					   const uint8_t session_secret[WEBLINK_SECRET_SIZE],
					   uint64_t now_usec, int *ret_error);

/* The live session whose secret is text, or NULL (unknown, expired, malformed). */
const struct weblink_entry *weblink_session_find(struct weblink *w, const char *text,
						 uint64_t now_usec);
/* Seconds until e expires (0 if past), for "expires_in". */
uint64_t weblink_expires_in(const struct weblink_entry *e, uint64_t now_usec);

/*
 * Remove every link and session for which gone(userdata, entry, is_session)
 * is true (called once per entry).  Returns how many were removed.
 */
size_t weblink_revoke(struct weblink *w,
		      bool (*gone)(void *userdata, struct weblink_entry *e, bool is_session),
		      void *userdata);
/* Drop what has expired by now.  Returns how many. */
size_t weblink_sweep(struct weblink *w, uint64_t now_usec);
