/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the gateway's hosts file parser (ssh-front/hosts.h).
 * The input is a whole hosts file.  After hosts_parse() the harness checks
 * what the parser promises about every result:
 *
 * - every entry's name is 1..HOSTS_NAME_MAX-1 bytes of [A-Za-z0-9_.-], not
 *   starting with '.' or '-', unique, and hosts_find() returns that entry;
 * - every address is non-empty, NUL-terminated within its field and holds
 *   no '[', ']' or whitespace; the port is 1..65535;
 * - every key type is one the header lists and the base64 is non-empty, a
 *   multiple of four characters long and occurs in the input;
 * - entry and error line numbers are within 1..(lines in the input) and
 *   strictly increasing, no line has both an entry and an error, there
 *   are at most HOSTS_MAX_HOSTS entries and 101 errors;
 * - error messages are non-empty printable ASCII (they are logged as is).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hosts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_HOSTS_MAX_INPUT (64u * 1024)
#define FUZZ_HOSTS_MAX_ERRORS 101

static const char *const fuzz_key_types[] = {
	"ssh-ed25519",	       "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
	"ssh-rsa",	       "rsa-sha2-256",	      "rsa-sha2-512",
};

static bool fuzz_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

static void fuzz_check_entry(const struct hosts_file *f, const struct hosts_entry *e,
			     const char *text)
{
	size_t n = strnlen(e->name, sizeof(e->name));
	bool known = false;
	size_t bl;

	if (n == 0 || n >= sizeof(e->name) || e->name[0] == '.' || e->name[0] == '-')
		abort();
	for (size_t i = 0; i < n; i++)
		if (!fuzz_name_char(e->name[i]))
			abort();
	if (hosts_find(f, e->name) != e)
		abort();
	n = strnlen(e->address, sizeof(e->address));
	if (n == 0 || n >= sizeof(e->address))
		abort();
	if (strpbrk(e->address, "[] \t\r\n"))
		abort();
	if (e->port < 1 || e->port > 65535)
		abort();
	for (size_t i = 0; i < sizeof(fuzz_key_types) / sizeof(fuzz_key_types[0]); i++)
		if (strnlen(e->keytype, sizeof(e->keytype)) < sizeof(e->keytype) &&
		    strcmp(e->keytype, fuzz_key_types[i]) == 0)
			known = true;
	if (!known || !e->base64)
		abort();
	bl = strlen(e->base64);
	if (bl == 0 || bl % 4 != 0 || !strstr(text, e->base64))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hosts_file *f = NULL;
	unsigned lines = 1, last = 0;
	char *text;
	size_t ie = 0, ir = 0;

	if (size > FUZZ_HOSTS_MAX_INPUT)
		return 0;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	if (hosts_parse((const char *)data, size, &f) < 0)
		return 0; /* only -ENOMEM can happen below the size limit */
	/* A NUL-terminated copy (NULs as '\n': they never belong to a field) for strstr(). */
	text = malloc(size + 1);
	if (!text)
		abort();
	for (size_t i = 0; i < size; i++)
		text[i] = data[i] ? (char)data[i] : '\n';
	text[size] = '\0';

	if (f->n_entries > HOSTS_MAX_HOSTS || f->n_errors > FUZZ_HOSTS_MAX_ERRORS)
		abort();
	/* Entries and errors merged by line: strictly increasing, never the same line twice. */
	while (ie < f->n_entries || ir < f->n_errors) {
		unsigned line;

		if (ir == f->n_errors ||
		    (ie < f->n_entries && f->entries[ie].line < f->errors[ir].line)) {
			line = f->entries[ie].line;
			fuzz_check_entry(f, &f->entries[ie], text);
			ie++;
		} else {
			const char *m = f->errors[ir].message;
			size_t n = strnlen(m, sizeof(f->errors[ir].message));

			line = f->errors[ir].line;
			if (n == 0 || n >= sizeof(f->errors[ir].message))
				abort();
			for (size_t i = 0; i < n; i++)
				if (m[i] < 0x20 || m[i] > 0x7e)
					abort();
			ir++;
		}
		if (line < 1 || line > lines || line <= last)
			abort();
		last = line;
	}
	free(text);
	if (hosts_file_free(f))
		abort();
	return 0;
}
