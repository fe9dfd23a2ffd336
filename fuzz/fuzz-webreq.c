/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for what ttyhub-webd parses of HTTP itself
 * (web-front/webreq.h).  Byte 0 picks the parser, the rest is its input:
 *
 *   0  the token exchange body: an accepted token is 1..WEBREQ_SECRET_MAX
 *      base64url characters;
 *   1  a Cookie header (as a C string), cookie "ttyhub": the same rule for
 *      the value, which must occur in the header;
 *   2  an origin URL: a normalised origin normalises to itself, is allowed
 *      when it is the one in the list, and its authority is an allowed Host;
 *      Origin and Host checks against it never crash on any input.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz-util.h"
#include "webreq.h"

/* Checked in every build type (assert() is compiled out with NDEBUG). */
#define REQUIRE(c)                  \
	do {                        \
		if (!(c))           \
			abort();    \
	} while (0)

static void check_secret(const char *s)
{
	size_t n = strlen(s);

	REQUIRE(n >= 1 && n <= WEBREQ_SECRET_MAX);
	for (size_t i = 0; i < n; i++)
		REQUIRE(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
			      s[i]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[WEBREQ_SECRET_MAX + 1], norm[WEBREQ_ORIGIN_MAX], again[WEBREQ_ORIGIN_MAX];
	char *s;

	if (size < 1 || size > 4096)
		return 0;
	s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 3) {
	case 0:
		if (webreq_session_token((const char *)data + 1, size - 1, out, sizeof(out)) == 0)
			check_secret(out);
		break;
	case 1:
		if (webreq_cookie(s, "ttyhub", out, sizeof(out)) == 0) {
			check_secret(out);
			REQUIRE(strstr(s, out));
		}
		break;
	case 2: {
		char *const list[1] = { norm };

		(void)webreq_origin_allowed(s, list, 0);
		(void)webreq_host_allowed(s, list, 0);
		if (webreq_origin_normalize(s, norm, sizeof(norm)) == 0) {
			const char *auth = strstr(norm, "://");

			REQUIRE(webreq_origin_normalize(norm, again, sizeof(again)) == 0);
			REQUIRE(strcmp(norm, again) == 0);
			REQUIRE(webreq_origin_allowed(norm, list, 1));
			REQUIRE(auth && webreq_host_allowed(auth + 3, list, 1));
			(void)webreq_origin_allowed(s, list, 1);
			(void)webreq_host_allowed(s, list, 1);
		}
		break;
	}
	}
	free(s);
	return 0;
}
