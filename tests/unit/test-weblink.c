/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for web links and web sessions (broker/weblink.h) with a
 * clock and secrets chosen by the test: base64url encoding both ways (and
 * every malformed text refused), mint and single-use redeem, expiry of links
 * and sessions, the table bounds (a full link table drops its oldest, as
 * does one owner's share of it; a full session table refuses and keeps the
 * link), revocation by predicate,
 * and that only hashes are stored.
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
#include "weblink.h"

#define K_ALICE "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII026lAKIUUQNFesagY+PcAnWL785rysusQq/BFpES9B"
#define SEC 1000000ULL

/* A secret whose bytes are all b (distinct tests use distinct b). */
static void secret_of(uint8_t b, uint8_t secret[WEBLINK_SECRET_SIZE])
{
	memset(secret, b, WEBLINK_SECRET_SIZE);
	secret[0] ^= 0x5a;
}

static void text_of(uint8_t b, char text[WEBLINK_TEXT_LEN + 1])
{
	uint8_t s[WEBLINK_SECRET_SIZE];

	secret_of(b, s);
	weblink_encode(s, text);
}

static struct weblink_grant admin_grant(const char *console, bool ro)
{
	struct weblink_grant g = { .ro = ro };

	snprintf(g.admin, sizeof(g.admin), "root");
	snprintf(g.console, sizeof(g.console), "%s", console);
	return g;
}

static void mint(struct weblink *w, uint8_t b, const char *console, bool ro, uint64_t now)
{
	uint8_t s[WEBLINK_SECRET_SIZE];
	struct weblink_grant g = admin_grant(console, ro);

	secret_of(b, s);
	assert_int_equal(weblink_mint(w, s, &g, now), 0);
	assert_string_equal(g.console, ""); /* taken */
}

static const struct weblink_entry *redeem(struct weblink *w, uint8_t token, uint8_t session,
					  uint64_t now, int *err)
{
	char text[WEBLINK_TEXT_LEN + 1];
	uint8_t s[WEBLINK_SECRET_SIZE];

	text_of(token, text);
	secret_of(session, s);
	*err = 0;
	return weblink_redeem(w, text, s, now, err);
}

static void test_encode(void **state)
{
	uint8_t s[WEBLINK_SECRET_SIZE], back[WEBLINK_SECRET_SIZE];
	char text[WEBLINK_TEXT_LEN + 1];

	for (unsigned i = 0; i < 256; i++) {
		for (size_t j = 0; j < sizeof(s); j++)
			s[j] = (uint8_t)(i * 31 + j * 7);
		weblink_encode(s, text);
		assert_int_equal(strlen(text), WEBLINK_TEXT_LEN);
		assert_int_equal(strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					      "0123456789-_"),
				 WEBLINK_TEXT_LEN);
		assert_int_equal(weblink_decode(text, back), 0);
		assert_memory_equal(s, back, sizeof(s));
	}
	memset(s, 0xff, sizeof(s));
	weblink_encode(s, text);
	assert_string_equal(text, "__________________________________________8");
	memset(s, 0, sizeof(s));
	weblink_encode(s, text);
	assert_string_equal(text, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
}

static void test_decode_rejects(void **state)
{
	uint8_t s[WEBLINK_SECRET_SIZE];
	char text[WEBLINK_TEXT_LEN + 2];

	assert_int_equal(weblink_decode(NULL, s), -EINVAL);
	assert_int_equal(weblink_decode("", s), -EINVAL);
	/* 42 and 44 characters. */
	memset(text, 'A', sizeof(text));
	text[42] = '\0';
	assert_int_equal(weblink_decode(text, s), -EINVAL);
	text[42] = 'A';
	text[44] = '\0';
	assert_int_equal(weblink_decode(text, s), -EINVAL);
	text[43] = '\0';
	assert_int_equal(weblink_decode(text, s), 0);
	/* Standard base64's + and /, padding, blanks: not base64url. */
	for (const char *bad = "+/= .\n"; *bad; bad++) {
		text[10] = *bad;
		assert_int_equal(weblink_decode(text, s), -EINVAL);
	}
	text[10] = 'A';
	/* The last character carries 2 bits too many: they must be zero ("8" is 111100). */
	text[42] = 'B';
	assert_int_equal(weblink_decode(text, s), -EINVAL);
	text[42] = 'E';
	assert_int_equal(weblink_decode(text, s), 0);
}

