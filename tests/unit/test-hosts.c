/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the gateway's hosts file parser (ssh-front/hosts.h): every
 * accepted form with what it yields, a table of rejected lines (each one
 * error naming its line, the others still load), duplicates, the error cap,
 * the size limit and lookups.
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

#include "hosts.h"

#define ED "AAAAC3NzaC1lZDI1NTE5AAAAIOxg2fIztzugtTtyr9R0/PXN7oazLKF6IIZ9L5Z1s90n"
#define EC                                                                              \
	"AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBMRW3Va02LPO538zm6RtetAbgMnITr" \
	"DFAA3xykZtmCoykzGrx6xh2Z8HXLTeg0JVfd+h3AZcJt/2U4wBOfhpvbs="
#define RSA                                                                             \
	"AAAAB3NzaC1yc2EAAAADAQABAAAAgQDO3HZeMEUwVydr6lt1aGTLc1LhvnXiV43Ku5Oh8zKUocga/wjxsH" \
	"VPUzHuiPcJPKVIFRXiklzxy9qRh52/ZfoUnDVx7eH+zo237Qq4fpnwpa1lrx9/YGP7CFUSv6dr8GW8Ct6D" \
	"PpR5JNmxxlYVGC75dlRv5gl/hbjY2O7ja+DMtQ=="
/* The blob of "ssh-ed25519" alone: the type and nothing after it. */
#define ED_TRUNCATED "AAAAC3NzaC1lZDI1NTE5"

static struct hosts_file *parse(const char *text)
{
	struct hosts_file *f = NULL;

	assert_int_equal(hosts_parse(text, strlen(text), &f), 0);
	assert_non_null(f);
	return f;
}

static void test_accepted(void **state)
{
	struct hosts_file *f = parse("# NAME ADDRESS:PORT KEYTYPE BASE64\n"
				     "\n"
				     "h1 127.0.1.1:2222 ssh-ed25519 " ED "\n"
				     "   \t\n"
				     "  # indented comment\n"
				     "h2\t[2001:db8::2]:22\tecdsa-sha2-nistp256\t" EC "\r\n"
				     "host3.example host3.example.:65535 ssh-rsa " RSA "\n"
				     "_r rsa.example.org:1 rsa-sha2-512 " RSA);
	const struct hosts_entry *e;

	assert_int_equal(f->n_errors, 0);
	assert_int_equal(f->n_entries, 4);
	e = &f->entries[0];
	assert_int_equal(e->line, 3);
	assert_string_equal(e->name, "h1");
	assert_string_equal(e->address, "127.0.1.1");
	assert_int_equal(e->port, 2222);
	assert_string_equal(e->keytype, "ssh-ed25519");
	assert_string_equal(e->base64, ED);
	e = &f->entries[1];
	assert_int_equal(e->line, 6);
	assert_string_equal(e->name, "h2");
	assert_string_equal(e->address, "2001:db8::2");
	assert_int_equal(e->port, 22);
	assert_string_equal(e->base64, EC);
	e = &f->entries[2];
	assert_string_equal(e->name, "host3.example");
	assert_string_equal(e->address, "host3.example.");
	assert_int_equal(e->port, 65535);
	e = &f->entries[3];
	assert_int_equal(e->line, 8);
	assert_string_equal(e->keytype, "rsa-sha2-512");
	assert_int_equal(e->port, 1);

	assert_ptr_equal(hosts_find(f, "h2"), &f->entries[1]);
	assert_null(hosts_find(f, "H2"));
	assert_null(hosts_find(f, "h"));
	assert_null(hosts_find(NULL, "h1"));
	assert_null(hosts_file_free(f));
	assert_null(hosts_file_free(NULL));
}

struct bad_case {
	const char *line;
	const char *message; /* a part of the error */
};

