#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The systemd units, the installation and the man pages, as a packager and an operator
meet them (no systemd as PID 1 is needed; nothing is started with systemctl):

* `cmake --install --prefix /usr` into a DESTDIR holds the binaries, the six units (with
  ExecStart= naming the installed binaries), the sysusers.d file, /etc/ttyhub (the three
  commented configs and the example access file), the five man pages and ttyhub-webd's page
  (/usr/share/ttyhub/web: index.html, app.js, app.css and the pinned xterm.js files);
* every path, user and group the units name is installed, declared in the sysusers.d file
  (which `systemd-sysusers --root` accepts) or managed by the units themselves, and the
  units agree with each other (broker socket, front users, socket group, host key in the
  state directory, log directory; ttyhub-webd's user may connect to the broker socket);
* `systemd-analyze verify` is clean, with the man pages of Documentation= found in the
  DESTDIR; a unit whose ExecStart= is missing is rejected (the check can fail);
* `systemd-analyze security --offline=yes` scores each service <= 1.5;
* every service is Type=notify with WatchdogSec=, reloads with SIGHUP, and every socket is
  Accept=no; each daemon, started from its unit's ExecStart= by systemd-socket-activate with
  a notify socket and WATCHDOG_USEC, sends READY=1, STATUS=, WATCHDOG=1, RELOADING=1 and
  READY=1 on SIGHUP, STOPPING=1 on SIGTERM, and exits 0; ttyhub-webd serves on the listening
  socket it was passed (fd 3, close-on-exec, no listener of its own) and answers GET / with
  the page and its Content-Security-Policy (over TLS when its unit names a certificate);
* the man pages render with `man -l`, name every option of the programs' --help, every
  escape command, the access file's options, exit codes, files and examples;
* the commented configs list every option with the default --help gives.
"""

import getpass
import glob
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import net  # noqa: E402
import runner  # noqa: E402

TOP = os.path.abspath(os.path.join(hub.HERE, "..", ".."))
SERVICES = ["ttyhubd.service", "ttyhub-sshd.service", "ttyhub-webd.service"]
SOCKETS = ["ttyhubd.socket", "ttyhub-sshd.socket", "ttyhub-webd.socket"]
FRONTS = {"ttyhub-sshd.service": "ttyhub-ssh", "ttyhub-webd.service": "ttyhub-web"}
WEB_FILES = ["index.html", "app.js", "app.css", "xterm.js", "xterm.css", "addon-fit.js"]
UNITS = SERVICES + SOCKETS
MAN_PAGES = {"ttyhubd": "8", "ttyhub-sshd": "8", "ttyhub-webd": "8", "ttyhub": "1",
             "ttyhub-access": "5"}
MAX_EXPOSURE = 1.5


class Ctx:
    pass


ctx = Ctx()


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, **kw)


def text(b):
    return b.decode(errors="replace") if isinstance(b, bytes) else b


def parse_unit(path):
    """A unit file as {section: {key: [values...]}} (keys may repeat)."""
    sections = {}
    current = None
    with open(path) as f:
        raw = f.read()
    # A backslash at the end of a line continues it (systemd.syntax(7)).
    for line in re.sub(r"\\\n[ \t]*", " ", raw).splitlines():
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        m = re.match(r"^\[(.+)\]$", line)
        if m:
            current = sections.setdefault(m.group(1), {})
            continue
        assert current is not None and "=" in line, "%s: bad line %r" % (path, line)
        k, v = line.split("=", 1)
        current.setdefault(k.strip(), []).append(v.strip())
    return sections


def one(unit, section, key):
    vals = ctx.units[unit].get(section, {}).get(key)
    assert vals, "%s: no %s= in [%s]" % (unit, key, section)
    return vals[-1]


def exec_argv(unit):
    return one(unit, "Service", "ExecStart").split()


def opt_value(argv, opt):
    assert argv.count(opt) == 1, "%r: expected %s once" % (argv, opt)
    return argv[argv.index(opt) + 1]


def opt_values(argv, opt):
    """Every value of a repeatable option (OPT V or OPT=V; V may be a comma list)."""
    out = []
    for i, a in enumerate(argv):
        if a == opt and i + 1 < len(argv):
            out += argv[i + 1].split(",")
        elif a.startswith(opt + "="):
            out += a[len(opt) + 1:].split(",")
    return out


def installed(path):
    """The DESTDIR copy of an absolute path."""
    return os.path.join(ctx.dest, path.lstrip("/"))


def find_installed(name):
    hits = [p for p in glob.glob(os.path.join(ctx.dest, "**", name), recursive=True)]
    assert len(hits) == 1, "%s installed %d times: %r" % (name, len(hits), hits)
    return hits[0]


# --- installation -------------------------------------------------------------------------

def t_destdir_install():
    r = run(["cmake", "--install", hub.BUILD, "--prefix", "/usr"],
            env=dict(os.environ, DESTDIR=ctx.dest))
    assert r.returncode == 0, text(r.stdout + r.stderr)
    for path in ["/usr/sbin/ttyhubd", "/usr/sbin/ttyhub-sshd", "/usr/sbin/ttyhub-webd",
                 "/usr/bin/ttyhub"]:
        assert os.access(installed(path), os.X_OK), "%s not installed:\n%s" % (path, text(r.stdout))
    ctx.unit_paths = {}
    for u in UNITS:
        p = find_installed(u)
        assert re.search(r"/lib/systemd/system/%s$" % re.escape(u), p), p
        ctx.unit_paths[u] = p
    ctx.units = {u: parse_unit(p) for u, p in ctx.unit_paths.items()}
    ctx.sysusers = find_installed("ttyhub.conf")
    assert ctx.sysusers.endswith("/lib/sysusers.d/ttyhub.conf"), ctx.sysusers
    for f in ["ttyhubd.conf", "ttyhub-sshd.conf", "ttyhub-webd.conf", "access"]:
        p = installed("/etc/ttyhub/" + f)
        assert os.path.isfile(p), "/etc/ttyhub/%s not installed" % f
        assert os.stat(p).st_mode & 0o7777 == 0o644, "%s: mode %o" % (f, os.stat(p).st_mode)
    for page, sec in MAN_PAGES.items():
        p = installed("/usr/share/man/man%s/%s.%s" % (sec, page, sec))
        assert os.path.isfile(p) and os.path.getsize(p) > 1000, "%s(%s) not installed" % (page, sec)
    # ttyhub-webd's page: its default --static-dir, world-readable, nothing executable.
    for f in WEB_FILES:
        p = installed("/usr/share/ttyhub/web/" + f)
        assert os.path.isfile(p) and os.path.getsize(p) > 0, "web/%s not installed" % f
        assert os.stat(p).st_mode & 0o7777 == 0o644, "web/%s: mode %o" % (f, os.stat(p).st_mode)


def t_reinstall_keeps_config():
    access = installed("/etc/ttyhub/access")
    with open(access, "a") as f:
        f.write("# operator's edit\n")
    r = run(["cmake", "--install", hub.BUILD, "--prefix", "/usr"],
            env=dict(os.environ, DESTDIR=ctx.dest))
    assert r.returncode == 0, text(r.stdout + r.stderr)
    with open(access) as f:
        assert f.read().endswith("# operator's edit\n"), "reinstall overwrote /etc/ttyhub/access"


def t_units_name_installed_things():
    users = set()
    with open(ctx.sysusers) as f:
        for line in f:
            fields = line.split()
            if fields and fields[0] == "u":
                users.add(fields[1])
    assert users == {"ttyhub", "ttyhub-ssh", "ttyhub-web"}, users
    for s in SERVICES:
        for key in ["ExecStart", "ExecReload"]:
            for v in ctx.units[s]["Service"][key]:
                binary = v.lstrip("-@:+!").split()[0]
                local = installed(binary) if binary.startswith("/usr/") else binary
                assert os.access(local, os.X_OK), "%s: %s=%s is not installed" % (s, key, binary)
        assert one(s, "Service", "User") in users and one(s, "Service", "Group") in users
        for v in exec_argv(s):
            if v.startswith("/etc/"):
                assert os.path.exists(installed(v)), "%s names %s, not installed" % (s, v)
        assert one(s, "Service", "ConfigurationDirectory") == "ttyhub"
    d_argv, f_argv = exec_argv("ttyhubd.service"), exec_argv("ttyhub-sshd.service")
    assert d_argv[0] == "/usr/sbin/ttyhubd" and f_argv[0] == "/usr/sbin/ttyhub-sshd"
    broker = one("ttyhubd.socket", "Socket", "ListenStream")
    assert broker == "/run/ttyhub/ttyhubd.sock"
    if "--socket" in d_argv:
        assert opt_value(d_argv, "--socket") == broker
    assert opt_value(f_argv, "--broker") == broker
    front = one("ttyhub-sshd.service", "Service", "User")
    assert front == "ttyhub-ssh"
    # Both fronts are front users of the broker (authorize, redeem; speak for principals).
    fronts = opt_values(d_argv, "--front-user")
    for s, user in FRONTS.items():
        assert one(s, "Service", "User") == user, s
        assert user in fronts, "ttyhubd's --front-user %r lacks %s" % (fronts, user)
    assert one("ttyhubd.service", "Service", "User") == "ttyhub"
    assert one("ttyhubd.socket", "Socket", "SocketUser") == "ttyhub"
    assert one("ttyhubd.socket", "Socket", "SocketGroup") == front
    assert one("ttyhubd.socket", "Socket", "SocketMode") == "0660"
    assert "/run/" + one("ttyhubd.service", "Service", "RuntimeDirectory") == \
        os.path.dirname(broker)
    assert one("ttyhubd.service", "Service", "RuntimeDirectoryPreserve") == "yes", \
        "stopping the service would delete the socket unit's socket"
    assert "/var/log/" + one("ttyhubd.service", "Service", "LogsDirectory") == \
        opt_value(d_argv, "--log-dir")
    groups = one("ttyhubd.service", "Service", "SupplementaryGroups").split()
    # libvirt is libvirtd management (root-equivalent): a documented drop-in only.
    assert "libvirt" not in groups, groups
    assert groups == ["libvirt-qemu"], groups
    key = opt_value(f_argv, "--host-key")
    assert os.path.dirname(key) == "/var/lib/" + one("ttyhub-sshd.service", "Service",
                                                     "StateDirectory"), key
    # ttyhubd enforces the access file (its default, /etc/ttyhub/access); the front
    # only authenticates and is not given one.
    assert "--access" not in f_argv and "--access" not in d_argv, (f_argv, d_argv)
    assert "ttyhub-sshd.socket" in one("ttyhub-sshd.service", "Unit", "Requires")
    assert "ttyhubd.socket" in one("ttyhubd.service", "Unit", "Requires")
    # ttyhub-webd: the installed binary, the broker's socket, a socket of its own.
    w_argv = exec_argv("ttyhub-webd.service")
    assert w_argv[0] == "/usr/sbin/ttyhub-webd", w_argv
    if "--broker" in w_argv:
        assert opt_value(w_argv, "--broker") == broker
    assert "--listen" not in w_argv, "ttyhub-webd's unit must use its socket unit: %r" % w_argv
    assert "ttyhub-webd.socket" in one("ttyhub-webd.service", "Unit", "Requires")
    # Its user reaches the broker socket (mode 0660): the socket's group is one of its groups.
    web_groups = [one("ttyhub-webd.service", "Service", "Group")]
    web_groups += " ".join(ctx.units["ttyhub-webd.service"]["Service"].get(
        "SupplementaryGroups", [])).split()
    assert one("ttyhubd.socket", "Socket", "SocketGroup") in web_groups, web_groups
    # The page it serves by default is the installed one.
    static = opt_values(w_argv, "--static-dir")
    assert static in ([], ["/usr/share/ttyhub/web"]), static
    # Certificate and key, when the unit names them, are where the unit may read them.
    for opt in ["--tls-cert", "--tls-key"]:
        for v in opt_values(w_argv, opt):
            assert v.startswith(("/etc/ttyhub/", "/var/lib/ttyhub-web/", "%d/", "${CREDENTIALS")), \
                "%s %s" % (opt, v)


def size_bytes(v):
    m = re.match(r"^(\d+)([KMGT]?)$", v)
    assert m, "not a size: %r" % v
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2)]


def t_resource_limits():
    # Each service has a memory and a task ceiling: a flood of sessions or a runaway
    # cannot take the host's memory.  Sane: room for thousands of sessions, not unlimited.
    for s in SERVICES:
        mem = size_bytes(one(s, "Service", "MemoryMax"))
        assert 256 << 20 <= mem <= 16 << 30, "%s: MemoryMax=%d" % (s, mem)
        tasks = int(one(s, "Service", "TasksMax"))
        assert 8 <= tasks <= 1024, "%s: TasksMax=%d" % (s, tasks)
    # systemd reads them as such (a typo would only be warned about and ignored).
    for s in SERVICES:
        r = run(["systemd-analyze", "verify", "--man=no", ctx.unit_paths[s]])
        assert not re.search(r"(MemoryMax|TasksMax)", text(r.stderr)), text(r.stderr)


def t_sysusers_file():
    root = os.path.join(ctx.wd, "sysroot")
    os.makedirs(os.path.join(root, "etc"))
    r = run(["systemd-sysusers", "--root", root, ctx.sysusers])
    assert r.returncode == 0, text(r.stderr)
    with open(os.path.join(root, "etc", "passwd")) as f:
        passwd = {line.split(":")[0]: line.strip().split(":") for line in f}
    with open(os.path.join(root, "etc", "group")) as f:
        groups = {line.split(":")[0] for line in f}
    for u in ["ttyhub", "ttyhub-ssh"]:
        assert u in passwd and u in groups, (passwd, groups)
        assert int(passwd[u][2]) < 1000 and passwd[u][6].endswith("nologin"), passwd[u]


# --- systemd-analyze ----------------------------------------------------------------------

def verify_dir(name, sbin):
    """The installed units in a directory of their own, ExecStart= pointing at sbin."""
    d = os.path.join(ctx.wd, name)
    os.makedirs(d)
    for u, p in ctx.unit_paths.items():
        with open(p) as f:
            t = f.read()
        with open(os.path.join(d, u), "w") as f:
            f.write(t.replace("=/usr/sbin/", "=%s/" % sbin))
    return d


def verify(d, units):
    env = dict(os.environ, MANPATH=installed("/usr/share/man"))
    return run(["systemd-analyze", "verify"] + [os.path.join(d, u) for u in units], env=env)


def t_verify_clean():
    d = verify_dir("verify", installed("/usr/sbin"))
    r = verify(d, UNITS)
    out = text(r.stdout + r.stderr).strip()
    assert r.returncode == 0 and out == "", "systemd-analyze verify (exit %d):\n%s" % (
        r.returncode, out)


def t_verify_catches_missing_binary():
    d = verify_dir("verify-bad", os.path.join(ctx.wd, "nonexistent"))
    r = verify(d, ["ttyhubd.service"])
    assert r.returncode != 0 and b"nonexistent/ttyhubd" in r.stdout + r.stderr, r


def t_security_scores():
    d = os.path.join(ctx.wd, "verify")
    for s in SERVICES:
        r = run(["systemd-analyze", "security", "--offline=yes", os.path.join(d, s)])
        out = text(r.stdout)
        m = re.search(r"Overall exposure level for %s: (\d+\.\d+)" % re.escape(s), out)
        assert m, "no score for %s (exit %d):\n%s%s" % (s, r.returncode, out, text(r.stderr))
        score = float(m.group(1))
        print("  %s: exposure %.1f" % (s, score), flush=True)
        assert score <= MAX_EXPOSURE, "%s scores %.1f > %.1f:\n%s" % (s, score, MAX_EXPOSURE, out)
        r = run(["systemd-analyze", "security", "--offline=yes",
                 "--threshold=%d" % int(MAX_EXPOSURE * 10), os.path.join(d, s)])
        assert r.returncode == 0, "--threshold refused %s" % s


def t_notify_watchdog_settings():
    for s in SERVICES:
        assert one(s, "Service", "Type") == "notify", s
        wd = one(s, "Service", "WatchdogSec")
        m = re.fullmatch(r"(\d+)(s|min)?", wd)
        assert m and int(m.group(1)) > 0, "%s: WatchdogSec=%s" % (s, wd)
        assert ctx.units[s]["Service"].get("NotifyAccess", ["main"])[-1] == "main"
        assert one(s, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID", s
        assert one(s, "Service", "Restart") in ("on-failure", "always"), s
    for u in SOCKETS:
        assert one(u, "Socket", "Accept") == "no", u
    assert one("ttyhub-sshd.socket", "Socket", "ListenStream") == "2222"
    assert one("ttyhub-sshd.service", "Service", "StateDirectory") == "ttyhub-ssh"
    assert one("ttyhub-webd.socket", "Socket", "ListenStream") == "8443"


# --- the daemons under socket activation, as the units start them -------------------------

def remap(argv, wd):
    """The unit's ExecStart argv with host paths moved into wd and the front user made one
    that exists here."""
    out = []
    for a in argv:
        if a in ("ttyhub-ssh", "ttyhub-web"):
            a = getpass.getuser()
        elif a.startswith("/usr/"):
            a = installed(a)
        elif a.startswith("/etc/ttyhub/"):
            a = installed(a)
        else:
            for host, here in [("/run/ttyhub", "run"), ("/var/log/ttyhub", "log"),
                               ("/var/lib/ttyhub-ssh", "state"),
                               ("/var/lib/ttyhub-web", "web-state")]:
                if a == host or a.startswith(host + "/"):
                    os.makedirs(os.path.join(wd, here), mode=0o700, exist_ok=True)
                    a = os.path.join(wd, here) + a[len(host):]
        out.append(a)
    return out


class Notified:
    """A notify socket and a daemon started by systemd-socket-activate with it."""

    def __init__(self, wd, listen, argv, trigger):
        self.wd = wd
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(os.path.join(wd, "notify"))
        self.messages = []
        self.log_path = os.path.join(wd, "daemon.log")
        env = dict(os.environ, NOTIFY_SOCKET=os.path.join(wd, "notify"),
                   WATCHDOG_USEC="1000000")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", listen, "-E", "NOTIFY_SOCKET",
             "-E", "WATCHDOG_USEC"] + argv,
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env)
        deadline = time.monotonic() + 10
        while b"Listening on" not in self.read_log():
            assert time.monotonic() < deadline and self.proc.poll() is None, self.read_log()
            time.sleep(0.02)
        self.trigger = trigger()  # the first connection makes it exec the daemon

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read()

    def wait_for(self, pattern, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            for m in self.messages:
                if re.search(pattern, m):
                    self.messages.remove(m)
                    return m
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and not self.pending()):
                raise AssertionError("no %r from the daemon (exit status %s); got %r; log:\n%s"
                                     % (pattern, self.proc.poll(), self.messages,
                                        text(self.read_log())[-3000:]))
            self.sock.settimeout(min(left, 0.2))
            try:
                self.messages.append(text(self.sock.recv(4096)))
            except socket.timeout:
                pass

    def pending(self):
        return bool(select.select([self.sock], [], [], 0)[0])

    def lifecycle(self, while_ready=None):
        """READY, STATUS, watchdog pings, reload on SIGHUP, STOPPING and exit 0 on SIGTERM;
        while_ready() runs once the daemon is ready.  Returns the daemon's log."""
        self.wait_for(r"(^|\n)READY=1($|\n)")
        self.wait_for(r"(^|\n)STATUS=.")
        if while_ready:
            while_ready()
        self.messages.clear()
        self.wait_for(r"^WATCHDOG=1$", timeout=3)  # pings every WATCHDOG_USEC/2
        self.wait_for(r"^WATCHDOG=1$", timeout=3)
        self.proc.send_signal(signal.SIGHUP)
        self.wait_for(r"(^|\n)RELOADING=1($|\n)")
        self.wait_for(r"(^|\n)READY=1($|\n)")
        assert self.proc.poll() is None, "SIGHUP (ExecReload=) killed it:\n" + text(
            self.read_log())
        self.proc.send_signal(signal.SIGTERM)
        self.wait_for(r"(^|\n)STOPPING=1($|\n)")
        self.proc.wait(10)
        log = text(self.read_log())
        assert self.proc.returncode == 0, "exit %d:\n%s" % (self.proc.returncode, log)
        assert "Sanitizer" not in log and "runtime error:" not in log, log
        return log

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self.sock.close()
        if hasattr(self.trigger, "close"):
            self.trigger.close()


def t_ttyhubd_activated_from_unit():
    wd = os.path.join(ctx.wd, "broker")
    os.makedirs(wd)
    argv = remap(exec_argv("ttyhubd.service"), wd)
    # A console source of our own, so the default (the host's libvirt) is not used.
    argv += ["--console", "t=" + os.path.join(wd, "t.sock")]
    # Its default access file, as installed.
    argv += ["--access", installed("/etc/ttyhub/access")]
    listen = remap([one("ttyhubd.socket", "Socket", "ListenStream")], wd)[0]

    def trigger():
        s = socket.socket(socket.AF_UNIX)
        s.connect(listen)
        return s

    def serves():
        # The broker answers on the socket systemd passed.
        c = hub.BrokerClient(listen)
        c.send({"type": "list"})
        names = [x["name"] for x in c.expect_type("list")["consoles"]]
        assert names == ["t"], names
        c.close()
        # The socket systemd passed is close-on-exec in ttyhubd (fd 3, SD_LISTEN_FDS_START).
        with open("/proc/%d/fdinfo/3" % n.proc.pid) as f:
            flags = int(re.search(r"^flags:\s*(\d+)", f.read(), re.M).group(1), 8)
        assert flags & 0o2000000, "listen fd 3 has flags %o: no O_CLOEXEC" % flags

    n = Notified(wd, listen, argv, trigger)
    try:
        log = n.lifecycle(serves)
        # The shipped example access file loads without a single error.
        assert re.search(r"access file \S+ loaded: \d+ keys, 0 bad lines", log), log
        assert not re.search(r"access.*line \d+|cannot read access", log), log
    finally:
        n.close()


def t_ttyhub_sshd_activated_from_unit():
    wd = os.path.join(ctx.wd, "front")
    os.makedirs(wd)
    argv = remap(exec_argv("ttyhub-sshd.service"), wd)
    port = net.free_port()

    def trigger():
        return socket.create_connection(("127.0.0.1", port), timeout=10)

    def serves():
        n.trigger.settimeout(10)
        banner = n.trigger.recv(256)
        assert banner.startswith(b"SSH-2.0-"), banner
        key = remap([opt_value(exec_argv("ttyhub-sshd.service"), "--host-key")], wd)[0]
        assert os.path.isfile(key) and os.stat(key).st_mode & 0o077 == 0, key

    n = Notified(wd, "127.0.0.1:%d" % port, argv, trigger)
    try:
        n.lifecycle(serves)
    finally:
        n.close()


CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def tcp_listen_inodes():
    """Socket inodes of every listening TCP socket on the host (IPv4 and IPv6)."""
    out = set()
    for path in ["/proc/net/tcp", "/proc/net/tcp6"]:
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A":
                        out.add(fields[9])
        except OSError:
            pass
    return out


def socket_inodes(pid):
    """{fd: inode} of PID's sockets."""
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            m = re.match(r"socket:\[(\d+)\]$", os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            continue
        if m:
            out[int(fd)] = m.group(1)
    return out


def make_cert(cert, key):
    os.makedirs(os.path.dirname(cert), exist_ok=True)
    os.makedirs(os.path.dirname(key), exist_ok=True)
    r = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-subj", "/CN=localhost", "-days", "1", "-keyout", key, "-out", cert])
    assert r.returncode == 0, text(r.stderr)
    os.chmod(key, 0o600)


def t_ttyhub_webd_activated_from_unit():
    wd = os.path.join(ctx.wd, "web")
    os.makedirs(wd)
    unit_argv = exec_argv("ttyhub-webd.service")
    argv = remap(unit_argv, wd)
    # Its page as installed (the unit relies on the compiled-in /usr/share/ttyhub/web).
    if "--static-dir" not in argv:
        argv += ["--static-dir", installed("/usr/share/ttyhub/web")]
    tls = "--tls-cert" in argv
    if tls:
        cert, key = opt_value(argv, "--tls-cert"), opt_value(argv, "--tls-key")
        if not os.path.exists(cert):
            make_cert(cert, key)
    port = net.free_port()

    def trigger():
        return socket.create_connection(("127.0.0.1", port), timeout=10)

    def serves():
        s = n.trigger
        s.settimeout(10)
        if tls:
            c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            c.check_hostname = False
            c.verify_mode = ssl.CERT_NONE
            s = n.trigger = c.wrap_socket(s, server_hostname="localhost")
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port)
        resp = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            resp += d
        head, _, body = resp.partition(b"\r\n\r\n")
        head = text(head)
        assert head.startswith("HTTP/1.1 200"), head
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (x.partition(":") for x in head.split("\r\n")[1:])}
        assert headers.get("content-security-policy") == CSP, headers
        assert headers.get("x-content-type-options") == "nosniff", headers
        assert headers.get("referrer-policy") == "no-referrer", headers
        assert headers.get("cache-control") == "no-store", headers
        if tls:
            assert "max-age=" in headers.get("strict-transport-security", ""), headers
        assert re.search(rb"<html", body, re.I), body[:300]
        # It serves on the socket it was passed: fd 3 is a listening TCP socket, close-on-exec,
        # and it listens on no other.
        socks = socket_inodes(n.proc.pid)
        listening = tcp_listen_inodes()
        assert socks.get(3) in listening, "fd 3 is not the listening socket: %r" % socks
        assert {i for i in socks.values() if i in listening} == {socks[3]}, socks
        with open("/proc/%d/fdinfo/3" % n.proc.pid) as f:
            flags = int(re.search(r"^flags:\s*(\d+)", f.read(), re.M).group(1), 8)
        assert flags & 0o2000000, "listen fd 3 has flags %o: no O_CLOEXEC" % flags

    n = Notified(wd, "127.0.0.1:%d" % port, argv, trigger)
    try:
        log = n.lifecycle(serves)
        if not tls:
            assert re.search(r"plain HTTP|without TLS|no TLS", log, re.I), \
                "no warning about plain HTTP:\n" + log
    finally:
        n.close()