static void test_tag(void **state)
{
	uint8_t s[WEBLINK_SECRET_SIZE] = { 0 }, h[WEBLINK_HASH_SIZE];
	char tag[WEBLINK_TAG_LEN + 1], tag2[WEBLINK_TAG_LEN + 1], text[WEBLINK_TEXT_LEN + 1];

	/* SHA-256 of 32 zero bytes: 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925 */
	weblink_hash(s, h);
	weblink_tag(h, tag);
	assert_string_equal(tag, "66687aadf862");
	weblink_encode(s, text);
	weblink_tag_text(text, tag2);
	assert_string_equal(tag2, tag);
	/* Anything else is hashed as text, never printed. */
	weblink_tag_text("not a token", tag2);
	assert_int_equal(strlen(tag2), WEBLINK_TAG_LEN);
	assert_null(strstr(tag2, "not"));
	weblink_tag_text(NULL, tag2);
	assert_int_equal(strlen(tag2), WEBLINK_TAG_LEN);
}

static void test_single_use(void **state)
{
	struct weblink *w;
	const struct weblink_entry *e;
	char stext[WEBLINK_TEXT_LEN + 1];
	int err;

	assert_int_equal(weblink_new(4, 4, &w), 0);
	mint(w, 1, "web01", false, 100 * SEC);
	e = redeem(w, 1, 2, 101 * SEC, &err);
	assert_non_null(e);
	assert_string_equal(e->grant.console, "web01");
	assert_string_equal(e->grant.admin, "root");
	assert_false(e->grant.ro);
	assert_int_equal(weblink_expires_in(e, 101 * SEC), WEBLINK_SESSION_TTL_DEFAULT);
	assert_int_equal(w->links.n, 0);
	assert_int_equal(w->sessions.n, 1);
	/* Used: refused like an unknown one. */
	assert_null(redeem(w, 1, 3, 101 * SEC, &err));
	assert_int_equal(err, -EPERM);
	assert_null(redeem(w, 9, 3, 101 * SEC, &err));
	assert_int_equal(err, -EPERM);
	assert_null(weblink_redeem(w, "garbage", (const uint8_t[WEBLINK_SECRET_SIZE]){ 7 },
				   101 * SEC, &err));
	assert_int_equal(err, -EPERM);
	/* The session is found by its secret's text, nothing else. */
	text_of(2, stext);
	assert_ptr_equal(weblink_session_find(w, stext, 102 * SEC), e);
	text_of(1, stext);
	assert_null(weblink_session_find(w, stext, 102 * SEC));
	assert_null(weblink_session_find(w, "", 102 * SEC));
	assert_null(weblink_session_find(w, NULL, 102 * SEC));
	/* The same secret twice is refused at mint. */
	mint(w, 4, "web01", true, 103 * SEC);
	{
		uint8_t s[WEBLINK_SECRET_SIZE];
		struct weblink_grant g = admin_grant("web01", true);

		secret_of(4, s);
		assert_int_equal(weblink_mint(w, s, &g, 103 * SEC), -EEXIST);
		weblink_grant_done(&g);
	}
	weblink_free(w);
}

static void test_expiry(void **state)
{
	struct weblink *w;
	const struct weblink_entry *e;
	char stext[WEBLINK_TEXT_LEN + 1];
	int err;

	assert_int_equal(weblink_new(8, 8, &w), 0);
	weblink_set_ttl(w, 60 * SEC, 3600 * SEC);
	mint(w, 1, "a", false, 0);
	mint(w, 2, "b", true, 0);
	/* Just before the end it works; at the end it does not. */
	e = redeem(w, 1, 11, 60 * SEC - 1, &err);
	assert_non_null(e);
	assert_null(redeem(w, 2, 12, 60 * SEC, &err));
	assert_int_equal(err, -EPERM);
	assert_int_equal(w->links.n, 0); /* swept */
	text_of(11, stext);
	assert_non_null(weblink_session_find(w, stext, 60 * SEC + 3600 * SEC - 2));
	assert_int_equal(weblink_expires_in(weblink_session_find(w, stext, 3600 * SEC), 3600 * SEC),
			 60);
	assert_null(weblink_session_find(w, stext, 60 * SEC + 3600 * SEC));
	assert_int_equal(weblink_sweep(w, 60 * SEC + 3600 * SEC), 1);
	assert_int_equal(w->sessions.n, 0);
	weblink_free(w);
}

