/* SPDX-License-Identifier: MIT */
/*
 * What ttyhub-webd parses of HTTP itself (pure, no I/O; fuzzed): the token
 * exchange body, the session cookie in a Cookie header, and the Origin and
 * Host checks against the configured origins.  libmicrohttpd parses the
 * rest.
 *
 * An origin is kept normalised: "scheme://host[:port]", scheme http or
 * https, lower case, the port only when it is not the scheme's default, no
 * path.  A browser's Origin header has exactly that form, so a check is a
 * string comparison; the Host header is the origin's authority.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The token exchange body is at most this big. */
#define WEBREQ_BODY_MAX 1024
/* Tokens and session secrets are 256 bits in base64url: 43 characters (a little slack). */
#define WEBREQ_SECRET_MAX 64
#define WEBREQ_ORIGIN_MAX 256

/*
 * {"token": "..."} (nothing else required; other members ignored): the
 * token, base64url characters only, into token (size > WEBREQ_SECRET_MAX).
 * 0 or -EINVAL.
 */
int webreq_session_token(const char *body, size_t len, char *token, size_t size);

/*
 * The value of cookie NAME in a Cookie header ("a=1; NAME=VALUE; b=2"),
 * base64url characters only, into out (size > WEBREQ_SECRET_MAX).  0,
 * -ENOENT when absent, -EINVAL when malformed.
 */
int webreq_cookie(const char *header, const char *name, char *out, size_t size);

/*
 * Normalise an origin URL as --origin takes it ("https://Host:443/" ->
 * "https://host").  0 or -EINVAL (not http/https, user info, a path other
 * than "/", a bad port, too long).
 */
int webreq_origin_normalize(const char *url, char *out, size_t size);

/* ORIGIN (the header as sent) is one of the n normalised origins. */
bool webreq_origin_allowed(const char *origin, char *const *origins, size_t n);

/*
 * HOST (the Host header) names the authority of one of the n origins
 * ("host" or "host:port"; the default port may be written or not).
 */
bool webreq_host_allowed(const char *host, char *const *origins, size_t n);
