/* SPDX-License-Identifier: MIT */
/*
 * Host key (see keys.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "util.h"

int hostkey_load(const char *path, ssh_key *ret)
{
	char tmp[PATH_MAX];
	ssh_key key = NULL;
	mode_t old;
	int r;

	if (access(path, F_OK) == 0) {
		struct stat st;

		/* As OpenSSH: a private key others may read (or replace) is no secret. */
		if (stat(path, &st) < 0)
			return log_error_errno(negative_errno(), "cannot access host key %s", path);
		if (st.st_uid != geteuid() && st.st_uid != 0)
			return log_error_errno(-EPERM, "host key %s is owned by uid %u, not by us "
					       "(uid %u) or root; refusing it", path,
					       (unsigned)st.st_uid, (unsigned)geteuid());
		if (st.st_mode & 077)
			return log_error_errno(-EPERM, "host key %s is accessible by others (mode "
					       "%04o); refusing it (chmod 600)", path,
					       (unsigned)(st.st_mode & 07777));
		if (ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &key) != SSH_OK)
			return log_error_errno(-EINVAL, "cannot load host key %s (unreadable or not "
						"a private key)", path);
		*ret = key;
		return 0;
	}
	if (errno != ENOENT)
		return log_error_errno(negative_errno(), "cannot access host key %s", path);
	if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK)
		return log_error_errno(-EIO, "cannot generate a host key");
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp)) {
		ssh_key_free(key);
		return log_error_errno(-ENAMETOOLONG, "host key path too long");
	}
	/* Written under a temporary name with mode 0600, then linked into place:
	 * link() fails if another process created the key meanwhile. */
	old = umask(0077);
	r = ssh_pki_export_privkey_file(key, NULL, NULL, NULL, tmp);
	umask(old);
	if (r != SSH_OK) {
		unlink(tmp);
		ssh_key_free(key);
		return log_error_errno(-EIO, "cannot write host key %s", tmp);
	}
	if (link(tmp, path) < 0) {
		r = negative_errno();
		unlink(tmp);
		ssh_key_free(key);
		if (r == -EEXIST)
			return hostkey_load(path, ret); /* someone else won the race */
		return log_error_errno(r, "cannot create host key %s", path);
	}
	unlink(tmp);
	log_info("generated a new ed25519 host key in %s", path);
	*ret = key;
	return 0;
}
