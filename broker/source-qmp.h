/* SPDX-License-Identifier: MIT */
/*
 * Console source: a QEMU started without libvirt, reached through its own
 * QMP socket (--qmp PATH).  query-chardev finds the chardevs that are UNIX
 * sockets in server mode (or ptys); they become consoles named after the
 * VM's -name (or the QMP socket's file name), with the chardev id as alias
 * ("charserial0" -> "serial0").  The same connection delivers serial
 * break (chardev-send-break), the run state shown on attach, and the guest
 * events (reset, shutdown, stop, resume, panic) written into the history.
 * When QEMU goes away its consoles stay (their chardev connections wait
 * for the socket) and QMP reconnects with back-off.
 */
#pragma once

#include <jansson.h>

#include "domxml.h"
#include "source.h"

/* Kind "qmp"; serial break through chardev-send-break; nothing to rescan. */
int source_qmp_open(const struct source_env *env, const char *qmp_path, struct source **ret);

/*
 * query-chardev's answer as a domain definition (pure: no I/O).  The
 * chardevs that are UNIX sockets in server mode or ptys become devices,
 * except compat_monitor and the monitor's own socket (qmp_path), at most
 * DOMXML_MAX_DEVICES; alias: the label without its "char" prefix, chardev
 * id: the label; the first whose label says "serial" comes first (the
 * primary console).  name and uuid (or NULL) are copied.  Returns 0 and a
 * new *ret (domxml_free()), or -ENOMEM.
 */
int source_qmp_chardevs_to_domain(json_t *reply, const char *qmp_path, const char *name,
				  const char *uuid, struct domxml **ret);
