#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Many idle synthetic guests in one process: N UNIX listening sockets DIR/cNNNN.sock, each
serving one client at a time like a QEMU chardev (server=on, wait=off), for the scale
benchmark (b_scale.py).  Stdlib only; run with /usr/bin/python3.

On each accepted connection it writes one line ("cNNNN hello ...", --hello bytes with the
newline).  Commands, one per line on stdin; each answer is one line on stdout:

  count          -> "accepted A open O"  (connections accepted so far / still open)
  fill BYTES     -> writes BYTES more to every open connection (numbered 64-byte lines),
                    waits until the client has read all of it (SIOCOUTQ == 0 on every
                    socket, at most 60 s), then "filled K pending P" (K connections fully
                    written, P with bytes still unread)
  quit / EOF     -> exit

It prints "ready N" once every socket listens.  Input from clients is read and discarded;
a client that closes is dropped and its socket listens again.
"""

import argparse
import fcntl
import os
import resource
import selectors
import socket
import struct
import sys
import termios
import time


def line(name, seq, length=64):
    head = b"%s %012d " % (name.encode(), seq)
    return head + b"x" * (length - len(head) - 1) + b"\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--hello", type=int, default=64)
    args = ap.parse_args()

    need = 2 * args.count + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))

    sel = selectors.DefaultSelector()
    names = {}
    for i in range(args.count):
        name = "c%04d" % i
        path = os.path.join(args.dir, name + ".sock")
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(path)
        ls.listen(1)
        ls.setblocking(False)
        names[ls] = name
        sel.register(ls, selectors.EVENT_READ, ("listen", name))
    sel.register(sys.stdin, selectors.EVENT_READ, ("stdin", None))
    conns = {}  # socket -> name
    accepted = 0
    seqs = {}
    out = sys.stdout
    out.write("ready %d\n" % args.count)
    out.flush()

    def send_all(pending, deadline):
        """pending: {sock: bytes}; writes them (non-blocking), serving accepts meanwhile."""
        for s, data in list(pending.items()):
            sel.modify(s, selectors.EVENT_READ | selectors.EVENT_WRITE, ("conn", conns[s]))
        while pending and time.monotonic() < deadline:
            for key, ev in sel.select(1.0):
                if key.data[0] == "conn" and ev & selectors.EVENT_WRITE:
                    s = key.fileobj
                    try:
                        n = s.send(pending[s])
                    except BlockingIOError:
                        continue
                    except OSError:
                        n = len(pending[s])
                    pending[s] = pending[s][n:]
                    if not pending[s]:
                        del pending[s]
                        sel.modify(s, selectors.EVENT_READ, ("conn", conns[s]))
                elif key.data[0] == "conn":
                    read_conn(key.fileobj)
        return len(pending)

    def read_conn(s):
        try:
            b = s.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            b = b""
        if not b:
            sel.unregister(s)
            del conns[s]
            s.close()

    def outq(s):
        buf = fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]

    while True:
        for key, ev in sel.select(None):
            kind, name = key.data
            if kind == "listen":
                try:
                    c, _ = key.fileobj.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                conns[c] = name
                accepted += 1
                sel.register(c, selectors.EVENT_READ, ("conn", name))
                hello = b"%s hello" % name.encode()
                hello = hello + b"." * max(0, args.hello - len(hello) - 1) + b"\n"
                try:
                    c.send(hello[:args.hello])
                except OSError:
                    pass
            elif kind == "conn":
                read_conn(key.fileobj)
            else:
                cmd = sys.stdin.readline().split()
                if not cmd or cmd[0] == "quit":
                    return
                if cmd[0] == "count":
                    out.write("accepted %d open %d\n" % (accepted, len(conns)))
                elif cmd[0] == "fill":
                    nbytes = int(cmd[1])
                    pending = {}
                    for s, nm in conns.items():
                        seq = seqs.get(nm, 0)
                        chunks = []
                        for _ in range((nbytes + 63) // 64):
                            chunks.append(line(nm, seq))
                            seq += 1
                        seqs[nm] = seq
                        pending[s] = b"".join(chunks)[:nbytes]
                    deadline = time.monotonic() + 60
                    left = send_all(pending, deadline)
                    while time.monotonic() < deadline:
                        unread = sum(1 for s in conns if outq(s) > 0)
                        if unread == 0:
                            break
                        time.sleep(0.05)
                    unread = sum(1 for s in conns if outq(s) > 0)
                    out.write("filled %d pending %d\n" % (len(conns) - left, unread + left))
                else:
                    out.write("error unknown command\n")
                out.flush()


if __name__ == "__main__":
    main()
