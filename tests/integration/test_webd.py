#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""ttyhub-webd end to end without a browser: a real ttyhubd holding a synthetic guest
(fake-guest: numbered lines, --input-log), a real ttyhub-webd, and webhub's RFC 6455 client.

* The token exchange: a fresh link is redeemed once for a cookie (HttpOnly, SameSite=Strict);
  the same token again, an expired one and an unknown one are refused with the same text.
* Where requests come from: an upgrade with a foreign Origin or a wrong Host is refused (403),
  so is one without the cookie; a made-up cookie opens no console.
* The wire: OUTPUT carries the broker's offsets; a reconnect with resume continues with no
  line lost or repeated, also across a restart of ttyhubd (under the fake service manager),
  which closes the WebSocket with 1012 and a notice; a reader that stops ACKing is skipped
  ahead with the dropped notice while another reader and the guest go on; a read-only
  session's INPUT never reaches the guest while a writer's does.
* Limits: request headers over 8 KiB get 431, a 100 KiB message closes with 1009, an 11th
  WebSocket of one web session and a 51st of one address get 503.
* A WebSocket without HELLO is closed (1008) after 10 s; attached ones are pinged.
* Plain HTTP is refused off loopback; socket activation (systemd-socket-activate) serves.
* TLS: with a self-signed certificate TLS 1.2 and 1.3 are accepted with AEAD ciphers only,
  TLS 1.1 and CBC or non-ECDHE suites are refused (openssl s_client); the cookie is then
  __Host- and Secure, and HSTS is sent.
