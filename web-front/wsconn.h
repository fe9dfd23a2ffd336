/* SPDX-License-Identifier: MIT */
/*
 * One browser WebSocket: wslay on the upgraded socket (libmicrohttpd's, or
 * its TLS proxy socketpair), one broker connection through the front
 * library, and the translation between the ttyhub.v1 wire (wsproto.h) and
 * front events.
 *
 * Life: created by the upgrade with the session secret; the page's HELLO
 * opens the broker connection (hello with the session, attach or attach
 * with resume).  Output goes out as OUTPUT frames with the broker's
 * offsets; at most WSCONN_WINDOW bytes may be un-ACKed, beyond that the
 * broker socket is not read (the broker then skips this reader ahead and
 * says so in a notice: the guest and the other readers never wait).
 * HELLO within WSCONN_HELLO_USEC, then pings every ping_s; three
 * unanswered end the connection.  Closing hands
 * the socket back to libmicrohttpd (MHD_UPGRADE_ACTION_CLOSE).
 */
#pragma once

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>
#include <wslay/wslay.h>

#include "front.h"
#include "webreq.h"

#define WSCONN_WINDOW (256 * 1024)
#define WSCONN_MISSED_PINGS 3
/* The page's HELLO must come this soon after the upgrade. */
#define WSCONN_HELLO_USEC (10 * 1000000ULL)
/* After our close frame, how long unread bytes from the page are still drained (no RST). */
#define WSCONN_LINGER_USEC (2 * 1000000ULL)

/*
 * What the connections share with the daemon: the loop, the broker socket,
 * the ping interval, the list of open sockets (counted for the limits), and
 * how to make libmicrohttpd act on a socket handed back to it.
 */
TAILQ_HEAD(wsconn_list, wsconn);
struct wsconn_env {
	sd_event *event;
	const char *broker;
	unsigned ping_s;
	struct wsconn_list conns;
	unsigned n_conns;
	void (*kick)(void *userdata);
	void *kick_data;
};

struct wsconn {
	TAILQ_ENTRY(wsconn) entry;
	struct wsconn_env *env;
	struct MHD_UpgradeResponseHandle *urh;
	int fd;                         /* borrowed from libmicrohttpd */
	sd_event_source *io, *broker_io, *ping;
	wslay_event_context_ptr ctx;
	char *extra;                    /* bytes MHD read past the handshake */
	size_t extra_len, extra_off;
	struct front front;
	int broker_fd;                  /* owned; -EBADF before HELLO */
	bool front_init;
	char session[WEBREQ_SECRET_MAX + 1];
	char session_id[17];            /* SHA-256 prefix of the secret, for logs and limits */
	char addr[64];
	bool hello_seen, attached;
	bool failed;                    /* the socket broke: free without a close handshake */
	int close_code;                 /* a close to send once the messages before it went out */
	char close_reason[64];          /* copied: the text may be a broker message's */
	bool lingering;                 /* close sent, write side shut: reading to EOF */
	sd_event_source *linger;
	uint64_t sent_end, acked;
	json_t *status;                 /* STATUS so far (merged) */
	unsigned missed_pings;
};

/* The upgrade succeeded: take over sock.  0 or -errno (then the socket is closed via urh). */
int wsconn_new(struct wsconn_env *env, struct MHD_UpgradeResponseHandle *urh, int sock,
	       const char *extra, size_t extra_len, const char *session, const char *session_id,
	       const char *addr);
struct wsconn *wsconn_free(struct wsconn *w);
/* Tell the page (a NOTICE) and close with 1001, for the daemon's exit: the page resumes. */
void wsconn_shutdown(struct wsconn *w);