static void test_bounds(void **state)
{
	struct weblink *w;
	int err;

	assert_int_equal(weblink_new(0, 1, &w), -EINVAL);
	assert_int_equal(weblink_new(3, 2, &w), 0);
	weblink_set_ttl(w, 1000 * SEC, 10 * SEC);
	/* A full link table drops its oldest (expired ones first). */
	mint(w, 1, "a", false, 1 * SEC);
	mint(w, 2, "b", false, 2 * SEC);
	mint(w, 3, "c", false, 3 * SEC);
	mint(w, 4, "d", false, 4 * SEC);
	assert_int_equal(w->links.n, 3);
	assert_null(redeem(w, 1, 21, 5 * SEC, &err));
	assert_int_equal(err, -EPERM);
	assert_non_null(redeem(w, 2, 22, 5 * SEC, &err));
	assert_non_null(redeem(w, 3, 23, 5 * SEC, &err));
	/* A full session table refuses and keeps the link for later. */
	assert_null(redeem(w, 4, 24, 5 * SEC, &err));
	assert_int_equal(err, -ENOSPC);
	assert_int_equal(w->links.n, 1);
	/* Once sessions expire there is room again. */
	assert_non_null(redeem(w, 4, 24, 15 * SEC, &err));
	weblink_free(w);
}

/* One owner's links push out only its own oldest; another owner's stay. */
static void test_per_owner(void **state)
{
	struct weblink *w;
	struct weblink_grant g;
	uint8_t s[WEBLINK_SECRET_SIZE];
	int err;

	assert_int_equal(weblink_new(64, 64, &w), 0);
	g = admin_grant("a", false);
	snprintf(g.admin, sizeof(g.admin), "other");
	secret_of(200, s);
	assert_int_equal(weblink_mint(w, s, &g, 0), 0);
	for (unsigned i = 0; i < WEBLINK_LINKS_PER_OWNER + 2; i++)
		mint(w, (uint8_t)(i + 1), "a", false, (i + 1) * SEC);
	assert_int_equal(w->links.n, WEBLINK_LINKS_PER_OWNER + 1);
	assert_null(redeem(w, 1, 100, 30 * SEC, &err));
	assert_null(redeem(w, 2, 100, 30 * SEC, &err));
	assert_non_null(redeem(w, 3, 101, 30 * SEC, &err));
	assert_non_null(redeem(w, 200, 102, 30 * SEC, &err));
	weblink_free(w);
}

static void test_session_secret_collision(void **state)
{
	struct weblink *w;
	int err;

	assert_int_equal(weblink_new(4, 4, &w), 0);
	mint(w, 1, "a", false, 0);
	mint(w, 2, "a", false, 0);
	assert_non_null(redeem(w, 1, 30, SEC, &err));
	/* A repeated session secret (a broken random source) is refused; the link stays. */
	assert_null(redeem(w, 2, 30, SEC, &err));
	assert_int_equal(err, -EEXIST);
	assert_non_null(redeem(w, 2, 31, SEC, &err));
	weblink_free(w);
}

static bool gone_console_b(void *userdata, struct weblink_entry *e, bool is_session)
{
	unsigned *calls = userdata;

	(*calls)++;
	return strcmp(e->grant.console, "b") == 0;
}

