/* SPDX-License-Identifier: MIT */
/*
 * Console source: libvirt (--libvirt URI).  All libvirt calls run in one
 * helper thread that owns the connection and runs libvirt's default event
 * loop; it posts what it learns (a domain's live XML, a domain gone, a
 * lifecycle event, the answer to a break) to ttyhubd's loop through a
 * queue and an eventfd.  So a slow or dead libvirtd never blocks the loop.
 *
 * Read-only connection by default: domains, XML and events need nothing
 * more.  Serial break goes through virDomainQemuMonitorCommand, which needs
 * a read-write connection and marks the domain tainted; it is available only
 * with --libvirt-qemu-monitor.  Rescue actions: sysrq like break; nmi, reset
 * and powerdown (virDomainInjectNMI, virDomainReset, virDomainShutdown) only
 * with --libvirt-power (allow_power), which opens a read-write connection too.
 */
#pragma once

#include <stdbool.h>

#include "source.h"

/* Kind "libvirt"; serial break only with allow_monitor, power actions with allow_power. */
int source_libvirt_open(const struct source_env *env, const char *uri, bool allow_monitor,
			bool allow_power, struct source **ret);