# --- man pages ----------------------------------------------------------------------------

def ensure_man():
    if shutil.which("man"):
        return
    r = run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "man-db"],
            timeout=600)
    assert r.returncode == 0 and shutil.which("man"), "man is missing: apt-get install man-db"


def rendered(page):
    sec = MAN_PAGES[page]
    r = run(["man", "-l", installed("/usr/share/man/man%s/%s.%s" % (sec, page, sec))],
            env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0", LC_ALL="C.UTF-8",
                     MANPAGER="cat", PAGER="cat"))
    assert r.returncode == 0, (page, text(r.stderr))
    assert not re.search(rb"warning|cannot|can't", r.stderr), (page, text(r.stderr))
    return re.sub(r".\x08", "", text(r.stdout))


def source(page):
    with open(os.path.join(TOP, "docs", "man", "%s.%s.scd" % (page, MAN_PAGES[page]))) as f:
        return f.read()


def t_man_pages_render():
    ensure_man()
    for page in MAN_PAGES:
        out = rendered(page)
        assert re.search(r"^NAME\n +%s - \S" % re.escape(page), out, re.M), (page, out[:500])
        for sec in ["SYNOPSIS", "DESCRIPTION", "SEE ALSO"]:
            assert re.search(r"^%s$" % sec, out, re.M), (page, sec)
        if page != "ttyhub-access":
            for sec in ["OPTIONS", "EXIT STATUS", "FILES", "EXAMPLES"]:
                assert re.search(r"^%s$" % sec, out, re.M), (page, sec)


