# SPDX-License-Identifier: MIT
"""The gateway (issue 16): a console reached through the gateway, directly on its host, and
the ovirt-vmconsole way, measured side by side.

One host (tests/integration/gwhub.py): ttyhubd and ttyhub-sshd on 127.0.1.1, with three
synthetic guests: "fg" (tests/fake-guest, unpaced, 1,024-byte numbered lines: throughput),
"echo" (`sshload guest --echo`: latency) and "fp" (fake-guest paced at PACED bytes/s: the
cost of many sessions).  Three ways to a console, every user hop OpenSSH's or libssh's
client with aes128-gcm and an ed25519 key, no tty:
* direct: the user logs in to the host's ttyhub-sshd;
* ttyhub gateway: the user logs in to the gateway (ttyhubd --no-consoles + ttyhub-sshd
  --gateway on 127.0.0.1) as h1/NAME; the gateway carries the session over its one SSH
  session to the host (a channel per user session, libssh's default cipher);
* ovirt way: the user logs in to a private OpenSSH sshd on the gateway whose ForceCommand
  runs `ssh` to the host's ttyhub-sshd, a new SSH connection per session (how
  ovirt-vmconsole-proxy reaches ovirt-vmconsole-host; OpenSSH's default cipher for that hop).

Figures:
* one reader's throughput (as b_throughput: `ssh -T NAME+ro@` into a pipe read by sshload,
  the bytes delivered in a window after a warm-up, median of the runs, paths interleaved);
* keystroke latency at the writer (as b_latency: `sshload lat`, one byte then its echo);
* the gateway's cost per forwarded session: N readers (`sshload read -n N`) of the paced
  console through the gateway, and the same through the ovirt way; memory (PSS, so that
  the forked sshd and ssh processes of the ovirt way are not counted once per process for
  the pages they share) and CPU of the gateway's processes, per session.  ttyhub: the
  gateway's ttyhub-sshd and ttyhubd; ovirt: every process below its sshd (a session sshd
  and an ssh client per session).
"""

import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402

TITLE = "Gateway: through the gateway vs directly to the host, and the ovirt way"
ORDER = 85
LINE = 1024
PACED = 20_000          # bytes/s of "fp", each of the N readers gets all of it
HOST_FRONT_ARGS = ["--max-channels", "1000", "--max-sessions-per-key", "100000",
                   "--max-per-source", "64", "--max-startups", "256"]
GW_FRONT_ARGS = ["--max-sessions-per-key", "100000", "--max-per-source", "64",
                 "--max-startups", "256"]
PATHS = ("direct", "ttyhub gateway", "ovirt way")


def _ssh_to(addr, port, key, user):
    """benchlib.ssh_argv, to ADDR instead of 127.0.0.1."""
    argv = benchlib.ssh_argv(port, key, user)
    assert argv[-1] == "127.0.0.1", argv
    return argv[:-1] + [addr]


