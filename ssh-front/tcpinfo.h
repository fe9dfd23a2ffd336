/* SPDX-License-Identifier: MIT */
/*
 * What the kernel knows of a TCP connection that libssh does not tell:
 * how many bytes the peer has sent so far, and the addresses of both ends.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes received on the TCP socket fd (0 if unknown: not TCP, old kernel). */
uint64_t tcp_bytes_received(int fd);

/*
 * The address of the peer (local false) or of our end (local true: the
 * address and port the client reached), as text: an IPv4 client of a
 * dual-stack listener is a.b.c.d, not ::ffff:a.b.c.d.  "unknown" and port 0
 * when the kernel cannot say.  ret_port may be NULL.
 */
void tcp_address(int fd, bool local, char *buf, size_t size, unsigned *ret_port);
