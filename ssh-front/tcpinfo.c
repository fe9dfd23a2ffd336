/* SPDX-License-Identifier: MIT */
/*
 * TCP_INFO counters and socket addresses (see tcpinfo.h).  <linux/tcp.h> has the fields that
 * glibc's <netinet/tcp.h> lacks, and the two cannot be included together:
 * hence a module of its own.
 */
#include <arpa/inet.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
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

void tcp_address(int fd, bool local, char *buf, size_t size, unsigned *ret_port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	unsigned port = 0;
	int r;

	snprintf(buf, size, "unknown");
	r = local ? getsockname(fd, (struct sockaddr *)&ss, &len)
		  : getpeername(fd, (struct sockaddr *)&ss, &len);
	if (r < 0)
		ss.ss_family = AF_UNSPEC;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *sa = (const struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &sa->sin_addr, buf, (socklen_t)size);
		port = ntohs(sa->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sa = (const struct sockaddr_in6 *)&ss;
		const struct in6_addr *a = &sa->sin6_addr;

		/* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d: from= wants a.b.c.d. */
		if (IN6_IS_ADDR_V4MAPPED(a))
			inet_ntop(AF_INET, &a->s6_addr[12], buf, (socklen_t)size);
		else
			inet_ntop(AF_INET6, a, buf, (socklen_t)size);
		port = ntohs(sa->sin6_port);
	}
	if (ret_port)
		*ret_port = port;
}
