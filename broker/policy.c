/* SPDX-License-Identifier: MIT */
/*
 * The broker's access policy (see policy.h).
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "log.h"
#include "policy.h"
#include "util.h"

void policy_fingerprint(const uint8_t *blob, size_t len, char buf[static POLICY_FINGERPRINT_MAX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	char b64[64];
	int n;

	if (EVP_Digest(blob, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
		snprintf(buf, POLICY_FINGERPRINT_MAX, "SHA256:?");
		return;
	}
	/* 32 bytes are 44 base64 characters with one '=' of padding, which OpenSSH leaves out. */
	n = EVP_EncodeBlock((unsigned char *)b64, md, (int)mdlen);
	while (n > 0 && b64[n - 1] == '=')
		n--;
	snprintf(buf, POLICY_FINGERPRINT_MAX, "SHA256:%.*s", n, b64);
}

struct policy *policy_free(struct policy *p)
{
	if (!p)
		return NULL;
	for (size_t i = 0; i < p->n_keys; i++)
		free(p->keys[i].blob);
	free(p->keys);
	access_file_free(p->file);
	free(p);
	return NULL;
}

int policy_new_empty(struct policy **ret)
{
	struct policy *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}

static void policy_log_notes(const char *origin, const struct access_error *notes, size_t n,
			     bool errors)
{
	for (size_t i = 0; i < n; i++) {
		char esc[300];
		const char *m = notes[i].message;

		log_escape(m, strlen(m), esc, sizeof(esc));
		if (errors)
			log_error("%s: line %u: %s; line ignored", origin, notes[i].line, esc);
		else
			log_warning("%s: line %u: %s", origin, notes[i].line, esc);
	}
}

int policy_parse(const char *text, size_t len, const char *origin, struct policy **ret)
{
	struct policy *p;
	int r;

	r = policy_new_empty(&p);
	if (r < 0)
		return r;
	r = access_parse(text, len, &p->file);
	if (r < 0) {
		policy_free(p);
		return r;
	}
	policy_log_notes(origin, p->file->errors, p->file->n_errors, true);
	policy_log_notes(origin, p->file->warnings, p->file->n_warnings, false);
	p->keys = calloc(MAX(p->file->n_entries, (size_t)1), sizeof(*p->keys));
	if (!p->keys) {
		policy_free(p);
		return -ENOMEM;
	}
	for (size_t i = 0; i < p->file->n_entries; i++) {
		const struct access_entry *e = &p->file->entries[i];
		struct policy_key *k = &p->keys[p->n_keys];

		/* access_parse() checked the key the same way: only memory can fail here. */
		r = access_key_decode(e->keytype, e->base64, &k->blob, &k->blob_len);
		if (r == -ENOMEM) {
			policy_free(p);
			return r;
		}
		if (r < 0) {
			log_error("%s: line %u: key cannot be decoded; line ignored", origin, e->line);
			continue;
		}
		k->entry = e;
		policy_fingerprint(k->blob, k->blob_len, k->fingerprint);
		p->n_keys++;
	}
	*ret = p;
	return 0;
}

int policy_load(const char *path, struct policy **ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r;

	r = read_file_bounded(path, ACCESS_MAX_SIZE, &buf, &len);
	if (r < 0)
		return r;
	return policy_parse(buf, len, path, ret);
}

int principal_init(struct principal *ret, const char *key, const char *from)
{
	char type[sizeof(ret->keytype)], *b64;
	const char *sp, *end;
	int r;

	*ret = (struct principal){};
	if (!key)
		return -EINVAL;
	/* "TYPE BASE64", perhaps followed by a comment, as in a .pub file. */
	sp = strchr(key, ' ');
	if (!sp || (size_t)(sp - key) >= sizeof(type))
		return -EINVAL;
	memcpy(type, key, (size_t)(sp - key));
	type[sp - key] = '\0';
	end = strchr(sp + 1, ' ');
	if (!end)
		end = sp + 1 + strlen(sp + 1);
	b64 = strndup(sp + 1, (size_t)(end - sp - 1));
	if (!b64)
		return -ENOMEM;
	r = access_key_decode(type, b64, &ret->blob, &ret->blob_len);
	free(b64);
	if (r < 0)
		return r;
	snprintf(ret->keytype, sizeof(ret->keytype), "%s", type);
	if (from) {
		if (strlen(from) >= sizeof(ret->from)) {
			principal_done(ret);
			return -EINVAL;
		}
		snprintf(ret->from, sizeof(ret->from), "%s", from);
		ret->have_from = true;
	}
	policy_fingerprint(ret->blob, ret->blob_len, ret->fingerprint);
	return 0;
}

void principal_done(struct principal *p)
{
	free(p->blob);
	*p = (struct principal){};
}

int principal_copy(const struct principal *src, struct principal *ret)
{
	*ret = *src;
	ret->blob = NULL;
	if (src->blob_len > 0) {
		ret->blob = malloc(src->blob_len);
		if (!ret->blob)
			return -ENOMEM;
		memcpy(ret->blob, src->blob, src->blob_len);
	}
	return 0;
}

static const struct policy_key *policy_find(const struct policy *p, const struct principal *pr)
{
	for (size_t i = 0; i < p->n_keys; i++) {
		const struct policy_key *k = &p->keys[i];

		if (k->blob_len == pr->blob_len && memcmp(k->blob, pr->blob, pr->blob_len) == 0 &&
		    strcmp(k->entry->keytype, pr->keytype) == 0 &&
		    access_from_allows(k->entry, pr->have_from ? pr->from : NULL))
			return k;
	}
	return NULL;
}

int policy_bind(const struct policy *p, struct principal *pr)
{
	const struct policy_key *k = policy_find(p, pr);

	pr->policy = p;
	pr->key = k;
	if (!k)
		return -EPERM;
	if (k->entry->comment)
		log_escape(k->entry->comment, strlen(k->entry->comment), pr->comment,
			   sizeof(pr->comment));
	else
		snprintf(pr->comment, sizeof(pr->comment), "line %u", k->entry->line);
	snprintf(pr->label, sizeof(pr->label), "%.70s (ssh %s)", pr->comment, pr->fingerprint);
	return 0;
}

static const struct access_entry *policy_entry(const struct policy *p, const struct principal *pr)
{
	const struct policy_key *k = pr->policy == p ? pr->key : policy_find(p, pr);

	return k ? k->entry : NULL;
}

enum access_right policy_right(const struct policy *p, const struct principal *pr,
			       const struct access_console *c)
{
	const struct access_entry *e = policy_entry(p, pr);

	return e ? access_check(e, c) : ACCESS_NONE;
}

bool policy_may_break(const struct policy *p, const struct principal *pr,
		      const struct access_console *c)
{
	const struct access_entry *e = policy_entry(p, pr);

	return e && e->brk && access_check(e, c) == ACCESS_RW;
}

/* The access file's option for a rescue action (an unknown action: none). */
static bool policy_entry_allows(const struct access_entry *e, enum proto_action action)
{
	switch (action) {
	case PROTO_ACTION_SYSRQ:
		return e->sysrq;
	case PROTO_ACTION_NMI:
		return e->nmi;
	case PROTO_ACTION_RESET:
	case PROTO_ACTION_POWERDOWN:
		return e->power;
	default:
		return false;
	}
}

bool policy_may_action(const struct policy *p, const struct principal *pr,
		       const struct access_console *c, enum proto_action action)
{
	const struct access_entry *e = policy_entry(p, pr);

	return e && policy_entry_allows(e, action) && access_check(e, c) == ACCESS_RW;
}
