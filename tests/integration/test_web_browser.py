#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The web console in a real browser: headless Chromium driven by Selenium (Debian's
chromium, chromium-driver and python3-selenium) on the page ttyhub-webd serves, in front of
a real QEMU guest ("vm", ttyS0 = vm:serial0) held by ttyhubd (--domain-xml, --front-user
root, --web-url pointing at the ttyhub-webd under test), with ttyhub-sshd and OpenSSH
clients on the same console:

* a link minted with `ttyhub web-link vm` opens in the browser, the token leaves the address
  bar, and `echo $((6*7))` typed into the terminal prints 42, which an SSH watcher sees too;
  a pasted command runs as well;
* typing on a `--ro` link's page never reaches the guest;
* "Take write access" on the page moves the writer role from an SSH writer, who is told;
* a reload in the middle of a stream of numbered lines resumes at the page's offset: the two
  page loads together show every line exactly once; so does a page whose connection dropped
  (ttyhub-webd restarted), after it reconnected by itself;
* the session's console list opens a console with a click;
* the page logs no console error and asks nothing of any other origin than ttyhub-webd's
  (the DevTools performance log records every request and WebSocket of the page).

The page's window.ttyhubTest gives the terminal's text as xterm.js holds it (read-only);
keystrokes go through xterm.js's own input element, as a user's would.
"""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest as G  # noqa: E402
import hub  # noqa: E402
import net  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402
import webhub  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMEDRIVER = "/usr/bin/chromedriver"
LOOP_LINES = 400


class Ctx:
    pass


ctx = Ctx()


class PinnedWebFront(webhub.WebFront):
    """A WebFront on a port chosen before ttyhubd starts (its --web-url names it)."""

    def __init__(self, workdir, broker_socket, port, **kw):
        self.pinned = port
        super().__init__(workdir, broker_socket, **kw)

    def prepare(self):
        self.port = self.pinned


def wait(predicate, timeout=60, what="condition"):
    """Poll PREDICATE until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s (last: %r)\n--- ttyhub-webd log ---\n%s"
                         % (what, last, ctx.web.log()[-2000:]))


def browser(wd):
    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1000,700", "--no-first-run", "--no-default-browser-check",
              "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--user-data-dir=" + os.path.join(wd, "chromium")):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = Service(CHROMEDRIVER, log_path=os.path.join(wd, "chromedriver.log"))
    d = webdriver.Chrome(service=service, options=o)
    d.set_page_load_timeout(300)
    d.set_script_timeout(60)
    # Chromium's own start page (chrome:// resources) is not ours to judge: drop its logs.
    d.get("about:blank")
    d.get_log("performance")
    d.get_log("browser")
    return d


def logs():
    """Drain the browser's console and performance logs into ctx (get_log empties them)."""
    ctx.console_log += ctx.driver.get_log("browser")
    ctx.perf_log += ctx.driver.get_log("performance")


def js(script, *args):
    return ctx.driver.execute_script(script, *args)


def text():
    return js("return window.ttyhubTest ? window.ttyhubTest.text() : ''") or ""


def attached():
    return js("return !!(window.ttyhubTest && window.ttyhubTest.attached())")


def status():
    return js("return window.ttyhubTest ? window.ttyhubTest.status() : null") or {}


def mint(console="vm", ro=False):
    """`ttyhub web-link CONSOLE [--ro]` as the local admin: the link it prints."""
    r = ctx.d.cli("web-link", console, *(["--ro"] if ro else []))
    if r.returncode != 0:
        raise AssertionError("ttyhub web-link failed: %r" % r.stderr)
    m = re.search(r"\S+#t=\S+", r.stdout.decode())
    if not m:
        raise AssertionError("ttyhub web-link printed no link: %r" % r.stdout)
    return m.group(0)


def open_link(link):
    """Open LINK in the browser and wait until the page is attached."""
    ctx.driver.get(link)
    wait(attached, what="the page to attach (" + link.split("#")[0] + ")")
    wait(lambda: "t=" not in ctx.driver.current_url.split("#", 1)[-1],
         what="the token to leave the address bar")


