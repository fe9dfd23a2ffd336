/* SPDX-License-Identifier: MIT */
/*
 * Console source: a directory of libvirt domain XML files (--domain-xml
 * DIR).  Every *.xml is loaded at start and the directory is watched with
 * inotify: a file written or moved in is (re)loaded, a file removed or
 * moved out takes its consoles with it.  A file that does not parse is
 * reported (log + `ttyhub list`) and its previously loaded consoles stay.
 */
#pragma once

#include "source.h"

/* Kind "xmldir"; its rescan reads the directory again (files changed while unwatched). */
int source_xmldir_open(const struct source_env *env, const char *dir, struct source **ret);
