/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the broker's access policy over in-memory access files:
 * OpenSSH fingerprints (checked against ssh-keygen -l -E sha256), principal
 * parsing, matching by key and from= (first matching line wins, as in
 * OpenSSH), rights per console, the break right, and rebinding to a new
 * policy as a reload does.  Principals via a gateway: the intersection of
 * grant, gateway line and the user's own line (present, absent, present but
 * not from that address), break in all three, a key without the gateway
 * option, bad grants, labels, copies, and reloads that change or remove the
 * gateway's line.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

/* Generated with ssh-keygen -t ed25519 / -t ecdsa; fingerprints from ssh-keygen -l -E sha256. */
#define K_ALICE "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII026lAKIUUQNFesagY+PcAnWL785rysusQq/BFpES9B"
#define FP_ALICE "SHA256:B45ZyzIWk6bRLi+jKvtmUet2XAxh+j6D3g13qEsZqS0"
#define K_BOB                                                                          \
	"ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBORKvIu1" \
	"HGLfDimefF/OKzI7AtpkxMr46slpVLmvwgmRNDZnDP4sihn+NihiO25afpdR9O/ALV6i0ZR/5aJQjJo="
#define FP_BOB "SHA256:4SQr2JIMYmPjp2jZpm+fyGs+eI8JVWhi3NAbmaFK+84"
#define K_GW "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBNg7fXewkoK5IwoYWN8sRt4bPR55xPhf2txQpHhoTQC"
#define FP_GW "SHA256:2N2HnIRKlTF4XaHe3qI5aJp8gnn4PWyBWyl7tnuN2MA"

static struct policy *parse(const char *text)
{
	struct policy *p = NULL;

	assert_int_equal(policy_parse(text, strlen(text), "test", &p), 0);
	assert_non_null(p);
	return p;
}

static struct access_console con(const char *vm, const char *uuid, const char *alias)
{
	return (struct access_console){ .vm = vm, .uuid = uuid, .alias = alias };
}

static void test_fingerprint(void **state)
{
	struct principal pr;

	assert_int_equal(principal_init(&pr, K_ALICE, "127.0.0.1"), 0);
	assert_string_equal(pr.fingerprint, FP_ALICE);
	assert_string_equal(pr.keytype, "ssh-ed25519");
	assert_null(pr.key);
	principal_done(&pr);
	/* A comment after the key (a whole .pub line) is ignored. */
	assert_int_equal(principal_init(&pr, K_BOB " bob@laptop", NULL), 0);
	assert_string_equal(pr.fingerprint, FP_BOB);
	assert_false(pr.have_from);
	principal_done(&pr);
}

static void test_principal_rejects(void **state)
{
	static const char *bad[] = {
		"", "ssh-ed25519", "ssh-ed25519 ", "AAAAC3NzaC1lZDI1NTE5AAAAII0",
		/* type and blob disagree */
		"ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAII026lAKIUUQNFesagY+PcAnWL785rysusQq/BFpES9B",
		/* bad base64: missing padding, stray bytes */
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII026lAKIUUQNFesagY+PcAnWL785rysusQq/BFpES9",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII026lAKIUUQNFesagY+PcAnWL785rysusQq/BFpES9!",
		/* a certificate type */
		"ssh-ed25519-cert-v01@openssh.com AAAAC3NzaC1lZDI1NTE5AAAAII026lAKIUUQNFesagY+PcA",
		"unknown-type AAAA",
	};
	struct principal pr;
	char from[POLICY_FROM_MAX + 8];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(principal_init(&pr, bad[i], "127.0.0.1"), -EINVAL);
	assert_int_equal(principal_init(&pr, NULL, NULL), -EINVAL);
	memset(from, '1', sizeof(from) - 1);
	from[sizeof(from) - 1] = '\0';
	assert_int_equal(principal_init(&pr, K_ALICE, from), -EINVAL);
}

