# SPDX-License-Identifier: MIT
"""Test harness for ttyhub-webd: start the real web front on a free loopback port against a
hub.Daemon socket, a minimal RFC 6455 client speaking the ttyhub.v1 wire (the tests and the
web benchmark use it), and the token exchange (mint a link with the ttyhub CLI, redeem it with
POST /api/session, keep the cookie).

The ttyhubd behind a WebFront must accept it as a front and know where users reach it: start
it with ``--front-user root`` (the tests run as root) and ``--web-url URL`` (any URL: the
token is taken out of the link's fragment here).

The wire (docs/man/ttyhub-webd.8): every WebSocket message is binary, one type byte then
the payload; integers are big-endian.  Client -> server: HELLO json, INPUT bytes, RESIZE
u16 u16, CONTROL json, ACK u64.  Server -> client: OUTPUT u64 start, u64 end, bytes; STATUS,
NOTICE, DETACHED, ERROR json.

Stdlib only; run with /usr/bin/python3.  The binary is $TTYHUB_BUILD/web-front/ttyhub-webd.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import struct
import time
import urllib.parse
from typing import Optional

import hub
import net
import proc

WEBD = os.path.join(hub.BUILD, "web-front", "ttyhub-webd")
STATIC = os.path.join(hub.BUILD, "web")
SUBPROTOCOL = "ttyhub.v1"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Message types (the first byte of every WebSocket message).
HELLO, INPUT, RESIZE, CONTROL, ACK = 0x01, 0x02, 0x03, 0x04, 0x05
OUTPUT, STATUS, NOTICE, DETACHED, ERROR = 0x81, 0x82, 0x83, 0x84, 0x85

# RFC 6455 opcodes.
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def tls_context() -> ssl.SSLContext:
    """A client context for the tests' self-signed certificates (no verification)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def make_cert(wd: str, cn: str = "127.0.0.1") -> tuple[str, str]:
    """A self-signed certificate and key (openssl req) in WD; returns (cert, key) paths."""
    import subprocess
    cert, key = os.path.join(wd, "cert.pem"), os.path.join(wd, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                        "/CN=" + cn, "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", key, "-out", cert], check=True, capture_output=True,
                       stdin=subprocess.DEVNULL)
    return cert, key


class WebFront(proc.Service):
    """A ttyhub-webd process in WORKDIR (created if missing), logging to
    WORKDIR/ttyhub-webd.log, on a fresh free loopback port at every start().

    tls: None (plain HTTP, loopback only) or (cert, key) paths.  static_dir: the page's files
    (default: the build's web/ directory).  extra_args go last (e.g. more --origin).
    """

    label = "ttyhub-webd"

    def __init__(self, workdir, broker_socket, extra_args=(), tls=None, static_dir=None,
                 start=True, host="127.0.0.1"):
        os.makedirs(workdir, exist_ok=True)
        super().__init__(workdir, os.path.join(workdir, "ttyhub-webd.log"))
        self.broker = broker_socket
        self.tls = tls
        self.static_dir = static_dir or STATIC
        self.extra_args = list(extra_args)
        self.host = host
        self.port = None
        if start:
            self.start()

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def origin(self) -> str:
        """The origin a browser on this front's own page sends."""
        return "%s://%s:%d" % (self.scheme, self.host, self.port)

    def command(self) -> list[str]:
        argv = [WEBD, "--listen", "%s:%d" % (self.host, self.port), "--broker", self.broker,
                "--static-dir", self.static_dir]
        if self.tls:
            argv += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1],
                     "--origin", self.origin]
        return argv + self.extra_args

    def prepare(self) -> None:
        self.port = net.free_port(self.host)

    def ready(self) -> bool:
        return net.port_open(self.port, self.host, timeout=1.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- HTTP ---------------------------------------------------------------------------

    def connection(self, timeout: float = 10) -> http.client.HTTPConnection:
        if self.tls:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=tls_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[dict] = None, origin: Optional[str] = "default"):
        """One HTTP request; returns (status, {lower-case header: value}, body bytes).
        origin "default": this front's own origin; None: no Origin header."""
        h = dict(headers or {})
        if origin == "default":
            origin = self.origin
        if origin is not None:
            h.setdefault("Origin", origin)
        c = self.connection()
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def redeem(self, token: str, origin: Optional[str] = "default"):
        """POST /api/session {token}; returns (status, json body or None, cookie or None).
        cookie is "NAME=VALUE" as a browser would send it back."""
        status, headers, body = self.request(
            "POST", "/api/session", json.dumps({"token": token}).encode(),
            {"Content-Type": "application/json"}, origin=origin)
        cookie = None
        sc = headers.get("set-cookie")
        if sc:
            cookie = sc.split(";", 1)[0].strip()
        try:
            obj = json.loads(body)
        except ValueError:
            obj = None
        return status, obj, cookie

    def session(self, daemon, console: str, ro: bool = False) -> str:
        """Mint a link for CONSOLE as the local admin and redeem it: the cookie."""
        token = mint(daemon, console, ro)
        status, obj, cookie = self.redeem(token)
        if status != 200 or not cookie:
            raise AssertionError("redeeming a fresh token: %s %r\n%s"
                                 % (status, obj, self.log()[-3000:]))
        return cookie

    def ws(self, cookie: Optional[str], **kw) -> "WsClient":
        """A WebSocket to /ws with this front's origin and Host (overridable)."""
        kw.setdefault("origin", self.origin)
        return WsClient(self.host, self.port, cookie=cookie,
                        tls=tls_context() if self.tls else None, **kw)