def help_options(binary):
    r = run([binary, "--help"])
    assert r.returncode == 0, (binary, r)
    return text(r.stdout)


def long_options(help_text):
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", help_text))


def t_man_pages_document_every_option():
    for page, binary in [("ttyhubd", installed("/usr/sbin/ttyhubd")),
                         ("ttyhub-sshd", installed("/usr/sbin/ttyhub-sshd")),
                         ("ttyhub-webd", installed("/usr/sbin/ttyhub-webd")),
                         ("ttyhub", installed("/usr/bin/ttyhub"))]:
        src = source(page)
        opts = long_options(help_options(binary))
        assert len(opts) >= 5, (page, opts)
        # Defined: a line of its own (or with its short form), or in a command's line.
        missing = [o for o in sorted(opts) if not re.search(
            r"^(\s*\*(-\w\*, \*)?%s\*|\*(list|attach|who|break|reset|powerdown)\*.*\*%s\*)" % (
                re.escape(o), re.escape(o)), src, re.M)]
        assert not missing, "%s(%s) does not document %s" % (page, MAN_PAGES[page], missing)
        assert "*-h*, *--help*" in src, page
        if page != "ttyhub":
            assert "*-v*, *--verbose*" in src, page
    # The CLI's commands.
    for cmd in ["list", "attach", "who", "break", "sysrq", "nmi", "reset", "powerdown"]:
        assert re.search(r"^\*%s\*" % cmd, source("ttyhub"), re.M), cmd


