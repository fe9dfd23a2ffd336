/* SPDX-License-Identifier: MIT */
/*
 * The access file of ttyhub-sshd (pure parser, no I/O): OpenSSH
 * authorized_keys format, one key per line, with ttyhub's options in the
 * options field:
 *
 *   consoles="web-*:rw,db01:ro",break ssh-ed25519 AAAA... alice@laptop
 *
 * - consoles="PATTERN:ro|rw,...": shell-style patterns (fnmatch, no flags)
 *   matched against a console's names (VM:ALIAS, VM, UUID, UUID:ALIAS); rw
 *   implies ro; the highest right of any matching rule wins.  A key without
 *   consoles= may log in but sees nothing.
 * - break: may send a serial break.
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

#define ACCESS_MAX_SIZE (4u * 1024 * 1024)
#define ACCESS_MAX_LINE 16384

enum access_right {
	ACCESS_NONE = 0,
	ACCESS_RO = 1,
	ACCESS_RW = 2,
};

struct access_rule {
	char *pattern;
	enum access_right right; /* ACCESS_RO or ACCESS_RW */
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
};

/*
 * Parse a whole access file.  Returns 0 and *ret (which may hold both
 * entries and per-line errors), -EFBIG if len > ACCESS_MAX_SIZE, -ENOMEM.
 */
int access_parse(const char *buf, size_t len, struct access_file **ret);
void access_file_free(struct access_file *f);

/* Highest right any rule grants for any of the names (NULL entries skipped). */
enum access_right access_check(const struct access_entry *e, const char *const *names,
			       size_t n_names);

/* Whether the client address (text form, e.g. "127.0.0.1" or "::1") is allowed by from=. */
bool access_from_allows(const struct access_entry *e, const char *addr);