def type_keys(keys):
    """Type into the terminal through xterm.js's input element, as a user does."""
    el = ctx.driver.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea")
    el.send_keys(keys)


def answer(line):
    """The output line LINE on the page (not the command's echo)."""
    return lambda: re.search(r"(?m)^" + re.escape(line) + r"\s*$", text())


def ssh_attach(user):
    p = G.Pty(sshhub.ssh_cmd(ctx.front, ctx.key, user))
    p.expect(r"\[ttyhub\] attached to (\S+) (read-write|read-only)", timeout=30)
    return p


def idle():
    """Wait until nobody is attached to vm:serial0 (the previous check's clients are gone)."""
    def free():
        c = ctx.d.console("vm:serial0") or {}
        return c.get("writer") is None and c.get("watchers") == 0
    ctx.d.wait_for(free, timeout=20, what="nobody attached to vm:serial0")


def leave_page():
    ctx.driver.get("about:blank")


@runner.check("a minted link opens the console; typed 'echo $((6*7))' prints 42; an SSH "
              "watcher sees it")
def t_echo():
    idle()
    watcher = ssh_attach("vm+ro")
    try:
        open_link(mint("vm"))
        wait(lambda: status().get("role") == "writer", what="the page to be the writer")
        type_keys("echo $((6*7))\n")
        wait(answer("42"), what="42 on the page")
        watcher.expect(rb"(?m)^42\r*$", timeout=20)
        # A paste (what Ctrl+Shift+V or the browser's menu delivers) goes through xterm.js's
        # paste handling to the guest like typing.
        js("const dt = new DataTransfer(); dt.setData('text/plain', arguments[0]);"
           "document.querySelector('.xterm-helper-textarea').dispatchEvent("
           "new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));",
           "echo PASTED$((3*3))q\n")
        wait(answer("PASTED9q"), what="the pasted command's output on the page")
        watcher.expect(rb"(?m)^PASTED9q\r*$", timeout=20)
        st = status()
        runner.require(st.get("access") == "rw", "status: %r" % st)
    finally:
        watcher.close()
        leave_page()


@runner.check("a --ro link's typing never reaches the guest")
def t_readonly():
    idle()
    writer = ssh_attach("vm")
    try:
        open_link(mint("vm", ro=True))
        wait(lambda: status().get("access") == "ro", what="a read-only status")
        runner.require(status().get("role") == "watcher", "status: %r" % status())
        type_keys("echo RO$((40+2))x\n")
        # The same words from the SSH writer prove the path works and mark the moment; the
        # page's keystrokes, had they gone through, would have been echoed before.
        writer.send(b"echo AFTER$((1+2))y\n")
        wait(answer("AFTER3y"), what="the SSH writer's output on the page")
        writer.expect(rb"(?m)^AFTER3y\r*$", timeout=20)
        seen = writer.transcript
        runner.require(b"RO42x" not in seen and b"echo RO" not in seen,
                       "the read-only page's keystrokes reached the guest:\n%r" % seen[-800:])
        runner.require("RO42x" not in text(), "the page shows RO42x:\n%s" % text()[-800:])
    finally:
        writer.close()
        leave_page()


@runner.check("'Take write access' on the page moves the writer role; the SSH writer is told")
def t_take():
    idle()
    writer = ssh_attach("vm")
    try:
        open_link(mint("vm"))
        wait(lambda: status().get("role") == "watcher" and status().get("writer"),
             what="the page to watch the SSH writer")
        button = ctx.driver.find_element(By.ID, "b-take")
        runner.require(button.is_displayed(), "no take button")
        button.click()
        wait(lambda: status().get("role") == "writer", what="the page to become the writer")
        writer.expect(r"\[ttyhub\] [^\r\n]* took write access", timeout=20)
        type_keys("echo TOOK$((2*3))z\n")
        wait(answer("TOOK6z"), what="the page's command as the new writer")
        writer.expect(rb"(?m)^TOOK6z\r*$", timeout=20)
    finally:
        writer.close()
        leave_page()


