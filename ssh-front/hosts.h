/* SPDX-License-Identifier: MIT */
/*
 * The gateway's hosts file (pure parser, no I/O), read by ttyhub-sshd
 * --gateway HOSTS_FILE: the hosts whose consoles the gateway serves, one per
 * line, each with the SSH host key it must present (pinned: no
 * trust-on-first-use, no known_hosts):
 *
 *   # NAME  ADDRESS:PORT       KEYTYPE      BASE64
 *   h1      127.0.1.1:2222     ssh-ed25519  AAAAC3NzaC1lZDI1NTE5AAAA...
 *   h2      [2001:db8::2]:2222 ssh-ed25519  AAAA...
 *   h3      host3.example:22   ecdsa-sha2-nistp256 AAAA...
 *
 * - NAME: 1..HOSTS_NAME_MAX-1 bytes of [A-Za-z0-9_.-], not starting with
 *   '.' or '-'; unique in the file (case-sensitive).  It is what users see
 *   and type ("h2/web01").
 * - ADDRESS:PORT: an IPv4 address, a bracketed IPv6 address or a DNS name,
 *   and a port 1..65535 (required).
 * - KEYTYPE BASE64: a public key as in known_hosts (ssh-ed25519,
 *   ecdsa-sha2-nistp256/384/521, ssh-rsa, rsa-sha2-256/512 are accepted
 *   types; no certificates); base64 strict, its blob starts with the type.
 * - Blank lines and #-comments are skipped.  Anything after BASE64 is an
 *   error (no comments on a line, so a typo cannot hide).  A bad line is
 *   reported with its line number and skipped; the others load.
 */
#pragma once

#include <stddef.h>

#define HOSTS_MAX_SIZE (1024u * 1024)
#define HOSTS_MAX_HOSTS 1024
#define HOSTS_NAME_MAX 64
#define HOSTS_ADDRESS_MAX 256
#define HOSTS_MSG_MAX 256

struct hosts_entry {
	unsigned line;                   /* 1-based */
	char name[HOSTS_NAME_MAX];
	char address[HOSTS_ADDRESS_MAX]; /* without brackets */
	unsigned port;
	char keytype[64];
	char *base64;                    /* owned: the pinned key's blob, base64 as in the file */
};

struct hosts_error {
	unsigned line;
	char message[HOSTS_MSG_MAX];     /* e.g. "duplicate host name \"h1\"" */
};

struct hosts_file {
	struct hosts_entry *entries;
	size_t n_entries;
	struct hosts_error *errors;      /* at most 100, then one "too many errors" */
	size_t n_errors;
};

/*
 * Parse a whole hosts file.  Returns 0 and *ret (entries and per-line
 * errors), -EFBIG past HOSTS_MAX_SIZE, -ENOMEM.
 */
int hosts_parse(const char *buf, size_t len, struct hosts_file **ret);
struct hosts_file *hosts_file_free(struct hosts_file *f);
/* The entry named name, or NULL. */
const struct hosts_entry *hosts_find(const struct hosts_file *f, const char *name);
