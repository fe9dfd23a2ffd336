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
	if (p->via) {
		principal_done(p->via);
		free(p->via);
	}
	access_entry_free(p->grant);
	free(p->grant_text);
	*p = (struct principal){};
}

int principal_copy(const struct principal *src, struct principal *ret)
{
	char msg[ACCESS_MSG_MAX];
	int r;

	*ret = *src;
	ret->blob = NULL;
	ret->via = NULL;
	ret->grant = NULL;
	ret->grant_text = NULL;
	if (src->blob_len > 0) {
		ret->blob = malloc(src->blob_len);
		if (!ret->blob)
			goto nomem;
		memcpy(ret->blob, src->blob, src->blob_len);
	}
	if (!src->via)
		return 0;
	ret->via = calloc(1, sizeof(*ret->via));
	ret->grant_text = strdup(src->grant_text);
	if (!ret->via || !ret->grant_text || principal_copy(src->via, ret->via) < 0)
		goto nomem;
	/* The canonical text parses back to the same rules (access.h). */
	r = access_parse_grant(ret->grant_text, strlen(ret->grant_text), &ret->grant, msg,
			       sizeof(msg));
	if (r < 0) {
		principal_done(ret);
		return r == -ENOMEM ? r : -EINVAL;
	}
	return 0;
nomem:
	principal_done(ret);
	return -ENOMEM;
}

int principal_speak_for(struct principal *ret, const char *key, const char *from,
			const char *grant, size_t grant_len, const char *comment,
			const struct principal *gateway, char *msg, size_t msgsize)
{
	char canon[ACCESS_GRANT_MAX + 1];
	int r;

	msg[0] = '\0';
	r = principal_init(ret, key, from);
	if (r < 0)
		return r;
	if (!grant) {
		snprintf(msg, msgsize, "no grant");
		r = -EBADMSG;
		goto fail;
	}
	r = access_parse_grant(grant, grant_len, &ret->grant, msg, msgsize);
	if (r < 0) {
		r = r == -ENOMEM ? r : -EBADMSG;
		goto fail;
	}
	/* Kept canonical: it is what the logs show and what a copy parses again. */
	if (access_format_grant(ret->grant, canon, sizeof(canon)) < 0) {
		snprintf(msg, msgsize, "grant longer than %u bytes", ACCESS_GRANT_MAX);
		r = -EBADMSG;
		goto fail;
	}
	ret->grant_text = strdup(canon);
	ret->via = calloc(1, sizeof(*ret->via));
	if (!ret->grant_text || !ret->via) {
		r = -ENOMEM;
		goto fail;
	}
	r = principal_copy(gateway, ret->via);
	if (r < 0)
		goto fail;
	if (comment)
		log_escape(comment, strlen(comment), ret->asserted, sizeof(ret->asserted));
	return 0;
fail:
	principal_done(ret);
	return r;
}

static const struct policy_key *policy_find(const struct policy *p, const struct principal *pr)
{
	for (size_t i = 0; i < p->n_keys; i++) {
		const struct policy_key *k = &p->keys[i];

		/* A gateway's connection stays one or goes: only lines with the option. */
		if (k->blob_len == pr->blob_len && memcmp(k->blob, pr->blob, pr->blob_len) == 0 &&
		    strcmp(k->entry->keytype, pr->keytype) == 0 &&
		    (!pr->gateway || k->entry->gateway) &&
		    access_from_allows(k->entry, pr->have_from ? pr->from : NULL))
			return k;
	}
	return NULL;
}

/* Whether p has a line with pr's key, whatever its from= says. */
static bool policy_listed(const struct policy *p, const struct principal *pr)
{
	for (size_t i = 0; i < p->n_keys; i++) {
		const struct policy_key *k = &p->keys[i];

		if (k->blob_len == pr->blob_len && memcmp(k->blob, pr->blob, pr->blob_len) == 0 &&
		    strcmp(k->entry->keytype, pr->keytype) == 0)
			return true;
	}
	return false;
}

bool principal_is_gateway(const struct principal *pr)
{
	return !pr->via && pr->key && pr->key->entry->gateway;
}

