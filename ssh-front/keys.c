/* SPDX-License-Identifier: MIT */
/*
 * Host key and access keyring (see keys.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
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

int keyring_load(const char *path, struct keyring **ret)
{
	_cleanup_free_ char *buf = NULL;
	struct keyring *k;
	size_t len;
	int r;

	r = read_file_bounded(path, ACCESS_MAX_SIZE, &buf, &len);
	if (r < 0)
		return log_error_errno(r, "cannot read access file %s%s", path,
				       r == -EFBIG ? " (too large)" : r == -EBADF ? " (not a file)"
				       : r == -ELOOP ? " (a symbolic link)" : "");
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	r = access_parse(buf, len, &k->file);
	if (r < 0) {
		free(k);
		return log_error_errno(r, "cannot parse access file %s", path);
	}
	for (size_t i = 0; i < k->file->n_errors; i++) {
		char esc[300];
		const char *m = k->file->errors[i].message;

		log_error("%s: line %u: %s; line ignored", path, k->file->errors[i].line,
			  log_escape(m, strlen(m), esc, sizeof(esc)));
	}
	for (size_t i = 0; i < k->file->n_warnings; i++) {
		char esc[300];
		const char *m = k->file->warnings[i].message;

		log_warning("%s: line %u: %s", path, k->file->warnings[i].line,
			    log_escape(m, strlen(m), esc, sizeof(esc)));
	}
	k->keys = calloc(k->file->n_entries ? k->file->n_entries : 1, sizeof(ssh_key));
	if (!k->keys) {
		keyring_free(k);
		return -ENOMEM;
	}
	for (size_t i = 0; i < k->file->n_entries; i++) {
		const struct access_entry *e = &k->file->entries[i];
		enum ssh_keytypes_e type = ssh_key_type_from_name(e->keytype);

		if (type == SSH_KEYTYPE_UNKNOWN ||
		    ssh_pki_import_pubkey_base64(e->base64, type, &k->keys[i]) != SSH_OK) {
			log_error("%s: line %u: key not usable by this libssh (%s); line ignored",
				  path, e->line, e->keytype);
			k->keys[i] = NULL;
		}
	}
	log_info("access file %s: %zu keys, %zu bad lines", path, k->file->n_entries,
		 k->file->n_errors);
	*ret = k;
	return 0;
}

struct keyring *keyring_free(struct keyring *k)
{
	if (!k)
		return NULL;
	for (size_t i = 0; k->file && i < k->file->n_entries; i++)
		ssh_key_free(k->keys ? k->keys[i] : NULL);
	free(k->keys);
	access_file_free(k->file);
	free(k);
	return NULL;
}

const struct access_entry *keyring_find(const struct keyring *k, const ssh_key pubkey,
					const char *addr)
{
	if (!k)
		return NULL;
	for (size_t i = 0; i < k->file->n_entries; i++)
		if (k->keys[i] && ssh_key_cmp(k->keys[i], pubkey, SSH_KEY_CMP_PUBLIC) == 0 &&
		    access_from_allows(&k->file->entries[i], addr))
			return &k->file->entries[i];
	return NULL;
}

const struct access_entry *keyring_find_entry(const struct keyring *k,
					      const struct access_entry *e)
{
	if (!k)
		return NULL;
	for (size_t i = 0; i < k->file->n_entries; i++)
		if (k->keys[i] && strcmp(k->file->entries[i].keytype, e->keytype) == 0 &&
		    strcmp(k->file->entries[i].base64, e->base64) == 0)
			return &k->file->entries[i];
	return NULL;
}
