/* SPDX-License-Identifier: MIT */
/*
 * The host key of ttyhub-sshd: loaded, or generated on first start.  (Client
 * keys are ttyhubd's to judge: authz.h.)
 */
#pragma once

#include <libssh/libssh.h>

/*
 * Load the host key at path; if it does not exist, generate an ed25519 key
 * and create the file atomically with mode 0600.  Returns 0 or -errno (with
 * a one-line error logged).
 */
int hostkey_load(const char *path, ssh_key *ret);
