/* SPDX-License-Identifier: MIT */
/*
 * Who may do what: ttyhubd's view of the access file (ttyhub-access(5),
 * parsed by access.h).  Fronts only authenticate; they tell the broker which
 * SSH key a connection speaks for (a principal: the key and the client's
 * address), and every request is checked here.
 *
 * - A policy is one loaded access file.  Each usable line becomes a key with
 *   its decoded blob and its OpenSSH fingerprint ("SHA256:" + unpadded
 *   base64 of SHA-256 of the blob), computed once at load.
 * - A principal is matched to the first line whose key (type and blob) is
 *   equal and whose from= admits its address, as OpenSSH picks the first
 *   matching authorized_keys line.  No line: the key is not allowed.
 * - A principal remembers the line it matched (principal->key) in the policy
 *   it was bound to.  On reload the server binds every principal to the new
 *   policy (policy_bind()) before freeing the old one; policy_right() and
 *   policy_may_break() look the key up again if given another policy.
 * - Rights are access_check()'s: none, ro or rw per console; a serial break
 *   needs the key's `break` option and rw.
 * - A gateway (a line with the `gateway` option) may speak for a user
 *   (principal_speak_for(): the user's key and address, what the gateway
 *   grants, principal->via the gateway's own principal).  Such a principal
 *   binds when the gateway's does (and its line still has `gateway`); its
 *   right on a console is the least of the grant's, the gateway line's and,
 *   when the file has a line with the user's key, that line's (the first
 *   whose from= admits the user's address; the key listed but no line
 *   admitting it: none).  A break needs `break` in all of them and rw.  So a
 *   gateway never exceeds its line, and a user never exceeds their own.
 *
 * Nothing here knows about clients: the caller decides what a connection
 * without a principal (a local admin, a bare front) may do.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access.h"
#include "proto.h"

/* "SHA256:" + 43 base64 characters + NUL. */
#define POLICY_FINGERPRINT_MAX 51
#define POLICY_FROM_MAX 64     /* an IPv6 address in text form fits */
#define POLICY_COMMENT_MAX 96  /* escaped, cut */
#define POLICY_LABEL_MAX 160   /* "COMMENT (ssh SHA256:...)" */

struct policy_key {
	const struct access_entry *entry; /* in policy->file */
	uint8_t *blob;                    /* owned */
	size_t blob_len;
	char fingerprint[POLICY_FINGERPRINT_MAX];
};

struct policy {
	struct access_file *file; /* owned */
	struct policy_key *keys;  /* owned, one per entry of file */
	size_t n_keys;
};

struct principal {
	char keytype[64];
	uint8_t *blob;     /* owned */
	size_t blob_len;
	char from[POLICY_FROM_MAX]; /* "" if the front gave none */
	bool have_from;
	char fingerprint[POLICY_FINGERPRINT_MAX];
	/* From the access line it matched (escaped; "line N" without a comment). */
	char comment[POLICY_COMMENT_MAX];
	char label[POLICY_LABEL_MAX];
	const struct policy *policy;  /* the policy key belongs to */
	const struct policy_key *key; /* or NULL: not allowed there */
	/*
	 * Speaking via a gateway (principal_speak_for()), else all NULL/false:
	 * via is the gateway's principal and grant what it grants (both owned),
	 * grant_text its canonical text; listed: the policy has a line with this
	 * key (key then NULL means none everywhere); asserted: the comment the
	 * gateway gave (escaped, cut; "" none), used when the host has no line.
	 */
	struct principal *via;
	struct access_entry *grant;
	char *grant_text;
	bool listed;
	char asserted[POLICY_COMMENT_MAX];
	/*
	 * Admitted as a gateway (the caller sets it after the first bind): from
	 * then on it binds only to a line that still has `gateway`, so a reload
	 * that takes the option away revokes the gateway's connections.
	 */
	bool gateway;
};

/*
 * A policy from access file text (origin names it in log lines).  Bad lines
 * are logged with their line number and skipped.  Returns 0, or -EFBIG,
 * -ENOMEM.
 */
int policy_parse(const char *text, size_t len, const char *origin, struct policy **ret);
/* Read and parse the file at path: policy_parse()'s returns, or read_file_bounded()'s. */
int policy_load(const char *path, struct policy **ret);
/* A policy that allows no key (no access file). */
int policy_new_empty(struct policy **ret);
struct policy *policy_free(struct policy *p);

/* "SHA256:..." of a key blob (buf of POLICY_FINGERPRINT_MAX bytes). */
void policy_fingerprint(const uint8_t *blob, size_t len, char buf[static POLICY_FINGERPRINT_MAX]);

/*
 * Fill *ret from a key as "TYPE BASE64" (a trailing comment is ignored) and
 * the client address (NULL: none given).  Not yet bound to a policy.
 * Returns 0, -EINVAL (not a usable key, address too long) or -ENOMEM.
 */
int principal_init(struct principal *ret, const char *key, const char *from);
void principal_done(struct principal *p);
/* A deep copy of src (same key, address and binding).  0 or -ENOMEM. */
int principal_copy(const struct principal *src, struct principal *ret);

/*
 * A principal for a user a gateway speaks for: key and from as
 * principal_init(), grant the gateway's grant text (access_parse_grant();
 * NULL is malformed), comment the user's comment on the gateway (NULL:
 * none), gateway the connection's principal (copied into ret->via).  Not yet
 * bound.  Returns 0, -EINVAL (bad key or address), -EBADMSG (bad grant, the
 * reason in msg), -ENOMEM.
 */
int principal_speak_for(struct principal *ret, const char *key, const char *from,
			const char *grant, size_t grant_len, const char *comment,
			const struct principal *gateway, char *msg, size_t msgsize);
/* Whether pr, as bound to its policy, is a gateway's key (its line has `gateway`). */
bool principal_is_gateway(const struct principal *pr);

/*
 * Match pr against p and remember the line (pr->key, pr->comment,
 * pr->label).  Returns 0, or -EPERM when no line allows the key from its
 * address (pr->key is then NULL).  A principal via a gateway: -EPERM when
 * the gateway's key is not allowed or its line lacks `gateway`; the user's
 * own line is looked up but need not exist.  Its label reads
 * "COMMENT (ssh SHA256:..., via gateway GATEWAY-COMMENT)".
 */
int policy_bind(const struct policy *p, struct principal *pr);

/*
 * The principal's right on a console, named as the access file names it
 * (struct access_console: VM, UUID, alias), so the policy needs no console.
 */
enum access_right policy_right(const struct policy *p, const struct principal *pr,
			       const struct access_console *c);
/* Whether the principal may send a serial break to c: the break option and rw. */
bool policy_may_break(const struct policy *p, const struct principal *pr,
		      const struct access_console *c);
/*
 * Whether the principal may take a rescue action on c: the action's option
 * (sysrq; nmi; power for reset and powerdown) and rw.
 */
bool policy_may_action(const struct policy *p, const struct principal *pr,
		       const struct access_console *c, enum proto_action action);