def t_man_pages_document_escapes():
    with open(os.path.join(TOP, "proto", "escape.c")) as f:
        keys = re.findall(r'"  <escape> (\S)  ', f.read())
    assert len(keys) >= 8, keys
    for page in ["ttyhub", "ttyhub-sshd"]:
        out = rendered(page)
        for k in keys:
            assert re.search(r"Ctrl-E c %s\s" % re.escape(k), out), "%s: escape %s" % (page, k)


def t_man_page_access_format():
    with open(os.path.join(TOP, "broker", "access.c")) as f:
        table = re.search(r"access_options\[\] = \{(.*?)\};", f.read(), re.S).group(1)
    names = re.findall(r'\{ "([^"]+)", ACCESS_OPTION_(\w+) \}', table)
    assert len(names) >= 5, names
    src = source("ttyhub-access")
    for name, kind in names:
        form = {"CONSOLES": name + '="', "FROM": name + '="'}.get(kind, name)
        assert "*" + form in src, "ttyhub-access(5) does not describe %s" % name
    out = rendered("ttyhub-access")
    for refused in ["command=", "environment=", "permitopen=", "tunnel=", "cert-authority"]:
        assert refused in out, refused
    assert "sshd(8)" in out and "fnmatch(3)" in out


# --- default configuration ----------------------------------------------------------------

