/* SPDX-License-Identifier: MIT */
/*
 * Logging for the daemons: one line per event on stderr with a syslog
 * priority prefix ("<3>") that journald understands.  log_*_errno() return
 * the (negative) error they were given so callers can write
 * "return log_error_errno(r, ...)".  Strings that come from guests or peers
 * must go through log_escape() first (one event = one line).
 */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <syslog.h>

#include "util.h"

void log_set_max_level(int level);
void log_set_ident(const char *ident);
/* Text put before every message until reset with NULL (e.g. "file.conf:3: "). */
void log_set_prefix(const char *prefix);

int log_internal(int level, int error, const char *func, const char *fmt, ...) _printf_(4, 5);

#define log_full_errno(level, error, ...) log_internal(level, error, __func__, __VA_ARGS__)
#define log_debug(...) log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, e, __VA_ARGS__)

/*
 * Escape an untrusted string for a log or notice line: printable ASCII and
 * valid UTF-8 (except C1) are kept, everything else becomes \xNN.  The
 * result always fits in out (size outsz >= 1) and is NUL-terminated;
 * truncation is marked with "...".  Returns out.
 */
char *log_escape(const char *in, size_t len, char *out, size_t outsz);
/*
 * The same, except that a backslash stays: for showing text that ttyhubd
 * or a front already escaped (console names, key comments, notices), so it
 * reads as it was written ("vm\x1b", not "vm\x5cx1b") and can be typed back.
 */
char *log_sanitize(const char *in, size_t len, char *out, size_t outsz);