static void test_rights(void **state)
{
	struct policy *p = parse("# a comment\n"
				 "consoles=\"web-*:rw,db01:ro\" " K_ALICE " alice@test\n"
				 "consoles=\"*:ro\",break " K_BOB "\n");
	struct principal a, b;
	struct access_console web = con("web-1", NULL, "serial0");
	struct access_console db = con("db01", NULL, "serial0");
	struct access_console other = con("mail", NULL, NULL);

	assert_int_equal(p->n_keys, 2);
	assert_string_equal(p->keys[0].fingerprint, FP_ALICE);
	assert_int_equal(principal_init(&a, K_ALICE, "192.0.2.1"), 0);
	assert_int_equal(policy_bind(p, &a), 0);
	assert_string_equal(a.comment, "alice@test");
	assert_string_equal(a.label, "alice@test (ssh " FP_ALICE ")");
	assert_int_equal(policy_right(p, &a, &web), ACCESS_RW);
	assert_int_equal(policy_right(p, &a, &db), ACCESS_RO);
	assert_int_equal(policy_right(p, &a, &other), ACCESS_NONE);
	/* No break option: no break, even with rw. */
	assert_false(policy_may_break(p, &a, &web));

	assert_int_equal(principal_init(&b, K_BOB, "192.0.2.1"), 0);
	assert_int_equal(policy_bind(p, &b), 0);
	/* No comment: the line number stands in. */
	assert_string_equal(b.comment, "line 3");
	assert_int_equal(policy_right(p, &b, &other), ACCESS_RO);
	/* The break option needs rw as well. */
	assert_false(policy_may_break(p, &b, &other));
	principal_done(&a);
	principal_done(&b);
	policy_free(p);
}

static void test_break_right(void **state)
{
	struct policy *p;
	struct principal a;
	struct access_console web = con("web-1", NULL, "serial0");

	p = parse("consoles=\"web-1:rw\",break " K_ALICE "\n");
	assert_int_equal(principal_init(&a, K_ALICE, NULL), 0);
	assert_int_equal(policy_bind(p, &a), 0);
	assert_true(policy_may_break(p, &a, &web));
	principal_done(&a);
	policy_free(p);
}

static void test_action_rights(void **state)
{
	struct policy *p;
	struct principal a, b;
	struct access_console web = con("web-1", NULL, "serial0"), db = con("db", NULL, NULL);

	p = parse("consoles=\"web-1:rw,db:ro\",sysrq,power " K_ALICE "\n"
		  "consoles=\"*:rw\",break,nmi " K_BOB "\n");
	assert_int_equal(principal_init(&a, K_ALICE, NULL), 0);
	assert_int_equal(policy_bind(p, &a), 0);
	assert_true(policy_may_action(p, &a, &web, PROTO_ACTION_SYSRQ));
	assert_true(policy_may_action(p, &a, &web, PROTO_ACTION_RESET));
	assert_true(policy_may_action(p, &a, &web, PROTO_ACTION_POWERDOWN));
	assert_false(policy_may_action(p, &a, &web, PROTO_ACTION_NMI));
	/* Every action needs rw too. */
	assert_false(policy_may_action(p, &a, &db, PROTO_ACTION_SYSRQ));
	assert_false(policy_may_action(p, &a, &db, PROTO_ACTION_RESET));
	/* An unknown action is never allowed. */
	assert_false(policy_may_action(p, &a, &web, _PROTO_ACTION_MAX));
	assert_false(policy_may_action(p, &a, &web, _PROTO_ACTION_INVALID));
	assert_false(policy_may_break(p, &a, &web));

	assert_int_equal(principal_init(&b, K_BOB, NULL), 0);
	assert_int_equal(policy_bind(p, &b), 0);
	/* break gives no action; nmi is no sysrq. */
	assert_true(policy_may_break(p, &b, &db));
	assert_true(policy_may_action(p, &b, &db, PROTO_ACTION_NMI));
	assert_false(policy_may_action(p, &b, &db, PROTO_ACTION_SYSRQ));
	assert_false(policy_may_action(p, &b, &db, PROTO_ACTION_RESET));
	principal_done(&a);
	principal_done(&b);
	policy_free(p);
}

