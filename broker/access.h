/* SPDX-License-Identifier: MIT */
/*
 * The access file (pure parser, no I/O), read by ttyhubd (policy.h): OpenSSH
 * authorized_keys format, one key per line, with ttyhub's options in the
 * options field:
 *
 *   consoles="web-*:rw,db01:ro",break ssh-ed25519 AAAA... alice@laptop
 *
 * - consoles="PATTERN:ro|rw,...": rw implies ro; the highest right of any
 *   matching rule wins.  A key without consoles= may log in but sees
 *   nothing.  What a pattern matches depends on its form, so that a name
 *   means one thing (access_pattern_kind()):
 *   - a full canonical UUID (8-4-4-4-12 hex digits, any case): every console
 *     of the VM with that UUID; "UUID:ALIAS" (ALIAS a shell pattern): that
 *     VM's consoles whose alias matches;
 *   - otherwise, without ':': a shell pattern (fnmatch, no flags) matched
 *     against VM names only: every console of a matching VM;
 *   - otherwise, with ':': matched against "VM:ALIAS" only.
 *   So "ca*" never grants a VM because its UUID starts with "ca", and "*0"
 *   never grants every VM's serial0.
 * - break: may send a serial break.
 * - gateway: the key is a gateway's (ttyhub-sshd --gateway on another
 *   machine): after its own hello it may speak for one user per connection
 *   (docs/protocol.md "Gateways").  Its consoles= is the most it may speak
 *   for, and break lets the users' breaks pass.
 * - sysrq, nmi, power: may send a SysRq key (a break and the key), an NMI,
 *   reset or power down the guest (rescue actions; each needs rw too).
 * - from="PATTERN,...": the client address must match one pattern (fnmatch;
 *   "!PATTERN" excludes), as in OpenSSH.
 * - OpenSSH restrictions that ttyhub enforces anyway are accepted and ignored:
 *   restrict, no-port-forwarding, no-agent-forwarding, no-X11-forwarding,
 *   no-user-rc.
 * - Any other option (command=, environment=, permitopen=, tunnel=, ...) is an
 *   error for that line: the line is skipped, so unknown semantics never
 *   grant access.
 * Options are comma-separated; values are double-quoted and may contain
 * commas, spaces and \" escapes.  Blank lines and #-comments are skipped.
 * A bad line is reported with its line number and skipped; the others load.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACCESS_MAX_SIZE (4u * 1024 * 1024)
/* Errors (and warnings) kept per file; past it one "too many" note. */
#define ACCESS_MAX_ERRORS 100
/* An error or warning message is shorter than this. */
#define ACCESS_MSG_MAX 256
#define ACCESS_MAX_LINE 16384

enum access_right {
	ACCESS_NONE = 0,
	ACCESS_RO = 1,
	ACCESS_RW = 2,
};

/* Buffer for "VM:ALIAS": longer names match no VM:ALIAS pattern. */
#define ACCESS_NAME_MAX 1024

enum access_kind {
	ACCESS_KIND_VM,         /* no ':': the VM name */
	ACCESS_KIND_VM_ALIAS,   /* with ':': "VM:ALIAS" */
	ACCESS_KIND_UUID,       /* a full UUID: the VM's UUID (any case) */
	ACCESS_KIND_UUID_ALIAS, /* "UUID:ALIAS": the UUID, and the alias (a pattern) */
};

struct access_rule {
	char *pattern;
	enum access_right right; /* ACCESS_RO or ACCESS_RW */
	enum access_kind kind;
};

struct access_entry {
	unsigned line;       /* 1-based line number */
	char *keytype;       /* e.g. "ssh-ed25519" */
	char *base64;        /* the key blob, base64 as in the file */
	char *comment;       /* or NULL */
	struct access_rule *rules;
	size_t n_rules;
	char **from;         /* from= patterns, or NULL/0 for any address */
	size_t n_from;
	bool brk;            /* "break" option */
	bool gateway;        /* "gateway" option */
	bool sysrq;          /* "sysrq" option */
	bool nmi;            /* "nmi" option */
	bool power;          /* "power" option: reset and powerdown */
};