def _banner(port):
    """The SSH identification line whatever listens on 127.0.0.1:PORT sends (b"" if none)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"SSH-2.0-ttyhub-bench-probe\r\n")
            buf = b""
            while b"\n" not in buf and len(buf) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                buf += chunk
            return buf.split(b"\n", 1)[0]
    except OSError:
        return b""


class Setup:
    """The host, the gateway and one ovirt-way sshd per target user name."""

    def __init__(self, ctx, wd):
        import gwhub  # noqa: PLC0415 - after bench.py set TTYHUB_BUILD
        self.ctx = ctx
        self.wd = wd
        self.g_fg = benchlib.FakeGuest(ctx, os.path.join(wd, "fg.sock"), line_length=LINE,
                                       tag="fg").start()
        self.g_fp = benchlib.FakeGuest(ctx, os.path.join(wd, "fp.sock"), rate=PACED,
                                       line_length=LINE, tag="fp").start()
        self.g_echo = benchlib.EchoGuest(ctx, os.path.join(wd, "echo.sock"), echo=True).start()
        self.hubs = gwhub.GwHub(os.path.join(wd, "hubs"), users=("bench",))
        rw = 'consoles="*:rw"'
        self.host = self.hubs.add_host(
            "h1", sockets={"fg": self.g_fg.sock, "fp": self.g_fp.sock,
                           "echo": self.g_echo.sock},
            gateway_line=rw, user_lines={"bench": rw}, front_args=HOST_FRONT_ARGS)
        self.hubs.start_hosts()
        self.gw = self.hubs.start_gateway({"bench": rw}, front_args=GW_FRONT_ARGS)
        self.gw.wait_up(["h1"])
        self.key = self.hubs.keys["bench"][0]
        self.ovirt = {}

    def ovirt_sshd(self, user):
        """The ovirt-way sshd whose sessions run `ssh USER@host` (made once per USER)."""
        if user not in self.ovirt:
            hop = ["ssh", "-F", "/dev/null"]
            for o in benchlib.SSH_CLIENT_OPTIONS:
                hop += ["-o", o]
            hop += ["-i", self.key, "-T", "-p", str(self.host.front.port), "-l", user,
                    self.host.address]
            o = benchlib.OpenSsh(self.ctx.workdir("ovirt"), force_command="exec " + " ".join(hop))
            self.ovirt[user] = o
            # Its port was free when chosen; make sure it is this sshd that listens there.
            banner = _banner(o.port)
            if not o.alive() or not banner.startswith(b"SSH-2.0-OpenSSH"):
                raise AssertionError("the ovirt-way sshd does not serve on port %d (%r):\n%s"
                                     % (o.port, banner, o.log()[-1500:]))
        return self.ovirt[user]

    def reader_argv(self, path, console):
        """A reader of CONSOLE (read-only) by PATH: ssh argv writing it to stdout."""
        if path == "direct":
            return _ssh_to(self.host.address, self.host.front.port, self.key, console + "+ro")
        if path == "ttyhub gateway":
            return benchlib.ssh_argv(self.gw.front.port, self.key, "h1/%s+ro" % console)
        o = self.ovirt_sshd(console + "+ro")
        return benchlib.ssh_argv(o.port, o.key, "root")

    def sshload_target(self, path, user):
        """sshload's --host/--port/--user/--key for USER's session by PATH."""
        if path == "direct":
            return ["--host", self.host.address, "--port", str(self.host.front.port),
                    "--key", self.key], user
        if path == "ttyhub gateway":
            return ["--host", "127.0.0.1", "--port", str(self.gw.front.port),
                    "--key", self.key], "h1/" + user
        o = self.ovirt_sshd(user)
        return ["--host", "127.0.0.1", "--port", str(o.port), "--key", o.key], "root"

    def host_pids(self):
        return [self.host.daemon.pid(), self.host.front.pid]

    def gateway_pids(self):
        return [self.gw.front.pid, self.gw.daemon.pid()]

    def server_pids(self, path):
        """Every process serving PATH's sessions (the host's, and the gateway's)."""
        if path == "direct":
            return self.host_pids()
        if path == "ttyhub gateway":
            return self.host_pids() + self.gateway_pids()
        return self.host_pids() + [p for o in self.ovirt.values() for p in o.session_pids()]

    def stop(self):
        for o in self.ovirt.values():
            o.stop()
        self.hubs.stop()
        for g in (self.g_fg, self.g_fp, self.g_echo):
            g.stop()


