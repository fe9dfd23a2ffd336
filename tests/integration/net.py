# SPDX-License-Identifier: MIT
"""Loopback TCP helpers for the tests, the benchmarks and the demo: pick a free port, wait
until something listens on one, and read the kernel's view of a port's connections from
/proc/net/tcp (IPv4 only: every test server listens on 127.0.0.1).

Stdlib only.
"""

import socket
import time
from typing import Optional

#: /proc/net/tcp "st" column (include/net/tcp_states.h).
TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
              "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


def free_port(host: str = "127.0.0.1", preferred: Optional[int] = None) -> int:
    """A TCP port that was free a moment ago: PREFERRED if it is, else the kernel's choice."""
    for port in ((preferred, 0) if preferred else (0,)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError(f"no free TCP port on {host}")


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """True when a TCP connection to HOST:PORT succeeds now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(port: int, timeout: float = 10, host: str = "127.0.0.1") -> bool:
    """Wait until something accepts on HOST:PORT; False when nothing did within TIMEOUT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port, host):
            return True
        time.sleep(0.05)
    return False


class TcpRow:
    """One IPv4 socket of /proc/net/tcp."""

    def __init__(self, fields: list[str]) -> None:
        local, remote = fields[1], fields[2]
        self.local_port = int(local.split(":")[1], 16)
        addr, rport = remote.split(":")
        self.remote_addr = socket.inet_ntoa(bytes.fromhex(addr)[::-1])
        self.remote_port = int(rport, 16)
        self.st = fields[3]
        self.state = TCP_STATES.get(self.st, self.st)
        self.inode = fields[9]

    @property
    def accepted(self) -> bool:
        """Established and owned by a socket: a connection the server has accepted (those
        still in the listen queue have no socket inode yet)."""
        return self.st == "01" and self.inode != "0"


def tcp_rows(port: Optional[int] = None) -> list[TcpRow]:
    """Every row of /proc/net/tcp, or those whose local port is PORT."""
    with open("/proc/net/tcp") as f:
        next(f)
        rows = [TcpRow(line.split()) for line in f if line.strip()]
    return [r for r in rows if port is None or r.local_port == port]


def tcp_states(port: int) -> dict[str, int]:
    """{state: count} of the server side of TCP sockets on local port PORT."""
    out: dict[str, int] = {}
    for r in tcp_rows(port):
        out[r.state] = out.get(r.state, 0) + 1
    return out


def accepted_peers(port: int) -> list[tuple[str, int]]:
    """(address, port) of the peer of every connection accepted on local port PORT."""
    return [(r.remote_addr, r.remote_port) for r in tcp_rows(port) if r.accepted]