def numbers(s, prefix="N"):
    """The numbers of the PREFIX<n> lines of S, in order.  "[ttyhub] ..." notices are lines of
    their own; one that came in the middle of a line split it, so a line of digits alone
    continues the line before it."""
    lines = []
    for line in s.split("\n"):
        if line.startswith("[ttyhub]"):
            continue
        if lines and re.fullmatch(prefix + r"\d*", lines[-1]) and re.fullmatch(r"\d+", line):
            lines[-1] += line
        else:
            lines.append(line)
    return [int(m.group(1)) for m in (re.fullmatch(prefix + r"(\d+)", x) for x in lines) if m]


def loop(prefix, end):
    """A guest loop printing PREFIX1 ... PREFIX<LOOP_LINES>, then END; usleep keeps the stream
    going for seconds, so that a reload or a reconnect falls inside it."""
    return ("i=0; while [ $i -lt %d ]; do i=$((i+1)); echo %s$i; usleep 10000; done; echo %s\n"
            % (LOOP_LINES, prefix, end))


def require_sequence(got, what):
    runner.require(got == list(range(1, LOOP_LINES + 1)),
                   "lines lost or repeated across %s: %d lines, first problems %r"
                   % (what, len(got), [(i + 1, n) for i, n in enumerate(got) if n != i + 1][:5]))


@runner.check("a reload in the middle of a stream loses and repeats nothing")
def t_reload():
    idle()
    try:
        open_link(mint("vm"))
        wait(lambda: status().get("role") == "writer", what="the page to be the writer")
        type_keys(loop("N", "LOOP$((1+1))DONE"))
        wait(lambda: len(numbers(text())) >= 20, what="the first numbered lines")
        # The old page goes on rendering (and storing its position) until the new one replaces
        # it: its text is taken as it is hidden, kept in the tab's sessionStorage.
        js("window.testOldPage = true; window.addEventListener('pagehide', () => "
           "sessionStorage.setItem('test.before', window.ttyhubTest.transcript())); "
           "location.reload();")
        wait(lambda: js("return !window.testOldPage && document.readyState === 'complete'")
             and attached(), what="the reloaded page to attach")
        wait(lambda: "LOOP2DONE" in text(), timeout=120, what="the end of the loop")
        before = js("return sessionStorage.getItem('test.before')") or ""
        after = js("return window.ttyhubTest.transcript()")
        got_before = numbers(before)
        runner.require(0 < len(got_before) < LOOP_LINES,
                       "the reload was not mid-stream: %d lines before it" % len(got_before))
        # The new page starts where the old one stopped, possibly inside a line, after its own
        # "[ttyhub] ..." notices (each on a line of its own).
        lines = after.split("\n")
        while lines and lines[0].startswith("[ttyhub]"):
            lines.pop(0)
        require_sequence(numbers(before + "\n".join(lines)), "the reload")
    finally:
        leave_page()


@runner.check("a dropped connection (ttyhub-webd restarted) is retried and resumes: nothing "
              "lost or repeated")
def t_reconnect():
    idle()
    try:
        open_link(mint("vm"))
        wait(lambda: status().get("role") == "writer", what="the page to be the writer")
        type_keys(loop("R", "RLOOP$((2+2))DONE"))
        wait(lambda: len(numbers(text(), "R")) >= 20, what="the first numbered lines")
        ctx.web.stop()
        runner.require("RLOOP4DONE" not in text(), "the loop ended before the connection dropped")
        ctx.web.start()
        wait(lambda: "RLOOP4DONE" in text(), timeout=120, what="the end of the loop")
        require_sequence(numbers(text(), "R"), "the reconnect")
    finally:
        leave_page()