static void test_revoke(void **state)
{
	struct weblink *w;
	unsigned calls = 0;
	char stext[WEBLINK_TEXT_LEN + 1];
	int err;

	assert_int_equal(weblink_new(8, 8, &w), 0);
	mint(w, 1, "a", false, 0);
	mint(w, 2, "b", false, 0);
	mint(w, 3, "b", false, 0);
	mint(w, 4, "a", false, 0);
	assert_non_null(redeem(w, 3, 13, SEC, &err));
	assert_non_null(redeem(w, 4, 14, SEC, &err));
	assert_int_equal(weblink_revoke(w, gone_console_b, &calls), 2);
	assert_int_equal(calls, 4);
	assert_null(redeem(w, 2, 12, SEC, &err));
	text_of(13, stext);
	assert_null(weblink_session_find(w, stext, SEC));
	text_of(14, stext);
	assert_non_null(weblink_session_find(w, stext, SEC));
	assert_non_null(redeem(w, 1, 11, SEC, &err));
	weblink_free(w);
}

/* What is kept is the SHA-256 of each secret, never the secret or its text. */
static void test_hash_only(void **state)
{
	struct weblink *w;
	const struct weblink_entry *e;
	uint8_t token[WEBLINK_SECRET_SIZE], session[WEBLINK_SECRET_SIZE], h[WEBLINK_HASH_SIZE];
	char ttext[WEBLINK_TEXT_LEN + 1], stext[WEBLINK_TEXT_LEN + 1];
	int err;

	assert_int_equal(weblink_new(4, 4, &w), 0);
	mint(w, 5, "a", false, 0);
	secret_of(5, token);
	weblink_encode(token, ttext);
	weblink_hash(token, h);
	assert_memory_equal(w->links.v[0].hash, h, sizeof(h));
	assert_null(memmem(w->links.v, w->links.max * sizeof(*w->links.v), token, sizeof(token)));
	assert_null(memmem(w->links.v, w->links.max * sizeof(*w->links.v), ttext, strlen(ttext)));
	e = redeem(w, 5, 6, SEC, &err);
	assert_non_null(e);
	secret_of(6, session);
	weblink_encode(session, stext);
	weblink_hash(session, h);
	assert_memory_equal(e->hash, h, sizeof(h));
	assert_null(memmem(w->sessions.v, w->sessions.max * sizeof(*w->sessions.v), session,
			   sizeof(session)));
	assert_null(memmem(w->sessions.v, w->sessions.max * sizeof(*w->sessions.v), stext,
			   strlen(stext)));
	weblink_free(w);
}

/* A key's grant owns a copy of the principal; freeing the tables frees it (valgrind checks). */
static void test_principal_grant(void **state)
{
	struct weblink *w;
	struct principal pr;
	struct weblink_grant g = {};
	const struct weblink_entry *e;
	uint8_t s[WEBLINK_SECRET_SIZE];
	int err;

	assert_int_equal(principal_init(&pr, K_ALICE, "127.0.0.1"), 0);
	assert_int_equal(weblink_new(4, 4, &w), 0);
	g.principal = calloc(1, sizeof(*g.principal));
	assert_non_null(g.principal);
	assert_int_equal(principal_copy(&pr, g.principal), 0);
	principal_done(&pr);
	g.ro = true;
	snprintf(g.console, sizeof(g.console), "web01");
	secret_of(8, s);
	assert_int_equal(weblink_mint(w, s, &g, 0), 0);
	assert_null(g.principal);
	mint(w, 9, "web01", false, 0);
	e = redeem(w, 8, 18, SEC, &err);
	assert_non_null(e);
	assert_non_null(e->grant.principal);
	assert_true(e->grant.ro);
	assert_string_equal(e->grant.principal->keytype, "ssh-ed25519");
	assert_string_equal(e->grant.principal->from, "127.0.0.1");
	weblink_free(w); /* with one link and one session left */
}

static void test_random(void **state)
{
	uint8_t a[WEBLINK_SECRET_SIZE], b[WEBLINK_SECRET_SIZE];

	assert_int_equal(weblink_random(a), 0);
	assert_int_equal(weblink_random(b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_decode_rejects),
		cmocka_unit_test(test_tag),
		cmocka_unit_test(test_single_use),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_per_owner),
		cmocka_unit_test(test_session_secret_collision),
		cmocka_unit_test(test_revoke),
		cmocka_unit_test(test_hash_only),
		cmocka_unit_test(test_principal_grant),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