"""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import pattern  # noqa: E402
import runner  # noqa: E402
import webhub  # noqa: E402

VM = "fg"
CONSOLE = "fg:serial0"
UUID = "f00dfeed-0000-4000-8000-00000000c0de"
RATE = 64 * 2000   # bytes/s: the slow reader falls behind the small ring within seconds
LINK_TTL = 5       # seconds a link may be redeemed (--web-link-ttl)
REFUSED = "this link is not valid (used, expired or unknown)"
STATIC_FILES = ("index.html", "app.js", "app.css", "xterm.js", "xterm.css", "addon-fit.js")


class Ctx:
    pass


ctx = Ctx()


def attach(cookie, mode="rw", resume=None, ack=True, front=None):
    """A WebSocket attached to the console: (WsClient, Reader) once STATUS came."""
    ws = (front or ctx.web).ws(cookie)
    ws.hello(CONSOLE, mode=mode, replay=0, resume=resume)
    rd = webhub.Reader(ws, ack=ack)
    rd.until(lambda: rd.epoch is not None, what="STATUS after HELLO")
    return ws, rd


def t_static_and_headers():
    status, h, body = ctx.web.request("GET", "/")
    assert status == 200 and body == b"<!doctype html>index.html\n", (status, body)
    assert h["content-type"].startswith("text/html"), h
    assert "default-src 'none'" in h["content-security-policy"], h
    assert "frame-ancestors 'none'" in h["content-security-policy"], h
    assert h["x-content-type-options"] == "nosniff", h
    assert h["referrer-policy"] == "no-referrer", h
    assert h["cache-control"] == "no-store", h
    status, h, body = ctx.web.request("GET", "/static/app.js")
    assert status == 200 and h["content-type"].startswith("text/javascript"), (status, h)
    for path in ("/static/secret", "/static/../static/app.js", "/etc/passwd", "/static/"):
        status, h, body = ctx.web.request("GET", path)
        assert status == 404, (path, status)
        assert "content-security-policy" in h, h


def t_token_used_twice_expired_or_unknown_is_refused():
    token = webhub.mint(ctx.d, CONSOLE)
    status, obj, cookie = ctx.web.redeem(token)
    assert status == 200, (status, obj)
    assert obj["console"] == CONSOLE and obj["access"] == "rw", obj
    assert cookie and cookie.startswith("ttyhub="), cookie
    status, h, _ = ctx.web.request("POST", "/api/session",
                                   b'{"token": "%s"}' % webhub.mint(ctx.d, CONSOLE).encode(),
                                   {"Content-Type": "application/json"})
    sc = h.get("set-cookie", "")
    for attr in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="):
        assert attr in sc, sc
    assert "Secure" not in sc, sc  # plain loopback HTTP: browsers would drop it
    again = ctx.web.redeem(token)
    unknown = ctx.web.redeem("A" * 43)
    expired_token = webhub.mint(ctx.d, CONSOLE)
    time.sleep(LINK_TTL + 1)  # the expiry itself is what is tested: time has to pass
    expired = ctx.web.redeem(expired_token)
    for what, (status, obj, c) in (("used", again), ("unknown", unknown),
                                   ("expired", expired)):
        assert status == 403 and c is None, (what, status, obj)
        assert obj == {"error": REFUSED}, (what, obj)
    # Malformed bodies are refused before the broker is asked.
    for body in (b"", b"{", b'{"token": 1}', b'{"token": "a b"}', b"x" * 2000):
        status, _, _ = ctx.web.request("POST", "/api/session", body,
                                       {"Content-Type": "application/json"})
        assert status in (400, 413), (body[:20], status)
    log = ctx.web.log() + ctx.d.log()
    secret = cookie.split("=", 1)[1]
    assert token not in log and secret not in log, "a token or cookie is in a log"


def t_foreign_origin_or_host_or_no_cookie_is_refused():
    cookie = ctx.web.session(ctx.d, CONSOLE)
    for kw in ({"origin": "http://evil.example"}, {"origin": "http://127.0.0.1:1"},
               {"origin": None}, {"host_header": "evil.example"},
               {"host_header": "127.0.0.1:1"}):
        try:
            ctx.web.ws(cookie, **kw).close()
        except webhub.WsRefused as e:
            assert e.status == 403, (kw, e.status)
        else:
            raise AssertionError("upgrade accepted with %r" % kw)
    for c in (None, "other=1"):
        try:
            ctx.web.ws(c).close()
        except webhub.WsRefused as e:
            assert e.status == 403, (c, e.status)
        else:
            raise AssertionError("upgrade accepted without the cookie (%r)" % c)
    status, obj, cookie2 = ctx.web.redeem(webhub.mint(ctx.d, CONSOLE),
                                          origin="http://evil.example")
    assert status == 403 and cookie2 is None, (status, obj)
    # A cookie the broker never issued: the upgrade goes through, the console does not.
    ws = ctx.web.ws("ttyhub=" + "B" * 43)
    ws.hello(CONSOLE)
    t, p = ws.recv_msg(timeout=10)
    assert t == webhub.ERROR and p["code"] == "denied", (t, p)
    try:
        while True:
            t, p = ws.recv_msg(timeout=10)
            assert t != webhub.OUTPUT, "console output without a session"
    except webhub.WsClosed as e:
        assert e.code == 1008, e.code
    status, _, body = ctx.web.request("GET", "/api/consoles", headers={"Cookie": cookie})
    assert status == 200 and CONSOLE.encode() in body, (status, body)
    status, _, _ = ctx.web.request("GET", "/api/consoles")
    assert status == 403, status


def t_output_offsets_and_resume_lose_nothing():
    cookie = ctx.web.session(ctx.d, CONSOLE)
    ws, rd = attach(cookie)
    start_offset = rd.end
    rd.until(lambda: len(rd.data) >= 64 * 300, what="300 lines")
    epoch, end = rd.epoch, rd.end
    ws.close()
    assert end - start_offset == len(rd.data), (start_offset, end, len(rd.data))
    first = bytes(rd.data)
    ws2, rd2 = attach(cookie, resume=(epoch, end))
    assert rd2.status.get("resumed") in ("exact", True), rd2.status
    rd2.until(lambda: len(rd2.data) >= 64 * 300, what="300 more lines")
    ws2.close()
    res = pattern.check_lines(first + bytes(rd2.data), tag=VM)
    assert res["lines"] >= 590 and not res["gaps"] and not res["reorders"] \
        and not res["corrupt"], res


def t_broker_restart_closes_1012_and_resume_loses_nothing():
    cookie = ctx.web.session(ctx.d, CONSOLE)
    ws, rd = attach(cookie)
    rd.until(lambda: len(rd.data) >= 64 * 100, what="100 lines")
    ctx.d.restart()
    try:
        while True:
            rd.pump(timeout=20)
    except webhub.WsClosed as e:
        assert e.code == 1012, e.code
    assert any("went away" in n.get("text", "") for n in rd.notices), rd.notices
    epoch, end, first = rd.epoch, rd.end, bytes(rd.data)
    # ttyhubd keeps web sessions in memory only: after its restart a new link is needed
    # (the resume point is the console's, so it still continues exactly).
    cookie = ctx.web.session(ctx.d, CONSOLE)
    ws2, rd2 = attach(cookie, resume=(epoch, end))
    rd2.until(lambda: len(rd2.data) >= 64 * 300, what="300 lines after the restart")
    ws2.close()
    assert rd2.status.get("epoch") == epoch, (epoch, rd2.status)
    res = pattern.check_lines(first + bytes(rd2.data), tag=VM)
    assert not res["gaps"] and not res["reorders"] and not res["corrupt"], res


def t_slow_reader_is_skipped_ahead_while_others_go_on():
    cookie = ctx.web.session(ctx.d, CONSOLE)
    slow_ws, slow = attach(cookie, ack=False)
    fast_ws, fast = attach(cookie)
    # The slow page renders nothing (no ACK) while 2 MiB go by: the broker's ring is 256 KiB.
    target = 2 * 1024 * 1024
    fast.until(lambda: len(fast.data) >= target, timeout=120, what="2 MiB at the fast reader")
    res = pattern.check_lines(bytes(fast.data), tag=VM)
    assert not res["gaps"] and not res["reorders"] and not res["corrupt"], res
    # Now it catches up: ACK what it has, read on, and find the notice and the jump.
    slow.ack = True
    if slow.end is not None:
        slow_ws.ack(slow.end)
    slow.until(lambda: any(n.get("dropped") for n in slow.notices), timeout=60,
               what="the dropped notice")
    slow.until(lambda: len(slow.data) >= 512 * 1024, timeout=60, what="output after the skip")
    res = pattern.check_lines(bytes(slow.data), tag=VM)
    assert res["gaps"] and not res["reorders"], res
    slow_ws.close()
    fast_ws.close()


def t_header_over_8k_gets_431():
    for n in (9000, 40000):
        status, _, _ = ctx.web.request("GET", "/", headers={"X-Filler": "a" * n})
        assert status == 431, (n, status)
    status, _, _ = ctx.web.request("GET", "/", headers={"X-Filler": "a" * 4000})
    assert status == 200, status


def t_message_over_64k_closes_1009():
    cookie = ctx.web.session(ctx.d, CONSOLE)
    ws, rd = attach(cookie)
    ws.send(webhub.INPUT, b"x" * (100 * 1024))
    try:
        while True:
            ws.recv_msg(timeout=10)
    except webhub.WsClosed as e:
        assert e.code == 1009, e.code


def t_ten_websockets_per_session_fifty_per_address():
    cookie = ctx.web.session(ctx.d, CONSOLE)
    socks = [ctx.web.ws(cookie) for _ in range(10)]
    try:
        ctx.web.ws(cookie).close()
    except webhub.WsRefused as e:
        assert e.status == 503 and b"too many" in e.body, (e.status, e.body)
    else:
        raise AssertionError("an 11th WebSocket of one session was accepted")
    # Another session is not counted with it, but every session of one address is: 50.
    for _ in range(4):
        c = ctx.web.session(ctx.d, CONSOLE)
        socks += [ctx.web.ws(c) for _ in range(10)]
    try:
        ctx.web.ws(ctx.web.session(ctx.d, CONSOLE)).close()
    except webhub.WsRefused as e:
        assert e.status == 503, (e.status, e.body)
    else:
        raise AssertionError("a 51st WebSocket from one address was accepted")
    for ws in socks:
        ws.close()
    # Closed ones no longer count.
    ctx.d.wait_for(lambda: ctx.web.request("GET", "/")[0] == 200, what="webd to answer")
    deadline = time.monotonic() + 20
    while True:
        try:
            ctx.web.ws(cookie).close()
            break
        except webhub.WsRefused:
            assert time.monotonic() < deadline, "closed WebSockets still counted"
            time.sleep(0.05)


def t_plain_http_only_on_loopback():
    wd = os.path.join(ctx.wd, "public")
    os.makedirs(wd, exist_ok=True)
    log = os.path.join(wd, "out.log")
    with open(log, "wb") as f:
        r = subprocess.run([webhub.WEBD, "--listen", "0.0.0.0:%d" % webhub.net.free_port(),
                            "--broker", ctx.d.socket], stdout=f, stderr=f, timeout=30)
    with open(log, "rb") as f:
        out = f.read()
    assert r.returncode != 0 and b"loopback" in out, (r.returncode, out)


def t_socket_activation():
    """systemd-socket-activate holds the port; ttyhub-webd takes the first LISTEN_FD."""
    port = webhub.net.free_port()
    wd = os.path.join(ctx.wd, "activated")
    os.makedirs(wd, exist_ok=True)
    with open(os.path.join(wd, "log"), "ab") as log:
        p = subprocess.Popen(["systemd-socket-activate", "-l", "127.0.0.1:%d" % port,
                              webhub.WEBD, "--broker", ctx.d.socket, "--static-dir", ctx.static],
                             stdout=log, stderr=log)
    try:
        assert webhub.net.wait_port(port), "nothing listens"
        ctx.web.port, saved = port, ctx.web.port
        try:
            status, _, body = ctx.web.request("GET", "/")
            assert status == 200, status
            ws, rd = attach(ctx.web.session(ctx.d, CONSOLE))
            rd.until(lambda: len(rd.data) >= 64 * 20, what="output when socket-activated")
            ws.close()
        finally:
            ctx.web.port = saved
    finally:
        p.terminate()
        assert p.wait(30) == 0, "ttyhub-webd did not exit cleanly on SIGTERM"


def t_hello_deadline_and_pings():
    cookie = ctx.web.session(ctx.d, CONSOLE)
    silent = ctx.web.ws(cookie)
    ws, rd = attach(cookie)
    t, p = silent.recv_msg(timeout=60)
    assert t == webhub.ERROR and "HELLO" in p["message"], (t, p)
    try:
        silent.recv_msg(timeout=60)
        raise AssertionError("still open after the HELLO deadline")
    except webhub.WsClosed as e:
        assert e.code == 1008, e.code
    # The attached one is pinged (and stays, since webhub answers).
    rd.until(lambda: ws.pings >= 1, timeout=60, what="a ping from ttyhub-webd")
    rd.until(lambda: len(rd.data) >= 64 * 10, what="output after the ping")
    ws.close()


def input_log():
    try:
        with open(ctx.input_log, "rb") as f:
            return f.read()
    except OSError:
        return b""


def t_read_only_input_never_reaches_the_guest():
    ro = ctx.web.session(ctx.d, CONSOLE, ro=True)
    ws, rd = attach(ro, mode="ro")
    assert rd.status.get("access") == "ro", rd.status
    ws.send(webhub.INPUT, b"ro-secret-keys\n")
    ws.send_json(webhub.CONTROL, {"op": "force"})
    ws.send(webhub.INPUT, b"ro-secret-keys\n")
    # A writer's keystrokes after them do arrive: once they are in, the ro ones had their chance.
    rw = ctx.web.session(ctx.d, CONSOLE)
    ws2, rd2 = attach(rw, mode="force")
    ws2.send(webhub.INPUT, b"rw-marker\n")
    ctx.d.wait_for(lambda: b"rw-marker" in input_log(), timeout=20, what="the writer's input")
    assert b"ro-secret" not in input_log(), input_log()[-200:]
    ws.close()
    ws2.close()


def t_tls_12_and_13_only():
    cert, key = webhub.make_cert(ctx.wd)
    with webhub.WebFront(os.path.join(ctx.wd, "tls"), ctx.d.socket, tls=(cert, key),
                         static_dir=ctx.static) as web:
        for flag, ok in (("-tls1_2", True), ("-tls1_3", True), ("-tls1_1", False)):
            r = subprocess.run(["openssl", "s_client", flag, "-connect",
                                "127.0.0.1:%d" % web.port, "-servername", "localhost"],
                               input=b"", capture_output=True, timeout=30)
            out = (r.stdout + r.stderr).decode(errors="replace")
            accepted = r.returncode == 0 and "Cipher is (NONE)" not in out and \
                "New, " in out
            assert accepted == ok, (flag, r.returncode, out[-1500:])
            if ok:
                assert "GCM" in out or "CHACHA20" in out, out[-1500:]
        # TLS 1.2 without an AEAD cipher or forward secrecy: refused.
        for cipher in ("AES128-SHA", "ECDHE-RSA-AES128-SHA", "AES256-GCM-SHA384"):
            r = subprocess.run(["openssl", "s_client", "-tls1_2", "-cipher", cipher,
                                "-connect", "127.0.0.1:%d" % web.port], input=b"",
                               capture_output=True, timeout=30)
            out = (r.stdout + r.stderr).decode(errors="replace")
            assert r.returncode != 0 or "Cipher is (NONE)" in out, (cipher, out[-1500:])
        token = webhub.mint(ctx.d, CONSOLE)
        status, obj, cookie = web.redeem(token)
        assert status == 200 and cookie.startswith("__Host-ttyhub="), (status, cookie)
        status, h, _ = web.request("GET", "/")
        assert "max-age" in h.get("strict-transport-security", ""), h
        ws, rd = attach(cookie, front=web)
        rd.until(lambda: len(rd.data) >= 64 * 50, what="output over TLS")
        ws.close()


def main():
    res = runner.Runner()
    ctx.wd = hub.workdir("webd")
    xmldir = os.path.join(ctx.wd, "xml")
    os.mkdir(xmldir)
    ctx.static = os.path.join(ctx.wd, "static")
    os.mkdir(ctx.static)
    for name in STATIC_FILES:
        with open(os.path.join(ctx.static, name), "w") as f:
            f.write("<!doctype html>%s\n" % name)
    sock = os.path.join(ctx.wd, "fg.sock")
    ctx.input_log = os.path.join(ctx.wd, "fg.input")
    guest = subprocess.Popen([hub.FAKE_GUEST, "--socket", sock, "--rate", str(RATE), "--tag", VM,
                              "--input-log", ctx.input_log])
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.02)
        with open(os.path.join(xmldir, "fg.xml"), "w") as f:
            f.write(hub.domain_xml(name=VM, uuid=UUID, path=sock))
        ctx.d = hub.Daemon(ctx.wd, "--domain-xml", xmldir, "--front-user", "root",
                           "--web-url", "https://console.example/", "--web-link-ttl",
                           str(LINK_TTL), "--ring-size", "256K", managed=True).start()
        ctx.d.wait_for(lambda: (ctx.d.console(CONSOLE) or {}).get("state") == "connected",
                       what="the guest connected")
        ctx.web = webhub.WebFront(os.path.join(ctx.wd, "web"), ctx.d.socket,
                                  static_dir=ctx.static)
        for name, fn in [(n, f) for n, f in globals().items() if n.startswith("t_")]:
            res.run(name[2:].replace("_", " "), fn)
    finally:
        guest.send_signal(signal.SIGTERM)
        guest.wait()
    res.finish(ctx.wd)


if __name__ == "__main__":
    main()