def throughput(ctx, st, sec):
    import b_throughput  # noqa: PLC0415
    reps = 1 if ctx.quick else 3
    warm, dur = (0.5, 2.0) if ctx.quick else (1.0, 4.0)
    log = open(os.path.join(st.wd, "readers.log"), "ab")
    res = {p: [] for p in PATHS}
    try:
        for rep in range(reps):
            for path in PATHS:
                ctx.log("gateway throughput: %s, run %d/%d" % (path, rep + 1, reps))
                m = b_throughput._measure(ctx, st.reader_argv(path, "fg"),
                                          lambda path=path: st.server_pids(path), warm, dur,
                                          log)
                ctx.log("  %.0f MB/s, server CPU %.2f, lost %d silent / %d announced lines"
                        % (m["mbps"], m["server_cpu"], m["lost_silent"],
                           m["lost_announced"]))
                res[path].append(m)
    finally:
        log.close()

    def med(path, key):
        vals = [m[key] for m in res[path] if m[key] is not None]
        return benchlib.median(vals) if vals else None

    d, g, o = (med(p, "mbps") for p in PATHS)
    sec.row("1 reader through the gateway vs directly", g, d, "direct to the host", "MB/s")
    sec.row("1 reader through the gateway vs the ovirt way", g, o, "ovirt way", "MB/s",
            target=">= 1.0× ovirt way", ok=(g is not None and o is not None and g >= o))
    sec.row("server CPU per GB, gateway path vs ovirt way (lower is better)",
            med("ttyhub gateway", "cpu_per_gb"), med("ovirt way", "cpu_per_gb"), "ovirt way",
            "CPU s/GB")
    silent = sum(m["lost_silent"] for p in ("direct", "ttyhub gateway") for m in res[p])
    sec.row("lines lost without a notice (ttyhub readers)", silent, None, "", "lines",
            target="0", ok=silent == 0)
    sec.note("Throughput: unpaced fake-guest, %d-byte lines, window %g s after %g s, median "
             "of %d runs; every run: %s." % (LINE, dur, warm, reps, "; ".join(
                 "%s %s MB/s" % (p, "/".join("%.0f" % m["mbps"] for m in res[p]))
                 for p in PATHS)))
    sec.plot("gateway_throughput.png", "One reader, unpaced guest", "path", "MB/s delivered",
             {"MB/s": [(p, med(p, "mbps")) for p in PATHS]}, kind="bar")


def _ms(values, p):
    v = [x for x in values if x >= 0]
    return benchlib.percentile(v, p) / 1000.0 if v else None


def latency(ctx, st, sec):
    count = 100 if ctx.quick else 300
    res = {}
    for path in PATHS:
        target, user = st.sshload_target(path, "echo")
        ctx.log("gateway latency: %s" % path)
        d, _ = benchlib.sshload_run(ctx, "lat", ["--gap-ms", "2:6", "--settle-ms", "1000",
                                                 "--count", str(count), "--writer-user", user]
                                    + target)
        if d["timeouts"]:
            raise AssertionError("%s: %d keystrokes never came back" % (path, d["timeouts"]))
        res[path] = d["writer_us"]
        ctx.log("  p50 %.3f p99 %.3f ms" % (_ms(res[path], 50), _ms(res[path], 99)))
    for p in (50, 99):
        sec.row("keystroke echo p%d through the gateway vs directly" % p,
                _ms(res["ttyhub gateway"], p), _ms(res["direct"], p), "direct to the host",
                "ms")
        sec.row("keystroke echo p%d through the gateway vs the ovirt way" % p,
                _ms(res["ttyhub gateway"], p), _ms(res["ovirt way"], p), "ovirt way", "ms")
    added = _ms(res["ttyhub gateway"], 99) - _ms(res["direct"], 99)
    sec.row("p99 the gateway adds over the direct path", added, None, "", "ms",
            target="< 1 ms", ok=added < 1.0)
    sec.note("Latency: `sshload lat`, %d keystrokes 2-6 ms apart, one byte each, echoed at "
             "once by the guest; the writer's write to the kernel receive time of the echo."
             % count)
    sec.plot("gateway_latency.png", "Keystroke to echo", "path", "ms",
             {"p50": [(p, _ms(res[p], 50)) for p in PATHS],
              "p99": [(p, _ms(res[p], 99)) for p in PATHS]}, kind="bar")


def _gateway_cost(ctx, st, path, n, window):
    """N readers of fp by PATH: (PSS KiB per session, CPU % per session, lines lost, B/s each
    reader got).  ttyhub's gateway must keep up with the guest; a peer that does not is a
    figure (its readers' rate), not a failure."""
    target, user = st.sshload_target(path, "fp+ro")
    if path == "ttyhub gateway":
        def pids():
            return st.gateway_pids()
    else:
        o = st.ovirt_sshd("fp+ro")

        def pids():
            return [o.proc.pid] + o.session_pids()
    mem0 = benchlib.mem_of(pids(), benchlib.pss_kib)
    load = benchlib.Load(ctx, target + ["--user", user, "-n", str(n), "--parallel", "4"],
                         line_length=LINE)
    try:
        load.wait_connected(300)
        time.sleep(2)  # every reader past its replay
        a, ca = load.mark(), benchlib.cpu_of(pids())
        time.sleep(window)
        b, cb = load.mark(), benchlib.cpu_of(pids())
        mem = benchlib.mem_of(pids(), benchlib.pss_kib)
    finally:
        load.stop()
    w = benchlib.window(a, b)
    lost = sum(w["lost_silent"]) + sum(w["lost_announced"])
    got = sum(w["bytes"]) / w["seconds"] / n
    if got < PACED * 0.8 and path == "ttyhub gateway":
        raise AssertionError("%s, %d readers: %.0f B/s each, the guest writes %d"
                             % (path, n, got, PACED))
    return (mem - mem0) / n, 100.0 * (cb - ca) / w["seconds"] / n, lost, got