def option_blocks(help_text):
    """{--option: its help text, continuation lines included}."""
    blocks, cur = {}, None
    for line in help_text.splitlines():
        m = re.match(r"^  (?:-\w, )?(--[a-z][a-z0-9-]+)", line)
        if m:
            cur = m.group(1)
            blocks[cur] = line
        elif cur and line.startswith("    "):
            blocks[cur] += " " + line.strip()
        else:
            cur = None
    return blocks


def build_prefix():
    """CMAKE_INSTALL_PREFIX of the build under test (None if unknown)."""
    try:
        with open(os.path.join(hub.BUILD, "CMakeCache.txt")) as f:
            m = re.search(r"^CMAKE_INSTALL_PREFIX:PATH=(.*)$", f.read(), re.M)
    except OSError:
        return None
    return m.group(1).rstrip("/") if m else None


def t_configs_list_every_option_with_its_default():
    for conf, binary in [("ttyhubd.conf", installed("/usr/sbin/ttyhubd")),
                         ("ttyhub-sshd.conf", installed("/usr/sbin/ttyhub-sshd")),
                         ("ttyhub-webd.conf", installed("/usr/sbin/ttyhub-webd"))]:
        with open(installed("/etc/ttyhub/" + conf)) as f:
            lines = f.read().splitlines()
        assert not [x for x in lines if x.strip() and not x.startswith("#")], \
            "%s sets options; the shipped file must only comment" % conf
        keys = {}
        for x in lines:
            m = re.match(r"^# ([a-z][a-z0-9-]+) = (\S.*)$", x)
            if m:
                keys.setdefault(m.group(1), m.group(2))
        blocks = option_blocks(help_options(binary))
        opts = {o[2:] for o in blocks} - {"help", "version", "config"}
        assert opts - set(keys) == set(), "%s lacks %s" % (conf, sorted(opts - set(keys)))
        assert set(keys) - opts == set(), "%s lists options %s unknown to %s --help" % (
            conf, sorted(set(keys) - opts), os.path.basename(binary))
        prefix = build_prefix()
        for opt, block in blocks.items():
            m = re.search(r"\(default ([^;)\s]+)", block)
            if m and opt[2:] in keys:
                default = m.group(1)
                # A default under the build's install prefix (ttyhub-webd's page) is shown in
                # the shipped file as packages install it, under /usr.
                if prefix and default.startswith(prefix + "/"):
                    default = "/usr" + default[len(prefix):]
                assert keys[opt[2:]] == default, "%s: %s = %s, but --help says %s" % (
                    conf, opt[2:], keys[opt[2:]], m.group(1))


