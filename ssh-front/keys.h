/* SPDX-License-Identifier: MIT */
/*
 * Keys of ttyhub-sshd: the host key (loaded, or generated on first start)
 * and the keyring: the access file (access.h) with each entry's public key
 * imported into libssh for comparison with what a client offers.
 */
#pragma once

#include <libssh/libssh.h>

#include "access.h"

struct keyring {
	struct access_file *file; /* owned */
	ssh_key *keys;            /* owned; parallel to file->entries, NULL if unusable */
};

/*
 * Load the host key at path; if it does not exist, generate an ed25519 key
 * and create the file atomically with mode 0600.  Returns 0 or -errno (with
 * a one-line error logged).
 */
int hostkey_load(const char *path, ssh_key *ret);

/*
 * Load the access file.  Bad lines are logged with their line number and
 * skipped.  Returns 0 or -errno when the file cannot be read at all.
 */
int keyring_load(const char *path, struct keyring **ret);
struct keyring *keyring_free(struct keyring *k);

/* The entry whose key equals pubkey and whose from= admits addr, or NULL. */
const struct access_entry *keyring_find(const struct keyring *k, const ssh_key pubkey,
					const char *addr);

/* Same key (type and blob) in another keyring, e.g. after a reload; or NULL. */
const struct access_entry *keyring_find_entry(const struct keyring *k,
					      const struct access_entry *e);
