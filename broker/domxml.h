/* SPDX-License-Identifier: MIT */
/*
 * Extract the consoles of one guest from libvirt domain XML (pure: no I/O,
 * no network, no entity expansion, documents with a DTD refused, size
 * capped).  Accepts <domain> (virDomainGetXMLDesc, /etc/libvirt/qemu/NAME.xml)
 * and <domstatus><domain> (/run/libvirt/qemu/NAME.xml).
 *
 * Devices: every <serial> and <console>, in document order.  A <console>
 * whose <target type='serial'> duplicates the first <serial> (same alias, or
 * no alias and port 0) is dropped.  Supported backends: type='unix' with
 * <source mode='bind' path=...> and type='pty' (path from <source path> or
 * the console's tty= attribute; a pty without a path is not running yet).
 * Others are kept with supported=false and a reason.  The user QEMU runs as
 * comes from the DAC seclabel (dac_label, as written; see peer.h).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define DOMXML_MAX_SIZE (8u * 1024 * 1024)
#define DOMXML_MAX_DEVICES 64  /* more listed devices: -E2BIG */
#define DOMXML_MAX_STRING 4096 /* longest name, uuid, path, alias or other attribute kept */

enum domxml_backend {
	DOMXML_BACKEND_UNIX,
	DOMXML_BACKEND_PTY,
	DOMXML_BACKEND_OTHER,
};

struct domxml_dev {
	char *element;     /* "serial" or "console" */
	char *alias;       /* <alias name>, or synthesised "serialN"/"consoleN" if absent */
	char *target_type; /* isa-serial, serial, virtio, pci-serial ... or NULL */
	int port;          /* <target port>, -1 if absent or invalid */
	char *type;        /* the type attribute: unix, pty, file, tcp ..., or NULL */
	enum domxml_backend backend;
	char *path;        /* socket or pty path as written, NULL if none; use only if supported */
	bool supported;
	char *reason;      /* why not supported, NULL if supported */
	char *chardev;     /* QEMU chardev id when known (from QMP); NULL from XML */
};

struct domxml {
	char *name;        /* <name>, required */
	char *uuid;        /* <uuid> or NULL */
	char *dac_label;   /* <seclabel model='dac'><label> ("+UID:+GID", "user:group") or NULL */
	size_t n_devs;
	struct domxml_dev *devs;
};

/*
 * Returns 0 and a new *ret, or a negative errno with a human-readable,
 * specific message in *ret_error (malloc'ed; e.g. "line 3: Opening and ending
 * tag mismatch: name line 2 and domain", "document is 9437184 bytes, over the
 * 8388608 byte limit", "root element is <network>, expected <domain> or
 * <domstatus>", "no <name> element").  -EFBIG for size, -EBADMSG for
 * malformed or unexpected documents (including any DTD), -E2BIG for more than
 * DOMXML_MAX_DEVICES devices, -ENOMEM.  *ret_error is written only on failure
 * (NULL only if even the message could not be allocated); ret_error may be
 * NULL.
 */
int domxml_parse(const char *buf, size_t len, struct domxml **ret, char **ret_error);
struct domxml *domxml_free(struct domxml *d);