static void test_from(void **state)
{
	/* First line whose key and from= match wins; a later line may admit other addresses. */
	struct policy *p = parse("from=\"10.0.0.*,!10.0.0.9\",consoles=\"a:rw\" " K_ALICE " one\n"
				 "from=\"192.0.2.7\",consoles=\"b:ro\" " K_ALICE " two\n");
	struct access_console ca = con("a", NULL, NULL), cb = con("b", NULL, NULL);
	struct principal pr;

	assert_int_equal(principal_init(&pr, K_ALICE, "10.0.0.5"), 0);
	assert_int_equal(policy_bind(p, &pr), 0);
	assert_string_equal(pr.comment, "one");
	assert_int_equal(policy_right(p, &pr, &ca), ACCESS_RW);
	assert_int_equal(policy_right(p, &pr, &cb), ACCESS_NONE);
	principal_done(&pr);

	assert_int_equal(principal_init(&pr, K_ALICE, "192.0.2.7"), 0);
	assert_int_equal(policy_bind(p, &pr), 0);
	assert_string_equal(pr.comment, "two");
	assert_int_equal(policy_right(p, &pr, &ca), ACCESS_NONE);
	principal_done(&pr);

	/* Excluded, unmatched, or no address at all where from= is set: not allowed. */
	static const char *const denied[] = { "10.0.0.9", "198.51.100.1", NULL };
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
		assert_int_equal(principal_init(&pr, K_ALICE, denied[i]), 0);
		assert_int_equal(policy_bind(p, &pr), -EPERM);
		assert_int_equal(policy_right(p, &pr, &ca), ACCESS_NONE);
		principal_done(&pr);
	}
	policy_free(p);
}

static void test_unknown_and_reload(void **state)
{
	struct policy *p = parse("consoles=\"web-1:rw\" " K_ALICE " alice\n"), *q;
	struct access_console web = con("web-1", NULL, NULL);
	struct principal a, b;

	assert_int_equal(principal_init(&b, K_BOB, "10.0.0.1"), 0);
	assert_int_equal(policy_bind(p, &b), -EPERM);
	assert_null(b.key);
	assert_int_equal(policy_right(p, &b, &web), ACCESS_NONE);
	assert_false(policy_may_break(p, &b, &web));

	assert_int_equal(principal_init(&a, K_ALICE, "10.0.0.1"), 0);
	assert_int_equal(policy_bind(p, &a), 0);
	/* A new file: demoted to ro; asked of the new policy before rebinding, it answers too. */
	q = parse("consoles=\"web-*:ro\" " K_ALICE " alice\n" "consoles=\"*:rw\" " K_BOB "\n");
	assert_int_equal(policy_right(q, &a, &web), ACCESS_RO);
	assert_int_equal(policy_bind(q, &a), 0);
	assert_int_equal(policy_bind(q, &b), 0);
	policy_free(p);
	assert_int_equal(policy_right(q, &a, &web), ACCESS_RO);
	assert_int_equal(policy_right(q, &b, &web), ACCESS_RW);
	/* Removed from the file: no longer bound. */
	p = parse("consoles=\"*:rw\" " K_BOB "\n");
	assert_int_equal(policy_bind(p, &a), -EPERM);
	assert_int_equal(policy_bind(p, &b), 0);
	policy_free(q);
	assert_int_equal(policy_right(p, &a, &web), ACCESS_NONE);
	principal_done(&a);
	principal_done(&b);
	policy_free(p);
}

static void test_bad_lines_and_empty(void **state)
{
	/* Bad lines are skipped (and logged); the good ones load. */
	struct policy *p = parse("command=\"x\" " K_ALICE "\n" "garbage\n" "consoles=\"*:ro\" " K_BOB "\n");
	struct principal a;

	assert_int_equal(p->n_keys, 1);
	assert_int_equal(p->file->n_errors, 2);
	assert_int_equal(principal_init(&a, K_ALICE, NULL), 0);
	assert_int_equal(policy_bind(p, &a), -EPERM);
	policy_free(p);
	assert_int_equal(policy_new_empty(&p), 0);
	assert_int_equal(policy_bind(p, &a), -EPERM);
	principal_done(&a);
	policy_free(p);
	assert_null(policy_free(NULL));
}

/* The gateway's principal as its first hello binds it. */
static void gateway_bind(const struct policy *p, struct principal *gw, int expect)
{
	assert_int_equal(principal_init(gw, K_GW, "10.9.9.9"), 0);
	assert_int_equal(policy_bind(p, gw), expect);
}