def main():
    res = runner.Runner()
    ctx.wd = hub.workdir("units")
    ctx.dest = os.path.join(ctx.wd, "dest")
    res.run("DESTDIR install: binaries, units, sysusers, config, man pages", t_destdir_install)
    if res.failed:
        print("(the install failed: the other checks need it)")
        res.finish(ctx.wd)
    res.run("reinstall keeps an edited /etc/ttyhub/access", t_reinstall_keeps_config)
    res.run("units name installed binaries, files, users; agree with each other",
            t_units_name_installed_things)
    res.run("MemoryMax= and TasksMax= on every service", t_resource_limits)
    res.run("systemd-sysusers accepts sysusers.d/ttyhub.conf", t_sysusers_file)
    res.run("systemd-analyze verify is clean", t_verify_clean)
    res.run("systemd-analyze verify rejects a missing ExecStart binary",
            t_verify_catches_missing_binary)
    res.run("systemd-analyze security <= %.1f for every service" % MAX_EXPOSURE,
            t_security_scores)
    res.run("Type=notify, WatchdogSec=, ExecReload=, Accept=no", t_notify_watchdog_settings)
    res.run("ttyhubd from its unit: activation, READY/STATUS/WATCHDOG/RELOADING/STOPPING",
            t_ttyhubd_activated_from_unit)
    res.run("ttyhub-sshd from its unit: activation, READY/STATUS/WATCHDOG/RELOADING/STOPPING",
            t_ttyhub_sshd_activated_from_unit)
    res.run("ttyhub-webd from its unit: activation on fd 3, GET / with its headers, "
            "READY/STATUS/WATCHDOG/RELOADING/STOPPING", t_ttyhub_webd_activated_from_unit)
    res.run("man pages render with man -l", t_man_pages_render)
    res.run("man pages document every --help option and command",
            t_man_pages_document_every_option)
    res.run("man pages document every escape command", t_man_pages_document_escapes)
    res.run("ttyhub-access(5) documents the access file options", t_man_page_access_format)
    res.run("default configs list every option with its --help default",
            t_configs_list_every_option_with_its_default)
    res.finish(ctx.wd)


if __name__ == "__main__":
    main()
