/* SPDX-License-Identifier: MIT */
/*
 * The monotonic clock in microseconds, for what ttyhub-sshd measures
 * outside sd-event's timers: connection ages, rate-limited log lines, the
 * deadline of a blocking question to ttyhubd.  Never wall-clock time, which
 * may jump.
 */
#pragma once

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}