struct access_error {
	unsigned line;
	char *message;       /* e.g. "unknown option \"command\"" */
};

struct access_file {
	struct access_entry *entries;
	size_t n_entries;
	struct access_error *errors;
	size_t n_errors;
	/* Lines that load but hold a pattern that may not mean what it seems (bounded). */
	struct access_error *warnings;
	size_t n_warnings;
};

/* The names of one console, as rules see them. */
struct access_console {
	const char *vm;    /* VM name (for a console without a VM: its name) */
	const char *uuid;  /* or NULL */
	const char *alias; /* or NULL */
};

/*
 * Parse a whole access file.  Returns 0 and *ret (which may hold both
 * entries and per-line errors), -EFBIG if len > ACCESS_MAX_SIZE, -ENOMEM.
 */
int access_parse(const char *buf, size_t len, struct access_file **ret);
struct access_file *access_file_free(struct access_file *f);

/* Whether s is a public-key type an access line may hold (certificates are not). */
bool access_is_key_type(const char *s);

/* Highest right any rule grants for the console. */
enum access_right access_check(const struct access_entry *e, const struct access_console *con);

/* What a consoles= pattern is matched against. */
enum access_kind access_pattern_kind(const char *pattern);
/*
 * Whether a pattern can still surprise (e.g. "*0" or "*serial1", which once
 * matched aliases; "c7a5fdbd-*", part of a UUID): 1 with the warning in buf
 * (printable ASCII), else 0.
 */
int access_pattern_warning(const char *pattern, char *buf, size_t size);

/* Whether the client address (text form, e.g. "127.0.0.1" or "::1") is allowed by from=. */
bool access_from_allows(const struct access_entry *e, const char *addr);

/*
 * Grants: what a gateway's ttyhubd gave a user, as the host is told it
 * (docs/protocol.md "Gateways").  The text is an access line's options field
 * restricted to consoles= and the flags break, sysrq, nmi and power, e.g.
 * `consoles="web*:rw,db01:ro",break`; "" grants nothing.  Pure, no I/O.
 */
#define ACCESS_GRANT_MAX 8192 /* bytes of grant text, without the NUL */

/*
 * Parse grant text (len bytes, no NUL inside) into a new entry that holds
 * only rules and the flags (no key, comment or from=): access_check() and
 * the flags apply to it as to a line.  Returns 0 and *ret (free with
 * access_entry_free()), -EINVAL with the reason in msg (printable ASCII,
 * ACCESS_MSG_MAX is enough), -ENOMEM.
 */
int access_parse_grant(const char *s, size_t len, struct access_entry **ret, char *msg,
		       size_t msgsize);
/*
 * The canonical grant text of an entry's consoles= and flags (a line of the
 * file or a parsed grant): `consoles="P:rw,..."` with '"' written \", then
 * `break`, `sysrq`, `nmi`, `power` (those set, in that order), joined by ','.  access_parse_grant() of it gives the same rules
 * in the same order.  Returns its length, or -ENOBUFS when it does not fit
 * in size bytes or exceeds ACCESS_GRANT_MAX (buf is then "").
 */
int access_format_grant(const struct access_entry *e, char *buf, size_t size);
/*
 * The same grant narrowed to watching: every rule `:ro`, no flags (what a
 * --ro web link's session may do, passed on by a gateway).
 */
int access_format_grant_ro(const struct access_entry *e, char *buf, size_t size);
struct access_entry *access_entry_free(struct access_entry *e);

/*
 * Decode a public key given as its key type and base64 blob (as in the file)
 * with the checks access_parse() applies to a line's key: a known key type,
 * no certificate, strict base64 (so equal blobs are equal text), a blob that
 * starts with the type.  Returns 0 with a malloc'd *ret_blob, -EINVAL, or
 * -ENOMEM.
 */
int access_key_decode(const char *keytype, const char *base64, uint8_t **ret_blob,
		      size_t *ret_len);
