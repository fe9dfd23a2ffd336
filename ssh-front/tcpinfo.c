/* SPDX-License-Identifier: MIT */
/*
 * TCP_INFO counters (see tcpinfo.h).  <linux/tcp.h> has the fields that
 * glibc's <netinet/tcp.h> lacks, and the two cannot be included together:
 * hence a module of its own.
 */
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

#include "tcpinfo.h"

uint64_t tcp_bytes_received(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
		return 0;
	return ti.tcpi_bytes_received;
}
