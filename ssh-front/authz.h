/* SPDX-License-Identifier: MIT */
/*
 * Asking ttyhubd whether an SSH key may log in.  ttyhub-sshd reads no
 * access file: ttyhubd does, and answers `authorize` {key, from} with the
 * key's fingerprint and comment, what its line grants (a grant string:
 * what a gateway speaks for, docs/protocol.md "Gateways") and whether the
 * line is a gateway's (the `gateway` option), or `denied`.  A broker that
 * predates gateways sends neither: no grant ("") and no gateway.  One connection serves every
 * question; it is opened at start (authz_connect(), so the first login does
 * not wait for it and ttyhubd holds it from then on), else on the first
 * question, kept, and opened again after the broker closed it (a restart) or
 * after a question went unanswered, so a late answer can never be taken for
 * the next key's.
 *
 * authz_ask() blocks, for at most AUTHZ_TIMEOUT_USEC: see session.c for
 * why that is acceptable.
 */
#pragma once

#include <stdbool.h>

#include "front.h"

#define AUTHZ_TIMEOUT_USEC (2 * 1000 * 1000)
/* Longest grant string the broker sends (ttyhub-access(5)); a longer one is refused, never cut. */
#define AUTHZ_GRANT_MAX 8192

struct authz {
	char *path;       /* owned: the broker socket */
	int fd;           /* owned */
	struct front f;   /* valid while fd >= 0 */
};

struct authz_answer {
	char fingerprint[80]; /* SHA256:... */
	char comment[128];    /* as the access file has it (not escaped) */
	char grant[AUTHZ_GRANT_MAX + 1]; /* the line's consoles= and break, as a grant ("" none) */
	bool gateway;         /* the line has the `gateway` option */
};

int authz_init(struct authz *a, const char *path);
/* A new broker path (reload): the connection is opened again on the next question. */
int authz_set_path(struct authz *a, const char *path);
void authz_done(struct authz *a);
/* Open the connection now unless it is open (blocks for at most AUTHZ_TIMEOUT_USEC). */
int authz_connect(struct authz *a);

/*
 * 1 with *ret filled: the key may log in from there; 0: the broker said no;
 * -errno: no answer in time, or none at all (logged by the caller).
 */
int authz_ask(struct authz *a, const struct front_principal *p, struct authz_answer *ret);
