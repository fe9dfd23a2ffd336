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

#include "source.h"

/* Kind "qmp"; serial break through chardev-send-break; nothing to rescan. */
int source_qmp_open(const struct source_env *env, const char *qmp_path, struct source **ret);