def token_of(url: str) -> str:
    """The token in a web link's fragment (#t=TOKEN&c=CONSOLE)."""
    frag = urllib.parse.urlsplit(url).fragment
    q = urllib.parse.parse_qs(frag)
    if "t" not in q:
        raise AssertionError("no token in the link %r" % url)
    return q["t"][0]


def mint(daemon, console: str, ro: bool = False) -> str:
    """`ttyhub web-link CONSOLE [--ro]` against DAEMON; returns the token."""
    r = daemon.cli("web-link", console, *(["--ro"] if ro else []))
    if r.returncode != 0:
        raise AssertionError("ttyhub web-link failed: %r" % r.stderr)
    m = re.search(rb"\S+#t=\S+", r.stdout)
    if not m:
        raise AssertionError("ttyhub web-link printed no link: %r" % r.stdout)
    return token_of(m.group(0).decode())


class WsRefused(Exception):
    """The upgrade was answered with something other than 101."""

    def __init__(self, status: int, body: bytes):
        super().__init__("WebSocket upgrade refused: %d %r" % (status, body[:200]))
        self.status = status
        self.body = body


class WsClosed(Exception):
    """The server closed the WebSocket (code, reason) or the TCP connection (code None)."""

    def __init__(self, code: Optional[int], reason: bytes = b""):
        super().__init__("WebSocket closed: %s %r" % (code, reason))
        self.code = code
        self.reason = reason