@runner.check("the console list shows the session's consoles and opens one with a click")
def t_list():
    idle()
    try:
        open_link(mint("vm"))
        leave_page()
        ctx.driver.get(ctx.web.origin + "/")
        link = wait(lambda: ctx.driver.find_elements(By.CSS_SELECTOR, "#consoles a"),
                    what="the console list")
        names = [a.get_attribute("data-console") for a in link]
        runner.require(any(n.startswith("vm") for n in names), "list: %r" % names)
        entry = ctx.driver.find_element(By.ID, "consoles").text
        runner.require("read-write" in entry, "the list does not say the access: %r" % entry)
        link[0].click()
        wait(attached, what="the listed console to attach")
    finally:
        leave_page()


@runner.check("no console errors; no request leaves ttyhub-webd's origin")
def t_clean():
    logs()
    errors = [e for e in ctx.console_log if e.get("level") in ("SEVERE", "WARNING")]
    runner.require(not errors, "browser console:\n%s"
                   % "\n".join(e.get("message", "") for e in errors))
    origin = ctx.web.origin
    ws_origin = origin.replace("http", "ws", 1)
    urls = []
    for e in ctx.perf_log:
        m = json.loads(e["message"])["message"]
        p = m.get("params", {})
        if m.get("method") == "Network.requestWillBeSent":
            urls.append(p["request"]["url"])
        elif m.get("method") == "Network.webSocketCreated":
            urls.append(p["url"])
    runner.require(any(u.startswith(ws_origin + "/ws") for u in urls),
                   "the performance log saw no WebSocket: %r" % urls[:20])
    foreign = [u for u in urls if not (u == origin or u.startswith(origin + "/")
                                       or u.startswith(ws_origin + "/"))
               and not u.startswith("about:")]
    runner.require(not foreign, "requests to elsewhere: %r" % foreign)


def main():
    res = runner.Runner()
    for path in (webhub.WEBD, CHROMEDRIVER, os.path.join(webhub.STATIC, "xterm.js")):
        if not os.access(path, os.R_OK):
            print("FAIL %s is missing (build it first)" % path, flush=True)
            sys.exit(1)
    wd = ctx.wd = hub.workdir("webb")
    ctx.console_log, ctx.perf_log = [], []
    g = G.Guest(wd, "vm")
    xmldir = os.path.join(wd, "xml")
    os.mkdir(xmldir)
    with open(os.path.join(xmldir, "vm.xml"), "w") as f:
        f.write(g.domain_xml("domain"))
    port = net.free_port()
    url = "http://127.0.0.1:%d/" % port
    d = ctx.d = hub.Daemon(wd, "--domain-xml", xmldir, "--front-user", "root",
                           "--web-url", url).start()
    ctx.driver = None
    try:
        ctx.key, pub = sshhub.make_key(wd, "alice")
        ctx.front = sshhub.SshFront(os.path.join(wd, "sshd"), d.socket,
                                    ['consoles="vm*:rw" ' + pub])
        ctx.web = PinnedWebFront(os.path.join(wd, "webd"), d.socket, port)
        d.wait_for(lambda: (d.console("vm:serial0") or {}).get("state") == "connected",
                   timeout=30, what="vm:serial0 connected")
        # The guest's shell must be up before the page types into it.
        p = G.Pty(d.cli_cmd("attach", "vm"))
        try:
            p.expect(r"attached to \S+ read-write", timeout=20)
            G.sync_shell(p, timeout=120)
            p.send(b"\x05c.")
            runner.require(p.wait(10) == 0, "ttyhub attach did not detach")
        finally:
            p.close()
        ctx.driver = browser(wd)
        res.on_failure = lambda: print(
            "--- ttyhub-webd log tail ---\n%s\n--- ttyhubd log tail ---\n%s\n--- page ---\n%s"
            % (ctx.web.log()[-2500:], d.log()[-1500:], text()[-1500:] if ctx.driver else ""),
            flush=True)
        # Keep the logs of every check for t_clean (the driver's buffers are bounded).
        res.after_each = logs
        res.run_checks()
    finally:
        if ctx.driver:
            ctx.driver.quit()
        d.stop()
        g.stop()
    res.finish(wd)


if __name__ == "__main__":
    main()