static const struct bad_case bad_cases[] = {
	{ "h1", "expected NAME" },
	{ "h1 127.0.0.1:22 ssh-ed25519", "expected NAME" },
	{ "h1 127.0.0.1:22 ssh-ed25519 " ED " comment", "unexpected text after the key" },
	{ "h1 127.0.0.1:22 ssh-ed25519 " ED " #comment", "unexpected text after the key" },
	{ "h/1 127.0.0.1:22 ssh-ed25519 " ED, "invalid host name" },
	{ "h\xc3\xa9 127.0.0.1:22 ssh-ed25519 " ED, "invalid host name" },
	{ ".h 127.0.0.1:22 ssh-ed25519 " ED, "may not start" },
	{ "-h 127.0.0.1:22 ssh-ed25519 " ED, "may not start" },
	{ "h0123456789012345678901234567890123456789012345678901234567890123 127.0.0.1:22 "
	  "ssh-ed25519 " ED,
	  "host name too long" },
	{ "h1 127.0.0.1 ssh-ed25519 " ED, "missing port" },
	{ "h1 127.0.0.1: ssh-ed25519 " ED, "missing port" },
	{ "h1 :22 ssh-ed25519 " ED, "missing address" },
	{ "h1 127.0.0.1:0 ssh-ed25519 " ED, "invalid port" },
	{ "h1 127.0.0.1:022 ssh-ed25519 " ED, "invalid port" },
	{ "h1 127.0.0.1:65536 ssh-ed25519 " ED, "invalid port" },
	{ "h1 127.0.0.1:222222 ssh-ed25519 " ED, "invalid port" },
	{ "h1 127.0.0.1:+22 ssh-ed25519 " ED, "invalid port" },
	{ "h1 127.0.0.1:2x ssh-ed25519 " ED, "invalid port" },
	{ "h1 127.0.0.256:22 ssh-ed25519 " ED, "invalid IPv4" },
	{ "h1 1.2.3:22 ssh-ed25519 " ED, "invalid IPv4" },
	{ "h1 2001:db8::1:22 ssh-ed25519 " ED, "needs brackets" },
	{ "h1 [2001:db8::1]22 ssh-ed25519 " ED, "missing port" },
	{ "h1 [2001:db8::1] ssh-ed25519 " ED, "missing port" },
	{ "h1 [2001:db8::1:22 ssh-ed25519 " ED, "missing ']'" },
	{ "h1 [1.2.3.4]:22 ssh-ed25519 " ED, "invalid IPv6" },
	{ "h1 []:22 ssh-ed25519 " ED, "invalid IPv6" },
	{ "h1 -bad.example:22 ssh-ed25519 " ED, "invalid host address" },
	{ "h1 bad-.example:22 ssh-ed25519 " ED, "invalid host address" },
	{ "h1 a..b:22 ssh-ed25519 " ED, "invalid host address" },
	{ "h1 a_b:22 ssh-ed25519 " ED, "invalid host address" },
	{ "h1 127.0.0.1:22 ssh-dss " ED, "unknown key type" },
	{ "h1 127.0.0.1:22 SSH-ED25519 " ED, "unknown key type" },
	{ "h1 127.0.0.1:22 ssh-ed25519-cert-v01@openssh.com " ED, "certificates" },
	{ "h1 127.0.0.1:22 ssh-rsa " ED, "key type mismatch" },
	{ "h1 127.0.0.1:22 rsa-sha2-256 " ED, "key type mismatch" },
	{ "h1 127.0.0.1:22 ssh-ed25519 " RSA, "key type mismatch" },
	{ "h1 127.0.0.1:22 ssh-ed25519 " ED_TRUNCATED, "truncated key" },
	{ "h1 127.0.0.1:22 ssh-ed25519 AAAA", "key type mismatch" },
	{ "h1 127.0.0.1:22 ssh-ed25519 " ED "=", "invalid base64" },
	{ "h1 127.0.0.1:22 ssh-ed25519 " ED "AAA", "invalid base64" },
	{ "h1 127.0.0.1:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOxg2fIztzugtTtyr9R0/PXN7oazLKF6IIZ9"
	  "L5Z1s9!n",
	  "invalid base64" },
	/* Nonzero unused bits in the last group. */
	{ "h1 127.0.0.1:22 ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAAB"
	  "BBMRW3Va02LPO538zm6RtetAbgMnITrDFAA3xykZtmCoykzGrx6xh2Z8HXLTeg0JVfd+h3AZcJt/2U4wBOfhpvbt=",
	  "invalid base64" },
};

static void test_rejected(void **state)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		char text[1024];
		struct hosts_file *f;

		/* A good line after the bad one still loads. */
		snprintf(text, sizeof(text), "# c\n%s\nok 10.0.0.1:22 ssh-ed25519 " ED "\n",
			 bad_cases[i].line);
		f = parse(text);
		if (f->n_errors != 1 || !strstr(f->errors[0].message, bad_cases[i].message))
			fail_msg("line \"%s\": %zu errors, first \"%s\", wanted \"%s\"",
				 bad_cases[i].line, f->n_errors,
				 f->n_errors ? f->errors[0].message : "",
				 bad_cases[i].message);
		assert_int_equal(f->errors[0].line, 2);
		assert_int_equal(f->n_entries, 1);
		assert_string_equal(f->entries[0].name, "ok");
		assert_int_equal(f->entries[0].line, 3);
		hosts_file_free(f);
	}
}