def encode_frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True) -> bytes:
    """One RFC 6455 frame as a client sends it (masked)."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head = struct.pack(">BB", b0, m | n)
    elif n < 65536:
        head = struct.pack(">BBH", b0, m | 126, n)
    else:
        head = struct.pack(">BBQ", b0, m | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if n < 4096 else \
        (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")) \
        .to_bytes(n, "big")
    return head + key + masked


class WsClient:
    """A minimal RFC 6455 client: connect (handshake with Origin, Cookie, Host and the
    subprotocol), send and receive binary messages, answer pings, close.

    host_header: the Host header (default HOST:PORT).  Raises WsRefused when the server does
    not switch protocols.  self.messages counts what recv_msg() returned.
    """

    def __init__(self, host, port, cookie=None, origin=None, host_header=None,
                 protocol=SUBPROTOCOL, path="/ws", tls=None, timeout=10, headers=None):
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = tls.wrap_socket(raw, server_hostname=host) if tls else raw
        self.buf = b""
        self.closed = None  # (code, reason) once a close frame came
        self.pings = 0      # pings received (each answered with a pong)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path,
                 "Host: %s" % (host_header or "%s:%d" % (host, port)),
                 "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        if protocol:
            lines.append("Sec-WebSocket-Protocol: " + protocol)
        if origin:
            lines.append("Origin: " + origin)
        if cookie:
            lines.append("Cookie: " + cookie)
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                self.sock.close()
                raise WsRefused(0, self.buf)
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *hdrs = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        self.headers = {}
        for h in hdrs:
            k, _, v = h.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if status != 101:
            body = self.buf
            n = int(self.headers.get("content-length", "0") or 0)
            self.sock.settimeout(2)
            try:
                while len(body) < n:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        break
                    body += chunk
            except OSError:
                pass
            self.sock.close()
            raise WsRefused(status, body)
        want = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        if self.headers.get("sec-websocket-accept") != want:
            raise AssertionError("bad Sec-WebSocket-Accept %r" % self.headers)
        if protocol and self.headers.get("sec-websocket-protocol") != protocol:
            raise AssertionError("subprotocol not chosen: %r" % self.headers)

    # -- frames -------------------------------------------------------------------------

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        self.sock.sendall(encode_frame(opcode, payload, fin))

    def send(self, mtype: int, payload: bytes = b"") -> None:
        """One ttyhub.v1 message (a binary WebSocket message)."""
        self.send_frame(OP_BINARY, bytes([mtype]) + payload)

    def send_json(self, mtype: int, obj: dict) -> None:
        self.send(mtype, json.dumps(obj).encode())

    def hello(self, console: str, mode: str = "rw", cols: int = 80, rows: int = 24,
              replay=None, resume=None) -> None:
        obj = {"console": console, "mode": mode, "cols": cols, "rows": rows}
        if replay is not None:
            obj["replay"] = replay
        if resume is not None:
            obj["resume"] = {"epoch": resume[0], "offset": resume[1]}
        self.send_json(HELLO, obj)

    def ack(self, offset: int) -> None:
        self.send(ACK, struct.pack(">Q", offset))

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise WsClosed(None)
            self.buf += chunk

    def recv_frame(self):
        """(fin, opcode, payload) of the next frame (server frames are not masked)."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._need(4)
            n = struct.unpack(">H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            self._need(10)
            n = struct.unpack(">Q", self.buf[2:10])[0]
            pos = 10
        if b1 & 0x80:
            raise AssertionError("the server masked a frame")
        self._need(pos + n)
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_ws(self):
        """(opcode, payload) of the next data message; pings are answered; a close frame
        raises WsClosed (after answering it)."""
        parts, op = [], None
        while True:
            fin, opcode, payload = self.recv_frame()
            if opcode == OP_PING:
                self.pings += 1
                self.send_frame(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                self.closed = (code, payload[2:])
                try:
                    self.send_frame(OP_CLOSE, payload[:2])
                except OSError:
                    pass
                raise WsClosed(code, payload[2:])
            if opcode != OP_CONT:
                op = opcode
            parts.append(payload)
            if fin:
                return op, b"".join(parts)

    def recv_msg(self, timeout: Optional[float] = None):
        """(type, payload) of the next ttyhub.v1 message; JSON payloads are decoded, OUTPUT
        is (start, end, bytes)."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        op, data = self.recv_ws()
        if op != OP_BINARY:
            raise AssertionError("the server sent a non-binary message %r" % data[:100])
        if not data:
            raise AssertionError("empty message")
        t = data[0]
        if t == OUTPUT:
            start, end = struct.unpack(">QQ", data[1:17])
            return t, (start, end, data[17:])
        if t in (STATUS, NOTICE, DETACHED, ERROR):
            return t, json.loads(data[1:])
        return t, data[1:]

    def expect(self, want: int, timeout: float = 10, skip_output: bool = True):
        """The next message of type WANT (OUTPUT and other types in between are skipped,
        except ERROR, which raises)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no message 0x%02x within %g s" % (want, timeout))
            t, p = self.recv_msg(timeout=left)
            if t == want:
                return p
            if t == ERROR:
                raise AssertionError("server error while waiting for 0x%02x: %r" % (want, p))

    def close(self, code: int = 1000) -> None:
        try:
            self.send_frame(OP_CLOSE, struct.pack(">H", code))
        except OSError:
            pass
        self.sock.close()


class Reader:
    """Collect a console's OUTPUT over a WsClient: bytes in order, the (epoch, end) to resume
    at, notices; ack=True ACKs every OUTPUT as it comes (a page that keeps up)."""

    def __init__(self, ws: WsClient, ack: bool = True):
        self.ws = ws
        self.ack = ack
        self.data = bytearray()
        self.end = None
        self.epoch = None
        self.status = {}
        self.notices = []

    def pump(self, timeout: float = 10):
        t, p = self.ws.recv_msg(timeout=timeout)
        if t == OUTPUT:
            start, end, b = p
            self.data += b
            self.end = end
            if self.ack:
                self.ws.ack(end)
        elif t == STATUS:
            self.status.update(p)
            if "epoch" in p:
                self.epoch = p["epoch"]
            if self.end is None and "offset" in p:
                self.end = p["offset"]
        elif t == NOTICE:
            self.notices.append(p)
        elif t == ERROR:
            raise AssertionError("server error: %r" % p)
        return t, p

    def until(self, predicate, timeout: float = 20, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for %s" % what)
            try:
                self.pump(timeout=left)
            except socket.timeout:
                pass
        return True
