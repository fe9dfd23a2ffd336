# SPDX-License-Identifier: MIT
"""Connection setup (issue 7, item 6): TCP connect -> first console byte, ttyhub-sshd versus
OpenSSH+socat.

The guest is `sshload guest --greet`: it writes one line on every accept and nothing else,
so the first console byte exists at once on both paths: ttyhub replays it from its ring
(the default replay of 10 lines), socat gets it when it connects.  (This guest accepts any
number of clients, so a socat left over from the previous OpenSSH session never holds up
the next one.)  `sshload setup` opens the connections one after another (libssh client API,
aes128-gcm, ed25519 key), each from before the TCP connect to the first byte outside
`[ttyhub]` notice lines, with the phases: key exchange (TCP connect + banners + KEX), user
authentication, channel open, shell request.  OpenSSH forks and re-executes a privilege-
separated sshd per connection; ttyhub-sshd serves every connection in one process.

No target in the issue: the figures are reported with the ratio (lower is better).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402

TITLE = "Connection setup: TCP connect to first console byte"
ORDER = 50
PHASES = (("kex_us", "key exchange"), ("auth_us", "authentication"),
          ("open_us", "channel open"), ("shell_us", "shell request"))


def _setup(ctx, port, user, key, count):
    d, err = benchlib.sshload_run(ctx, "setup", [
        "--port", str(port), "--user", user, "--key", key, "--count", str(count),
        "--gap-ms", "20", "--timeout-ms", "20000"])
    if d["failed"]:
        raise AssertionError("%d of %d connections failed: %s" % (d["failed"], count, err[-1000:]))
    return d


def _ms(values, p):
    return benchlib.percentile(values, p) / 1000.0


def run(ctx):
    sec = benchlib.Section(TITLE)
    count = 15 if ctx.quick else 50
    wd = ctx.workdir("setup")
    greet = "guest console ready\r\n"

    g = benchlib.EchoGuest(ctx, os.path.join(wd, "hub.sock"), greet=greet).start()
    hub = benchlib.Ttyhub(ctx, os.path.join(wd, "hub"), {"vm": g.sock})
    ctx.log("setup: ttyhub, %d connections" % count)
    th = _setup(ctx, hub.port, "vm+ro", hub.key, count)
    hub.stop()
    g.stop()

    g = benchlib.EchoGuest(ctx, os.path.join(wd, "ossh.sock"), greet=greet, multi=True).start()
    ossh = benchlib.OpenSsh(os.path.join(wd, "openssh"), sock=g.sock)
    ctx.log("setup: OpenSSH+socat, %d connections" % count)
    os_ = _setup(ctx, ossh.port, "root", ossh.key, count)
    ossh.stop()
    g.stop()

    for p in (50, 99):
        sec.row("connect -> first console byte, p%d" % p, _ms(th["first_byte_us"], p),
                _ms(os_["first_byte_us"], p), "OpenSSH+socat", "ms")
    for key, name in PHASES:
        sec.row("%s, p50" % name, _ms(th[key], 50), _ms(os_[key], 50), "OpenSSH+socat", "ms")
    after = [t - (k + a + o + s) for t, k, a, o, s in zip(
        th["first_byte_us"], th["kex_us"], th["auth_us"], th["open_us"], th["shell_us"])]
    after_o = [t - (k + a + o + s) for t, k, a, o, s in zip(
        os_["first_byte_us"], os_["kex_us"], os_["auth_us"], os_["open_us"], os_["shell_us"])]
    sec.row("shell request -> first console byte, p50", _ms(after, 50), _ms(after_o, 50),
            "OpenSSH+socat", "ms")
    tail = _ms(after, 50)
    if tail > 0.5 * _ms(th["first_byte_us"], 50):
        sec.note("Most of ttyhub's setup time is between the shell request and the first "
                 "console byte: %.1f of %.1f ms (p50)." % (tail, _ms(th["first_byte_us"], 50)))
    sec.note("%d connections per path, one after another, 20 ms apart; lower is better.  "
             "Client: sshload (libssh client API), %s, ed25519 keys; the clocks start before "
             "the TCP connect." % (count, benchlib.CIPHER))
    sec.note("ttyhub: the first console byte is the replayed greeting line, after the "
             "`[ttyhub] attached` notice; OpenSSH+socat: the greeting the guest writes when "
             "socat connects.")
    sec.plot("setup.png", "Connect to first console byte", "", "ms",
             {"p50": [("ttyhub", _ms(th["first_byte_us"], 50)),
                      ("OpenSSH+socat", _ms(os_["first_byte_us"], 50))],
              "p99": [("ttyhub", _ms(th["first_byte_us"], 99)),
                      ("OpenSSH+socat", _ms(os_["first_byte_us"], 99))]}, kind="bar")
    return sec
