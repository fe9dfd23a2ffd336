/* SPDX-License-Identifier: MIT */
/*
 * Strict base64 (RFC 4648 §4, the alphabet of OpenSSH key files), pure: the
 * one decoder behind the access file and the gateway's hosts file, so a key
 * is the same key in both.  Strict means a text has one meaning: a
 * non-empty multiple of four characters, '=' padding only as the last one or
 * two characters, the unused bits of the last group zero.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The value of a base64 character, -1 for any other byte (the padding '=' included). */
int base64_value(unsigned char c);

/*
 * Decode n characters of s into out, which has room for n / 4 * 3 bytes.
 * 0 with the length in *ret_len, or -EINVAL for text that is not strict
 * base64.
 */
int base64_decode_strict(const char *s, size_t n, uint8_t *out, size_t *ret_len);
