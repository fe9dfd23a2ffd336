/* SPDX-License-Identifier: MIT */
/*
 * Human-readable tables of the broker's answers, shared by the fronts: the
 * console list and who is attached.  Every string from the broker is
 * escaped again before it is printed.  eol is "\n" or "\r\n".
 *
 * ttyhubd answers `list` in pieces that each fit a frame: every piece but
 * the last carries "more": true.  listing_collect() joins them.
 */
#pragma once

#include <jansson.h>
#include <stdio.h>

/*
 * Bounds on one collected list: the consoles and source errors it holds
 * together, and the pieces it comes in (each at most a frame, so a list
 * takes at most LISTING_MAX_PIECES * FRAME_MAX bytes to send, whatever the
 * sender puts in them; a 65,536-console list needs about 350 pieces).
 */
#define LISTING_MAX_CONSOLES 65536
#define LISTING_MAX_PIECES 1024

/*
 * Add one `list` piece to *acc (NULL before the first).  Returns 1 while more
 * pieces follow, 0 when *acc holds the whole list (the caller then owns it),
 * -EBADMSG for a malformed piece, -E2BIG past LISTING_MAX_CONSOLES entries
 * or LISTING_MAX_PIECES pieces, -ENOMEM.
 * On error *acc is freed and reset to NULL.
 */
int listing_collect(json_t **acc, json_t *piece);

/* The admin's table: every column, then the sources' errors. */
void listing_print_consoles(FILE *f, json_t *consoles, json_t *errors, const char *eol);
/* A front user's table: no backend, no status text, and the key's "access" column. */
void listing_print_front_consoles(FILE *f, json_t *consoles, const char *eol);
void listing_print_who(FILE *f, json_t *who, const char *eol);
/*
 * A gateway's list (ssh-front/gateway.h) also says which hosts answered:
 * "hosts": [{name, state: "up"|"unreachable", error?}], joined by
 * listing_collect().  One "HOST: unreachable (WHY)" line per host that did not.
 */
void listing_print_hosts(FILE *f, json_t *hosts, const char *eol);