static void test_nul_byte(void **state)
{
	static const char text[] = "h1 127.0.0.1:22 ssh-ed25519 " ED "\0\nh2 127.0.0.1:23 "
				   "ssh-ed25519 " ED "\n";
	struct hosts_file *f = NULL;

	assert_int_equal(hosts_parse(text, sizeof(text) - 1, &f), 0);
	assert_int_equal(f->n_errors, 1);
	assert_int_equal(f->errors[0].line, 1);
	assert_string_equal(f->errors[0].message, "NUL byte in line");
	assert_int_equal(f->n_entries, 1);
	assert_string_equal(f->entries[0].name, "h2");
	hosts_file_free(f);
}

static void test_duplicate(void **state)
{
	struct hosts_file *f = parse("h1 127.0.0.1:22 ssh-ed25519 " ED "\n"
				     "h1 127.0.0.2:22 ssh-ed25519 " ED "\n"
				     "H1 127.0.0.3:22 ssh-ed25519 " ED "\n");

	assert_int_equal(f->n_entries, 2);
	assert_string_equal(f->entries[0].address, "127.0.0.1");
	assert_string_equal(f->entries[1].name, "H1");
	assert_int_equal(f->n_errors, 1);
	assert_int_equal(f->errors[0].line, 2);
	assert_string_equal(f->errors[0].message, "duplicate host name \"h1\"");
	hosts_file_free(f);
}

static void test_error_cap(void **state)
{
	size_t n = 300, len = 0;
	char *text = malloc(n * 4 + 64);
	struct hosts_file *f;

	assert_non_null(text);
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(text + len, "%s\n", "x");
	len += (size_t)sprintf(text + len, "ok 10.0.0.1:22 ssh-ed25519 " ED "\n");
	assert_int_equal(hosts_parse(text, len, &f), 0);
	assert_int_equal(f->n_errors, 101);
	assert_int_equal(f->errors[99].line, 100);
	assert_int_equal(f->errors[100].line, 101);
	assert_non_null(strstr(f->errors[100].message, "too many errors"));
	assert_int_equal(f->n_entries, 1);
	assert_int_equal(f->entries[0].line, n + 1);
	hosts_file_free(f);
	free(text);
}

static void test_many_hosts(void **state)
{
	size_t n = HOSTS_MAX_HOSTS + 2, len = 0;
	char *text = malloc(n * 128);
	struct hosts_file *f;

	assert_non_null(text);
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(text + len, "h%zu 10.0.%zu.%zu:22 ssh-ed25519 " ED "\n", i,
				       i / 256, i % 256);
	assert_int_equal(hosts_parse(text, len, &f), 0);
	assert_int_equal(f->n_entries, HOSTS_MAX_HOSTS);
	assert_int_equal(f->n_errors, 2);
	assert_non_null(strstr(f->errors[0].message, "too many hosts"));
	assert_int_equal(f->errors[1].line, n);
	assert_non_null(hosts_find(f, "h1023"));
	assert_null(hosts_find(f, "h1024"));
	hosts_file_free(f);
	free(text);
}

static void test_limits(void **state)
{
	char *big = calloc(1, HOSTS_MAX_SIZE + 1);
	struct hosts_file *f = NULL;

	assert_non_null(big);
	memset(big, '\n', HOSTS_MAX_SIZE + 1);
	assert_int_equal(hosts_parse(big, HOSTS_MAX_SIZE + 1, &f), -EFBIG);
	assert_null(f);
	assert_int_equal(hosts_parse(big, HOSTS_MAX_SIZE, &f), 0);
	assert_int_equal(f->n_entries, 0);
	assert_int_equal(f->n_errors, 0);
	hosts_file_free(f);
	free(big);

	f = parse("");
	assert_int_equal(f->n_entries, 0);
	hosts_file_free(f);
	/* The longest name, and no newline at the end. */
	f = parse("h12345678901234567890123456789012345678901234567890123456789012 "
		  "127.0.0.1:22 ssh-ed25519 " ED);
	assert_int_equal(f->n_entries, 1);
	assert_int_equal(strlen(f->entries[0].name), HOSTS_NAME_MAX - 1);
	hosts_file_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),  cmocka_unit_test(test_rejected),
		cmocka_unit_test(test_nul_byte),  cmocka_unit_test(test_duplicate),
		cmocka_unit_test(test_error_cap), cmocka_unit_test(test_many_hosts),
		cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
