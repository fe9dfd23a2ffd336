/* SPDX-License-Identifier: MIT */
/*
 * Strict base64 (see base64.h).
 */
#include <errno.h>
#include <stdbool.h>

#include "base64.h"

int base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int base64_decode_strict(const char *s, size_t n, uint8_t *out, size_t *ret_len)
{
	size_t o = 0;

	if (n == 0 || n % 4 != 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i += 4) {
		bool last = i + 4 == n;
		int v[4];
		size_t pad = 0;

		if (last && s[i + 3] == '=')
			pad = s[i + 2] == '=' ? 2 : 1;
		for (size_t k = 0; k < 4 - pad; k++) {
			v[k] = base64_value((unsigned char)s[i + k]);
			if (v[k] < 0)
				return -EINVAL;
		}
		if (pad == 2) {
			if (v[1] & 0x0f)
				return -EINVAL;
			out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		} else if (pad == 1) {
			if (v[2] & 0x03)
				return -EINVAL;
			out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
			out[o++] = (uint8_t)((v[1] & 0x0f) << 4 | v[2] >> 2);
		} else {
			out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
			out[o++] = (uint8_t)((v[1] & 0x0f) << 4 | v[2] >> 2);
			out[o++] = (uint8_t)((v[2] & 0x03) << 6 | v[3]);
		}
	}
	*ret_len = o;
	return 0;
}
