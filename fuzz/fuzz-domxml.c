/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for domxml_parse(): the input is a libvirt domain XML
 * document as read from /etc/libvirt/qemu, /run/libvirt/qemu or
 * virDomainGetXMLDesc.
 *
 * Model: one parse per input, then the documented contract is checked on
 * whatever came back.  On success the result is internally consistent:
 * a non-empty name, at most DOMXML_MAX_DEVICES devices, each with an
 * element of "serial" or "console", a non-empty alias, strings within
 * DOMXML_MAX_STRING, a backend that matches its type attribute, a reason
 * exactly when unsupported, and an absolute path when supported.  On
 * failure the error is one of the documented codes and a message is set.
 * Violations abort().  Everything is freed on every path (LSan checks).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "domxml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libxml2 is linear, but keep the standalone replay of odd corpus files cheap. */
#define FUZZ_DOMXML_MAX_INPUT (1024 * 1024)

static void check_string(const char *s, bool may_be_null)
{
	if (!s) {
		if (!may_be_null)
			abort();
		return;
	}
	if (strlen(s) > DOMXML_MAX_STRING)
		abort();
}

static void check_dev(const struct domxml_dev *dev)
{
	check_string(dev->element, false);
	if (strcmp(dev->element, "serial") != 0 && strcmp(dev->element, "console") != 0)
		abort();
	check_string(dev->alias, false);
	if (!dev->alias[0])
		abort();
	check_string(dev->target_type, true);
	check_string(dev->type, true);
	check_string(dev->path, true);
	if (dev->port < -1)
		abort();
	/* The XML carries no chardev id; only QMP fills it in. */
	if (dev->chardev)
		abort();

	switch (dev->backend) {
	case DOMXML_BACKEND_UNIX:
		if (!dev->type || strcmp(dev->type, "unix") != 0)
			abort();
		break;
	case DOMXML_BACKEND_PTY:
		if (!dev->type || strcmp(dev->type, "pty") != 0)
			abort();
		break;
	case DOMXML_BACKEND_OTHER:
		if (dev->supported)
			abort();
		if (dev->type && (strcmp(dev->type, "unix") == 0 || strcmp(dev->type, "pty") == 0))
			abort();
		break;
	default:
		abort();
	}

	if (dev->supported) {
		if (dev->reason)
			abort();
		if (!dev->path || dev->path[0] != '/')
			abort();
	} else {
		if (!dev->reason || !dev->reason[0])
			abort();
	}
	/* An empty path is normalised to "none". */
	if (dev->path && !dev->path[0])
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct domxml *d = (struct domxml *)(uintptr_t)1; /* must stay untouched on failure */
	char *error = NULL;
	int r;

	if (size > FUZZ_DOMXML_MAX_INPUT)
		return 0;

	r = domxml_parse((const char *)data, size, &d, &error);
	if (r == 0) {
		if (error)
			abort(); /* written only on failure */
		if (!d || d == (struct domxml *)(uintptr_t)1)
			abort();
		check_string(d->name, false);
		if (!d->name[0])
			abort();
		check_string(d->uuid, true);
		if (d->uuid && !d->uuid[0])
			abort();
		if (d->n_devs > DOMXML_MAX_DEVICES)
			abort();
		if (d->n_devs > 0 && !d->devs)
			abort();
		for (size_t i = 0; i < d->n_devs; i++)
			check_dev(&d->devs[i]);
		domxml_free(d);
	} else {
		if (r != -EBADMSG && r != -E2BIG && r != -EFBIG && r != -ENOMEM)
			abort();
		if (d != (struct domxml *)(uintptr_t)1)
			abort();
		/* NULL is allowed only when even the message could not be allocated. */
		if (!error || !error[0])
			abort();
		if (size == 0 && r != -EBADMSG)
			abort();
	}
	free(error);

	/*
	 * The same document without an error pointer must give the same answer
	 * (checked for odd sizes only, to keep the fuzzer fast).
	 */
	if (size % 2 == 1 && size <= 65536) {
		struct domxml *d2 = NULL;
		int r2 = domxml_parse((const char *)data, size, &d2, NULL);

		if (r2 != r)
			abort();
		if ((r2 == 0) != (d2 != NULL))
			abort();
		domxml_free(d2);
	}
	return 0;
}