/* A user via gw, bound to p with the expected result. */
static void via(const struct policy *p, const struct principal *gw, const char *key,
		const char *from, const char *grant, const char *comment, struct principal *ret,
		int expect)
{
	char msg[ACCESS_MSG_MAX];

	assert_int_equal(principal_speak_for(ret, key, from, grant, strlen(grant), comment, gw, msg,
					     sizeof(msg)), 0);
	assert_non_null(ret->via);
	assert_int_equal(policy_bind(p, ret), expect);
}

static void test_via_gateway(void **state)
{
	struct policy *p = parse("gateway,consoles=\"web*:rw,db*:ro\",break " K_GW " gw@gateway\n"
				 "consoles=\"web01:ro,db02:rw,web03:rw\" " K_BOB " bob\n");
	struct access_console web01 = con("web01", NULL, NULL), web03 = con("web03", NULL, NULL);
	struct access_console db01 = con("db01", NULL, NULL), db02 = con("db02", NULL, NULL);
	struct access_console other = con("other", NULL, NULL);
	struct principal gw, a, b, e, copy;

	gateway_bind(p, &gw, 0);
	assert_true(principal_is_gateway(&gw));
	assert_null(gw.via);
	/* alice has no line here: the grant and the gateway's line decide. */
	via(p, &gw, K_ALICE, "192.0.2.7", "consoles=\"*:rw\",break", "alice@laptop", &a, 0);
	assert_false(principal_is_gateway(&a));
	assert_false(a.listed);
	assert_null(a.key);
	assert_string_equal(a.fingerprint, FP_ALICE);
	assert_string_equal(a.comment, "alice@laptop");
	assert_string_equal(a.label, "alice@laptop (ssh " FP_ALICE ", via gateway gw@gateway)");
	assert_string_equal(a.grant_text, "consoles=\"*:rw\",break");
	assert_int_equal(policy_right(p, &a, &web01), ACCESS_RW);
	assert_int_equal(policy_right(p, &a, &db01), ACCESS_RO);   /* the gateway's line: ro */
	assert_int_equal(policy_right(p, &a, &other), ACCESS_NONE); /* not on the gateway's line */
	assert_true(policy_may_break(p, &a, &web01));
	assert_false(policy_may_break(p, &a, &db01));
	/* bob has a line here: never more than it, and no break without its break. */
	via(p, &gw, K_BOB, "192.0.2.8", "consoles=\"*:rw\",break", "bob on the gateway", &b, 0);
	assert_true(b.listed);
	assert_non_null(b.key);
	assert_string_equal(b.comment, "bob"); /* the host's line's, not the asserted one */
	assert_int_equal(policy_right(p, &b, &web01), ACCESS_RO);
	assert_int_equal(policy_right(p, &b, &web03), ACCESS_RW);
	assert_int_equal(policy_right(p, &b, &db02), ACCESS_RO);
	assert_int_equal(policy_right(p, &b, &db01), ACCESS_NONE);
	assert_false(policy_may_break(p, &b, &web03));
	/* A copy (as a web link would take) has the same rights and owns its parts. */
	assert_int_equal(principal_copy(&b, &copy), 0);
	assert_ptr_not_equal(copy.via, b.via);
	assert_ptr_not_equal(copy.grant, b.grant);
	assert_int_equal(policy_right(p, &copy, &web03), ACCESS_RW);
	assert_int_equal(policy_right(p, &copy, &db01), ACCESS_NONE);
	principal_done(&copy);
	/* The grant narrows too: a ro grant cannot write, no break without its break. */
	via(p, &gw, K_ALICE, "192.0.2.7", "consoles=\"web01:ro,web03:rw\"", NULL, &e, 0);
	assert_string_equal(e.comment, "gateway user");
	assert_int_equal(policy_right(p, &e, &web01), ACCESS_RO);
	assert_int_equal(policy_right(p, &e, &web03), ACCESS_RW);
	assert_int_equal(policy_right(p, &e, &db01), ACCESS_NONE);
	assert_false(policy_may_break(p, &e, &web03));
	principal_done(&e);
	/* An empty grant grants nothing. */
	via(p, &gw, K_ALICE, "192.0.2.7", "", "alice", &e, 0);
	assert_int_equal(policy_right(p, &e, &web01), ACCESS_NONE);
	principal_done(&e);
	principal_done(&a);
	principal_done(&b);
	principal_done(&gw);
	policy_free(p);
}

