/* SPDX-License-Identifier: MIT */
/*
 * Console source: a directory of libvirt domain XML files (--domain-xml
 * DIR).  Every *.xml is loaded at start and the directory is watched with
 * inotify: a file written or moved in is (re)loaded, a file removed or
 * moved out takes its consoles with it.  A file that does not parse is
 * reported (log + `ttyhub list`) and its previously loaded consoles stay.
 */
#pragma once

#include <systemd/sd-event.h>

struct server;
struct xmldir;

int xmldir_open(struct server *s, const char *dir, struct xmldir **ret);
struct xmldir *xmldir_free(struct xmldir *d);
/* Read the directory again (on reload): files changed while unwatched take effect. */
int xmldir_rescan(struct xmldir *d);
const char *xmldir_path(const struct xmldir *d);
