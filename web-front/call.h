/* SPDX-License-Identifier: MIT */
/*
 * One request to ttyhubd on a connection of its own, for the HTTP API: the
 * token exchange (`redeem`, as a front without a principal) and the console
 * list of a web session (`hello` with the session, then `list`).
 *
 * A call owns its socket and its sd-event source.  It sends hello (with the
 * session secret when given) and the request, then reads control frames:
 * the hello answer is skipped, `list` pieces are joined, and the first
 * answer of the expected type or an `error` ends the call: done() gets it
 * (a borrowed reference) or NULL when the broker could not be reached or
 * broke the protocol.  After done() returns the call frees itself; the
 * owner drops its pointer in done(), or calls call_free() to cancel.
 */
#pragma once

#include <jansson.h>
#include <systemd/sd-event.h>

struct call;

typedef void (*call_done_fn)(void *userdata, json_t *answer);

/*
 * Start REQUEST (a new reference, taken) expecting an answer of type EXPECT.
 * session NULL: hello without a principal (the front itself); from: the
 * browser's address, sent with a session.  0 with *ret
 * or -errno (done() is not called then).
 */
int call_start(sd_event *e, const char *broker, const char *session, const char *from,
	       json_t *request,
	       const char *expect, call_done_fn done, void *userdata, struct call **ret);
struct call *call_free(struct call *c);