/* Rescue actions through a gateway: the grant, the gateway's line and the user's own line. */
static void test_via_actions(void **state)
{
	struct policy *p = parse("gateway,consoles=\"web*:rw,db*:ro\",sysrq,power " K_GW " gw\n"
				 "consoles=\"*:rw\",sysrq " K_BOB " bob\n");
	struct access_console web01 = con("web01", NULL, NULL), db01 = con("db01", NULL, NULL);
	struct principal gw, a, b;

	gateway_bind(p, &gw, 0);
	via(p, &gw, K_ALICE, "192.0.2.7", "consoles=\"*:rw\",sysrq,nmi,power", "alice", &a, 0);
	assert_string_equal(a.grant_text, "consoles=\"*:rw\",sysrq,nmi,power");
	assert_true(policy_may_action(p, &a, &web01, PROTO_ACTION_SYSRQ));
	assert_true(policy_may_action(p, &a, &web01, PROTO_ACTION_RESET));
	assert_false(policy_may_action(p, &a, &web01, PROTO_ACTION_NMI)); /* not on the gateway's line */
	assert_false(policy_may_action(p, &a, &db01, PROTO_ACTION_SYSRQ)); /* ro there */
	/* bob's own line here has sysrq but not power. */
	via(p, &gw, K_BOB, "192.0.2.8", "consoles=\"*:rw\",sysrq,power", "bob", &b, 0);
	assert_true(policy_may_action(p, &b, &web01, PROTO_ACTION_SYSRQ));
	assert_false(policy_may_action(p, &b, &web01, PROTO_ACTION_POWERDOWN));
	principal_done(&b);
	/* A grant without the flag: nothing, whatever the lines say. */
	via(p, &gw, K_BOB, "192.0.2.8", "consoles=\"*:rw\"", "bob", &b, 0);
	assert_false(policy_may_action(p, &b, &web01, PROTO_ACTION_SYSRQ));
	principal_done(&b);
	principal_done(&a);
	principal_done(&gw);
	policy_free(p);
}

static void test_via_own_line_from(void **state)
{
	/* bob's own line admits only 10.*: from elsewhere through the gateway, nothing. */
	struct policy *p = parse("gateway,consoles=\"*:rw\" " K_GW " gw\n"
				 "from=\"10.*\",consoles=\"*:rw\" " K_BOB " bob\n");
	struct access_console web01 = con("web01", NULL, NULL);
	struct principal gw, b, c;

	gateway_bind(p, &gw, 0);
	via(p, &gw, K_BOB, "192.0.2.8", "consoles=\"*:rw\"", "bob", &b, 0);
	assert_true(b.listed);
	assert_null(b.key);
	assert_int_equal(policy_right(p, &b, &web01), ACCESS_NONE);
	via(p, &gw, K_BOB, "10.1.1.1", "consoles=\"*:rw\"", "bob", &c, 0);
	assert_int_equal(policy_right(p, &c, &web01), ACCESS_RW);
	assert_false(policy_may_break(p, &c, &web01)); /* no break on the gateway's line */
	principal_done(&b);
	principal_done(&c);
	principal_done(&gw);
	policy_free(p);
}

static void test_via_not_a_gateway(void **state)
{
	struct policy *p = parse("consoles=\"*:rw\" " K_GW " just a key\n"
				 "gateway,from=\"10.*\",consoles=\"*:rw\" " K_BOB " bob\n");
	struct access_console web01 = con("web01", NULL, NULL);
	struct principal gw, a, b;
	char msg[ACCESS_MSG_MAX];

	/* A key without the option binds as itself but speaks for nobody. */
	gateway_bind(p, &gw, 0);
	assert_false(principal_is_gateway(&gw));
	via(p, &gw, K_ALICE, "192.0.2.7", "consoles=\"*:rw\"", NULL, &a, -EPERM);
	assert_int_equal(policy_right(p, &a, &web01), ACCESS_NONE);
	principal_done(&a);
	/* Bad grants and keys. */
	assert_int_equal(principal_speak_for(&a, K_ALICE, "::1", "from=\"x\"", 8, NULL, &gw, msg,
					     sizeof(msg)), -EBADMSG);
	assert_string_equal(msg, "option \"from\" is not part of a grant");
	assert_int_equal(principal_speak_for(&a, K_ALICE, "::1", NULL, 0, NULL, &gw, msg,
					     sizeof(msg)), -EBADMSG);
	assert_int_equal(principal_speak_for(&a, "ssh-ed25519 AAAA", "::1", "", 0, NULL, &gw, msg,
					     sizeof(msg)), -EINVAL);
	assert_null(a.via);
	principal_done(&gw);
	/* A gateway line's from= is the gateway's own address. */
	assert_int_equal(principal_init(&b, K_BOB, "192.0.2.1"), 0);
	assert_int_equal(policy_bind(p, &b), -EPERM);
	principal_done(&b);
	policy_free(p);
}

