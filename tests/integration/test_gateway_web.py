#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The web front on a gateway (issue 16): links minted on the gateway open consoles on any
host.  Two hosts and a gateway on one machine (gwhub.py), the gateway with web=True: its
ttyhubd (--no-consoles) has --web-url, its ttyhub-sshd --gateway-socket, and ttyhub-webd runs
with --broker on that socket (webhub.WebFront).

  h1  127.0.1.1  fake guests web01 and db01; its gateway line allows only web*
  h2  127.0.1.2  a fake guest web01

alice may do everything on the gateway (consoles="*:rw"); bob may watch web* there.

What is proved:
* `ssh alice@gateway web-link h2/web01` prints a link; POST /api/session redeems it through
  the gateway (console h2/web01, rw); a WebSocket attached to h2/web01 through the gateway
  sees that guest's output, and its keystrokes reach that guest and no other;
* a --ro link's session watches: its keystrokes never reach the guest, a rw session's do;
* a link for h1/db01 (the gateway's access file allows *, h1's gateway line only web*) is
  minted and redeemed on the gateway, but does not attach: h1 says "no console named";
* a session names its link's console only: another one is denied; a read-only user's rw link
  watches on the host (the gateway's grant goes with the session);
* a web front's connection without a session may only redeem;
* a peer uid other than root, the gateway's own and --gateway-socket-user is closed at once
  on the gateway socket, with a log line (as root: a child with another uid; else skipped);
* in headless Chromium (Selenium, as test_web_browser.py; skipped without it), the page of a
  link minted on the gateway shows h2's web01 and what is typed there reaches that guest.
"""

import os
import re
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwhub  # noqa: E402
import hub  # noqa: E402
import runner  # noqa: E402
import webhub  # noqa: E402
from runner import check  # noqa: E402

GW_LINES = {
    "alice": 'consoles="*:rw"',
    "bob": 'consoles="web*:ro"',
}
NOBODY = 65534
CHROMEDRIVER = "/usr/bin/chromedriver"


class Ctx:
    pass


ctx = Ctx()


def link(user, console, ro=False):
    """`ssh USER@gateway web-link CONSOLE [--ro]`: the token of the one link it prints."""
    r = ctx.gw.run(user, "web-link", console, *(["--ro"] if ro else []))
    assert r.returncode == 0, (r, ctx.hubs.logs())
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 1, r
    url = lines[0].rstrip("\r")
    assert url.startswith(gwhub.WEB_URL), url
    return webhub.token_of(url)


def session(user, console, ro=False):
    """A link minted over SSH and redeemed over HTTP: (cookie, the answer)."""
    status, obj, cookie = ctx.gw.web.redeem(link(user, console, ro))
    assert status == 200 and cookie, (status, obj, ctx.hubs.logs())
    return cookie, obj


def attach(cookie, console, mode="rw"):
    """A WebSocket through the gateway attached to CONSOLE: (WsClient, Reader) once STATUS
    came."""
    ws = ctx.gw.web.ws(cookie)
    ws.hello(console, mode=mode, replay=0)
    rd = webhub.Reader(ws)
    rd.until(lambda: rd.epoch is not None, what="STATUS after HELLO")
    return ws, rd


def refused(cookie, console, mode="rw"):
    """HELLO for CONSOLE: the ERROR that ends the WebSocket (AssertionError if it attaches)."""
    ws = ctx.gw.web.ws(cookie)
    try:
        ws.hello(console, mode=mode, replay=0)
        while True:
            t, p = ws.recv_msg(timeout=30)
            if t == webhub.ERROR:
                return p
            if t == webhub.STATUS and "epoch" in p:
                raise AssertionError("attached to %s: %r" % (console, p))
    finally:
        ws.close()


def guest(host, name):
    return ctx.hubs.host(host).fakes[name]


@check
def t_link_opens_console_on_second_host():
    cookie, obj = session("alice", "h2/web01")
    assert obj["console"] == "h2/web01" and obj["access"] == "rw", obj
    ws, rd = attach(cookie, "h2/web01")
    assert rd.status.get("access") == "rw", rd.status
    # The guest's own numbered lines, tagged with its name, come through.
    rd.until(lambda: re.search(rb"web01 \d{12} ", bytes(rd.data)), what="h2 web01's output")
    ws.send(webhub.INPUT, b"gw-web-typed\n")
    runner.wait_until(lambda: b"gw-web-typed" in guest("h2", "web01").input(), 30,
                      "the keystrokes at h2's web01")
    assert b"gw-web-typed" not in guest("h1", "web01").input()
    ws.close()
    # The gateway and the host both log it: the web session, and the user via the gateway.
    assert "web session of" in ctx.gw.front.log(), ctx.gw.front.log()[-2000:]
    assert "via gateway" in ctx.hubs.host("h2").daemon.log()


@check
def t_ro_link_cannot_write():
    cookie, obj = session("alice", "h2/web01", ro=True)
    assert obj["access"] == "ro", obj
    ws, rd = attach(cookie, "h2/web01", mode="rw")
    assert rd.status.get("access") == "ro", rd.status
    ws.send(webhub.INPUT, b"ro-web-secret\n")
    ws.send_json(webhub.CONTROL, {"op": "force"})
    ws.send(webhub.INPUT, b"ro-web-secret\n")
    # A writer's keystrokes after them do arrive: once they are in, the ro ones had their chance.
    rw, _ = session("alice", "h2/web01")
    ws2, _ = attach(rw, "h2/web01", mode="force")
    ws2.send(webhub.INPUT, b"rw-after-ro\n")
    runner.wait_until(lambda: b"rw-after-ro" in guest("h2", "web01").input(), 30,
                      "the writer's keystrokes")
    assert b"ro-web-secret" not in guest("h2", "web01").input()
    ws.close()
    ws2.close()


@check
def t_host_gateway_line_refuses():
    # The gateway's ttyhubd has no consoles: it mints the link as named...
    cookie, obj = session("alice", "h1/db01")
    assert obj["console"] == "h1/db01", obj
    # ...and h1, whose gateway line allows only web*, says what it says to a key without it.
    e = refused(cookie, "h1/db01")
    assert "no console named" in e.get("message", ""), e
    assert b"" == guest("h1", "db01").input()


@check
def t_session_names_its_console_only():
    cookie, _ = session("bob", "h2/web01")
    e = refused(cookie, "h1/web01")
    assert e.get("code") == "denied" and "h2/web01 only" in e.get("message", ""), e
    # bob may only watch on the gateway: his rw link watches on the host, and may not take over.
    ws, rd = attach(cookie, "h2/web01", mode="rw")
    assert rd.status.get("access") == "ro", rd.status
    ws.close()
    e = refused(cookie, "h2/web01", mode="force")
    assert e.get("code") == "denied" and "may only watch" in e.get("message", ""), e


@check
def t_bare_front_only_redeems():
    c = hub.BrokerClient(ctx.gw.web_socket)
    try:
        c.send({"type": "list"})
        e = c.expect_type("error")
        assert e["code"] == "denied", e
        c.send({"type": "redeem", "token": "A" * 43, "from": "127.0.0.1"})
        e = c.expect_type("error")
        assert e["code"] == "denied" and "not valid" in e["message"], e
    finally:
        c.sock.close()


@check
def t_socket_refuses_other_uid():
    if os.geteuid() != 0:
        print("SKIP the peer check needs root (a child with another uid)", flush=True)
        return
    path = ctx.gw.web_socket
    os.chmod(path, 0o666)  # past the mode: the peer check must refuse on its own
    try:
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(30)
                s.connect(path)
                s.sendall(b"C\x00\x00\x00\x2a" + b'{"type":"hello","version":1,"client":"x"}')
                code = 0 if s.recv(4096) == b"" else 1
            except ConnectionResetError:
                code = 0
            except BaseException:  # noqa: BLE001 - any other failure is the child's code
                code = 2
            os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        os.chmod(path, 0o660)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    runner.wait_until(lambda: "from uid %d" % NOBODY in ctx.gw.front.log(), 30,
                      "the refusal in the gateway's log")


def browser(wd):
    """Headless Chromium as test_web_browser.py drives it, or None (with why) without it."""
    try:
        from selenium import webdriver  # noqa: PLC0415 - only this check needs it
        from selenium.webdriver.chrome.service import Service  # noqa: PLC0415
    except ImportError as e:
        return None, "no Selenium (%s)" % e
    if not os.access(CHROMEDRIVER, os.X_OK):
        return None, "no %s" % CHROMEDRIVER
    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1000,700", "--no-first-run", "--no-default-browser-check",
              "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--user-data-dir=" + os.path.join(wd, "chromium")):
        o.add_argument(a)
    service = Service(CHROMEDRIVER, log_path=os.path.join(wd, "chromedriver.log"))
    d = webdriver.Chrome(service=service, options=o)
    d.set_page_load_timeout(300)
    d.set_script_timeout(60)
    return d, None


def page_wait(driver, predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s (last: %r)\n%s"
                         % (what, last, ctx.gw.web.log()[-2000:]))


@check
def t_browser_page_through_gateway():
    driver, why = browser(ctx.wd)
    if driver is None:
        print("SKIP the browser check: %s" % why, flush=True)
        return
    try:
        from selenium.webdriver.common.by import By  # noqa: PLC0415

        def text():
            return driver.execute_script(
                "return window.ttyhubTest ? window.ttyhubTest.text() : ''") or ""
        # The link's fragment on ttyhub-webd's own page (the gateway's --web-url is a dummy).
        token = link("alice", "h2/web01")
        driver.get("%s/#t=%s&c=h2%%2Fweb01" % (ctx.gw.web.origin, token))
        page_wait(driver, lambda: driver.execute_script(
            "return !!(window.ttyhubTest && window.ttyhubTest.attached())"), "the page to attach")
        page_wait(driver, lambda: re.search(r"web01 \d{12} ", text()), "h2 web01's lines")
        driver.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea").send_keys(
            "gw-browser-typed\n")
        runner.wait_until(lambda: b"gw-browser-typed" in guest("h2", "web01").input(), 60,
                          "the page's keystrokes at h2's web01")
    finally:
        driver.quit()


def main():
    res = runner.Runner()
    for path in (gwhub.sshhub.SSHD, hub.TTYHUBD, hub.FAKE_GUEST, webhub.WEBD):
        if not os.access(path, os.X_OK):
            print("FAIL %s is missing (build it first)" % path, flush=True)
            sys.exit(1)
    wd = ctx.wd = hub.workdir("gateway_web")
    # The socket in a directory any uid may search, so the peer check is what refuses.
    sockdir = tempfile.mkdtemp(prefix="ttyhub-gwweb-")
    os.chmod(sockdir, 0o711)
    hubs = ctx.hubs = gwhub.GwHub(wd, users=("alice", "bob"))
    hubs.add_host("h1", fakes=("web01", "db01"), gateway_line='consoles="web*:rw"')
    hubs.add_host("h2", fakes=("web01",))
    res.on_failure = lambda: print(hubs.logs(), flush=True)
    try:
        hubs.start_hosts()
        ctx.gw = hubs.start_gateway(GW_LINES, web=True,
                                    web_socket=os.path.join(sockdir, "gw-web.sock"))
        ctx.gw.wait_up(["h1", "h2"], user="alice")
        res.run_checks()
    except Exception as e:  # noqa: BLE001 - a set-up failure is a failed run, with logs
        res.failed += 1
        print("FAIL setting up: %s\n%s" % (e, hubs.logs()), flush=True)
    finally:
        hubs.stop()
        shutil.rmtree(sockdir, ignore_errors=True)
    res.finish(wd)


if __name__ == "__main__":
    main()