/* policy_bind() of a principal via a gateway (policy.h). */
static int policy_bind_via(const struct policy *p, struct principal *pr)
{
	int r = policy_bind(p, pr->via);

	pr->policy = p;
	pr->listed = policy_listed(p, pr);
	pr->key = policy_find(p, pr);
	if (pr->key && pr->key->entry->comment)
		log_escape(pr->key->entry->comment, strlen(pr->key->entry->comment), pr->comment,
			   sizeof(pr->comment));
	else if (pr->key)
		snprintf(pr->comment, sizeof(pr->comment), "line %u", pr->key->entry->line);
	else
		snprintf(pr->comment, sizeof(pr->comment), "%s",
			 pr->asserted[0] ? pr->asserted : "gateway user");
	/* Cut so that the whole label fits a console's label (CONSOLE_LABEL_MAX). */
	snprintf(pr->label, sizeof(pr->label), "%.40s (ssh %s, via gateway %.32s)", pr->comment,
		 pr->fingerprint, pr->via->comment);
	if (r < 0 || !principal_is_gateway(pr->via))
		return -EPERM;
	return 0;
}

int policy_bind(const struct policy *p, struct principal *pr)
{
	const struct policy_key *k;

	if (pr->via)
		return policy_bind_via(p, pr);
	k = policy_find(p, pr);
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

/*
 * The right of a principal via a gateway on c, and in *ret_brk whether it
 * may break there: the least of the grant, the gateway's line and the user's
 * line when p lists the key (policy.h).  What was bound to p is used as is;
 * another policy is asked afresh (the outer principal decides, since a
 * closed client's principal is unbound as a whole).
 */
/*
 * The lines a speaking-for principal is held to besides its grant: the
 * gateway's (*ret_gw) and the user's own if the file lists the key
 * (*ret_user, else NULL).  false: no right at all (no gateway line, or the
 * key listed but no line admits the user's address).
 */
static bool policy_via_entries(const struct policy *p, const struct principal *pr,
			       const struct access_entry **ret_gw,
			       const struct access_entry **ret_user)
{
	bool bound = pr->policy == p;
	const struct policy_key *gw = bound ? pr->via->key : policy_find(p, pr->via);

	*ret_gw = *ret_user = NULL;
	if (!gw || !gw->entry->gateway)
		return false;
	*ret_gw = gw->entry;
	if (bound ? pr->listed : policy_listed(p, pr)) {
		const struct policy_key *k = bound ? pr->key : policy_find(p, pr);

		if (!k)
			return false; /* listed, but not from this address */
		*ret_user = k->entry;
	}
	return true;
}

static enum access_right policy_via_right(const struct policy *p, const struct principal *pr,
					  const struct access_console *c, bool *ret_brk)
{
	const struct access_entry *gw, *user;
	enum access_right right;
	bool brk;

	*ret_brk = false;
	if (!policy_via_entries(p, pr, &gw, &user))
		return ACCESS_NONE;
	right = MIN(access_check(pr->grant, c), access_check(gw, c));
	brk = pr->grant->brk && gw->brk;
	if (user) {
		right = MIN(right, access_check(user, c));
		brk = brk && user->brk;
	}
	*ret_brk = brk && right == ACCESS_RW;
	return right;
}

enum access_right policy_right(const struct policy *p, const struct principal *pr,
			       const struct access_console *c)
{
	const struct access_entry *e;
	bool brk;

	if (pr->via)
		return policy_via_right(p, pr, c, &brk);
	e = policy_entry(p, pr);
	return e ? access_check(e, c) : ACCESS_NONE;
}

bool policy_may_break(const struct policy *p, const struct principal *pr,
		      const struct access_console *c)
{
	const struct access_entry *e;
	bool brk;

	if (pr->via) {
		(void)policy_via_right(p, pr, c, &brk);
		return brk;
	}
	e = policy_entry(p, pr);
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
	const struct access_entry *e;

	if (pr->via) {
		const struct access_entry *gw, *user;

		/* As a break through a gateway: the grant, the gateway's line, the user's own. */
		return policy_via_entries(p, pr, &gw, &user) &&
		       policy_via_right(p, pr, c, &(bool){ false }) == ACCESS_RW &&
		       policy_entry_allows(pr->grant, action) && policy_entry_allows(gw, action) &&
		       (!user || policy_entry_allows(user, action));
	}
	e = policy_entry(p, pr);
	return e && policy_entry_allows(e, action) && access_check(e, c) == ACCESS_RW;
}