static void test_via_reload(void **state)
{
	struct policy *p = parse("gateway,consoles=\"*:rw\" " K_GW " gw\n"), *q;
	struct access_console web01 = con("web01", NULL, NULL);
	struct principal gw, a;

	gateway_bind(p, &gw, 0);
	via(p, &gw, K_ALICE, "192.0.2.7", "consoles=\"*:rw\"", "alice", &a, 0);
	assert_int_equal(policy_right(p, &a, &web01), ACCESS_RW);
	/* The gateway's line narrows: asked of the new policy before rebinding, it answers too. */
	q = parse("gateway,consoles=\"*:ro\" " K_GW " gw\n");
	assert_int_equal(policy_right(q, &a, &web01), ACCESS_RO);
	assert_int_equal(policy_bind(q, &a), 0);
	policy_free(p);
	assert_int_equal(policy_right(q, &a, &web01), ACCESS_RO);
	/* The user gets a line of their own on the host: it narrows as well. */
	p = parse("gateway,consoles=\"*:rw\" " K_GW " gw\n" "consoles=\"db*:rw\" " K_ALICE " al\n");
	assert_int_equal(policy_bind(p, &a), 0);
	policy_free(q);
	assert_string_equal(a.comment, "al");
	assert_int_equal(policy_right(p, &a, &web01), ACCESS_NONE);
	/* The gateway option goes: the principal no longer binds, and has no right. */
	q = parse("consoles=\"*:rw\" " K_GW " gw\n" "consoles=\"*:rw\" " K_ALICE " al\n");
	{
		/* Nor does a connection admitted as the gateway (it speaks for nobody yet). */
		struct principal g2;

		gateway_bind(p, &g2, 0);
		g2.gateway = principal_is_gateway(&g2);
		assert_true(g2.gateway);
		assert_int_equal(policy_right(q, &g2, &web01), ACCESS_NONE);
		assert_int_equal(policy_bind(q, &g2), -EPERM);
		g2.gateway = false; /* the same key as a plain key's connection: its line */
		assert_int_equal(policy_bind(q, &g2), 0);
		assert_int_equal(policy_right(q, &g2, &web01), ACCESS_RW);
		principal_done(&g2);
	}
	assert_int_equal(policy_right(q, &a, &web01), ACCESS_NONE);
	assert_int_equal(policy_bind(q, &a), -EPERM);
	policy_free(p);
	assert_int_equal(policy_right(q, &a, &web01), ACCESS_NONE);
	/* The gateway's line goes altogether: the same. */
	p = parse("consoles=\"*:rw\" " K_ALICE " al\n");
	assert_int_equal(policy_bind(p, &a), -EPERM);
	policy_free(q);
	assert_int_equal(policy_right(p, &a, &web01), ACCESS_NONE);
	assert_false(policy_may_break(p, &a, &web01));
	principal_done(&a);
	principal_done(&gw);
	policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fingerprint),
		cmocka_unit_test(test_principal_rejects),
		cmocka_unit_test(test_rights),
		cmocka_unit_test(test_break_right),
		cmocka_unit_test(test_action_rights),
		cmocka_unit_test(test_from),
		cmocka_unit_test(test_unknown_and_reload),
		cmocka_unit_test(test_bad_lines_and_empty),
		cmocka_unit_test(test_via_gateway),
		cmocka_unit_test(test_via_own_line_from),
		cmocka_unit_test(test_via_actions),
		cmocka_unit_test(test_via_not_a_gateway),
		cmocka_unit_test(test_via_reload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
