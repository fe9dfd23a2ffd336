/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for what ttyhubd does with a web link's token or a web
 * session's secret as a browser sends it (broker/weblink.h): the input, cut
 * at its first NUL, is the text.
 *
 * - weblink_decode() accepts exactly the 43-character base64url texts whose
 *   last 2 bits are zero, and encoding the bytes gives the input back;
 * - redeeming it in a table holding one link (of a fixed secret) succeeds
 *   only when it is that link's text, and then exactly once;
 * - looking it up as a session finds one only for that session's text;
 * - weblink_tag_text() always gives 12 lowercase hex digits.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weblink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_WEBLINK_MAX_INPUT 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t link[WEBLINK_SECRET_SIZE] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	static const uint8_t sess[WEBLINK_SECRET_SIZE] = { 9, 10, 11, 12 };
	char text[FUZZ_WEBLINK_MAX_INPUT + 1], back[WEBLINK_TEXT_LEN + 1], known[WEBLINK_TEXT_LEN + 1];
	char tag[WEBLINK_TAG_LEN + 1];
	uint8_t secret[WEBLINK_SECRET_SIZE];
	struct weblink_grant g = { .ro = true, .console = "vm" };
	const struct weblink_entry *e;
	struct weblink *w;
	bool ok;
	int err = 0;

	if (size > FUZZ_WEBLINK_MAX_INPUT)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	ok = weblink_decode(text, secret) >= 0;
	if (ok) {
		weblink_encode(secret, back);
		if (strcmp(back, text) != 0)
			abort();
	} else if (strlen(text) == WEBLINK_TEXT_LEN &&
		   strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
			   WEBLINK_TEXT_LEN &&
		   strchr("AEIMQUYcgkosw048", text[WEBLINK_TEXT_LEN - 1]))
		abort(); /* a well-formed text refused */

	weblink_tag_text(text, tag);
	if (strlen(tag) != WEBLINK_TAG_LEN || strspn(tag, "0123456789abcdef") != WEBLINK_TAG_LEN)
		abort();

	if (weblink_new(2, 2, &w) < 0)
		return 0;
	weblink_encode(link, known);
	if (weblink_mint(w, link, &g, 0) < 0)
		abort();
	e = weblink_redeem(w, text, sess, 1, &err);
	if ((e != NULL) != (strcmp(text, known) == 0))
		abort();
	if (e) {
		if (weblink_redeem(w, text, sess, 1, &err) || err != -EPERM)
			abort(); /* single use */
		weblink_encode(sess, known);
	}
	if ((weblink_session_find(w, text, 2) != NULL) != (e && strcmp(text, known) == 0))
		abort();
	weblink_free(w);
	return 0;
}