def sessions(ctx, st, sec):
    counts = (1, 10) if ctx.quick else (1, 10, 50)
    window = 3 if ctx.quick else 5
    res = {}
    for path in ("ttyhub gateway", "ovirt way"):
        for n in counts:
            ctx.log("gateway cost: %s, %d sessions" % (path, n))
            res[path, n] = _gateway_cost(ctx, st, path, n, window)
            ctx.log("  %.0f KiB and %.2f%% CPU per session, %d lines lost, %.0f B/s each"
                    % res[path, n])
            if path == "ovirt way":
                # Its sessions end with their sshload: wait until they are gone, so that
                # the next baseline is the idle sshd.
                o = st.ovirt_sshd("fp+ro")
                deadline = time.monotonic() + 60
                while o.session_pids() and time.monotonic() < deadline:
                    time.sleep(0.1)
    for n in counts:
        g, o = res["ttyhub gateway", n], res["ovirt way", n]
        sec.row("gateway memory per forwarded session, %d sessions (PSS)" % n, g[0], o[0],
                "ovirt way", "KiB")
        sec.row("gateway CPU per forwarded session, %d sessions, %d B/s each" % (n, PACED),
                g[1], o[1], "ovirt way", "% of a core")
        sec.row("what each reader got, %d sessions (the guest writes %d B/s)" % (n, PACED),
                g[3], o[3], "ovirt way", "B/s")
    top = counts[-1]
    sec.rows[-3]["target"] = "< ovirt way"
    sec.rows[-3]["ok"] = res["ttyhub gateway", top][0] < res["ovirt way", top][0]
    lost = sum(res[k][2] for k in res if k[0] == "ttyhub gateway")
    sec.row("lines lost by the gateway's readers", lost, None, "", "lines", target="0",
            ok=lost == 0)
    sec.note("Cost per session: N readers (`sshload read`, libssh, %s) of a console paced at "
             "%d B/s; the difference in the gateway's PSS between N sessions and none, over "
             "N, and its CPU over a %d s window, over N.  ttyhub: the gateway's ttyhub-sshd "
             "and ttyhubd; ovirt way: the sshd and everything below it (a session sshd and "
             "an ssh client per session)." % (benchlib.CIPHER, PACED, window))
    sec.plot("gateway_sessions.png", "Gateway memory per forwarded session", "sessions",
             "KiB (PSS)", {p: [(n, res[p, n][0]) for n in counts]
                           for p in ("ttyhub gateway", "ovirt way")})


def run(ctx):
    os.environ["TTYHUB_BUILD"] = ctx.build
    sys.path.insert(0, os.path.join(HERE, "..", "integration"))
    import gwhub  # noqa: PLC0415
    if not gwhub.gateway_supported():
        raise AssertionError("this build's ttyhub-sshd has no --gateway")
    sec = benchlib.Section(TITLE)
    st = Setup(ctx, ctx.workdir("gateway"))
    try:
        throughput(ctx, st, sec)
        st.g_fg.pause()  # an unpaced guest would keep a core busy through the rest
        latency(ctx, st, sec)
        sessions(ctx, st, sec)
    finally:
        st.stop()
    sec.note("One host, one gateway and the users on one machine (loopback): the gateway's "
             "figures include the host's work for the direct and gateway paths alike.")
    r = subprocess.run(["ssh", "-V"], capture_output=True, text=True)
    sec.note("ovirt way: OpenSSH sshd with `ForceCommand exec ssh ... -l NAME 127.0.1.1` "
             "(%s), one SSH connection from the gateway to the host per user session."
             % (r.stderr.strip() or "OpenSSH"))
    return sec


if __name__ == "__main__":
    benchlib.run_standalone(run)
