/* SPDX-License-Identifier: MIT */
/*
 * What the kernel knows of a TCP connection that libssh does not tell:
 * how many bytes the peer has sent so far.
 */
#pragma once

#include <stdint.h>

/* Bytes received on the TCP socket fd (0 if unknown: not TCP, old kernel). */
uint64_t tcp_bytes_received(int fd);
