# SPDX-License-Identifier: MIT
"""A real, private libvirtd for ttyhub's integration tests.

Run with /usr/bin/python3 (Debian's, which sees python3-libvirt).  Needs root and the Debian
packages libvirt-daemon, libvirt-daemon-driver-qemu, python3-libvirt, qemu-system-x86 and
util-linux (unshare, nsenter, mount).

The model:

* A root libvirtd (system mode, ``qemu:///system``) has its paths compiled in: /etc/libvirt
  (qemu.conf is read only from there), /run/libvirt, /var/lib/libvirt, /var/log/libvirt,
  /var/cache/libvirt; it also insists on a ``libvirt-qemu`` user and group even when
  qemu.conf says ``user = "root"``.  So ``Libvirtd`` gives it a private view of the system
  instead of touching the host: a *holder* process (``unshare --mount``) owns a new mount
  namespace in which /etc, /var and /run are overlayfs mounts whose lower layer is the host's
  directory (read through) and whose upper layer is in the prefix (every write lands there).
  The private /etc gets qemu.conf and a passwd/group with ``libvirt-qemu``.  libvirtd is run
  in that namespace with ``nsenter``, and the QEMUs it starts inherit it.  The host's
  /etc, /var and /run and its mount table are never modified.

* The namespace outlives libvirtd: ``restart()`` stops libvirtd and starts a new one in the
  same namespace, so it finds its domains (status XML, monitor sockets) exactly as after a
  real daemon restart, and running guests are not disturbed.  ``stop()`` destroys the
  domains, stops libvirtd, kills whatever is left in the namespace and ends the holder, which
  drops the mounts.  The holder also watches a pipe from this process: if the test process
  dies (even by SIGKILL), the holder kills everything in the namespace and exits.

* Everything the test needs to reach is outside the overlaid directories, in the prefix
  (default ``WORKDIR/libvirt``): the sockets ``sock/libvirt-sock`` (``uri``),
  ``sock/libvirt-sock-ro`` (``uri_ro``) and ``sock/libvirt-admin-sock``, libvirtd's log
  (``log/libvirtd.log``, ``log/libvirtd.out``).  What libvirtd writes to /var or /run is in
  the upper layers, readable from the host: ``status_dir`` is /run/libvirt/qemu (the
  ``<domstatus>`` files), ``qemu_log(name)`` is /var/log/libvirt/qemu/NAME.log.  The workdir
  must therefore not be under /etc, /var or /run (mkdtemp's /tmp is fine).

* QEMU driver settings (qemu.conf): user/group root, security_driver none, no cgroup
  controllers, no namespaces, no dynamic ownership, stdio_handler "file" (so no virtlogd).
  libvirt probes QEMU's capabilities on first use (about 9 s here); the probe results are
  cached in ``${TTYHUB_CACHE:-${XDG_CACHE_HOME:-~/.cache}/ttyhub}/libvirt-qemu-caps`` and
  seeded into new prefixes (libvirt revalidates them and probes again when stale).
  ``TTYHUB_VIRT_CAPS_CACHE=0`` disables that.

* Domains: ``define_and_start(name, serial_sock, console_sock)`` defines and starts a TCG
  guest (``guest.assets()`` kernel + initrd, 256 MiB, no graphics) with its 16550 on a UNIX
  socket (``<serial type='unix'>``, alias serial0) and a virtio console on another
  (``<console type='unix'>`` target virtio, alias console1).  libvirt adds the usual
  ``<console>`` with ``<target type='serial'>`` duplicating serial0.  ``destroy()``,
  ``start_domain()`` (also ``start(name)``), ``undefine()``, ``live_xml()``.

Typical use::

    with Libvirtd(workdir) as lv:
        lv.define_and_start("vm1", f"{workdir}/vm1-serial0.sock", f"{workdir}/vm1-console1.sock")
        with SocketConsole(f"{workdir}/vm1-serial0.sock") as con:
            sync_shell(con)
        daemon = hub.Daemon(workdir, "--libvirt", lv.uri_ro)
        lv.restart()

libvirt's default error handler (which prints every error to stderr) is replaced by a silent
one when this module is imported; errors still raise libvirt.libvirtError.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib
import weakref
from pathlib import Path
from typing import Callable, TypeVar

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import domains  # noqa: E402
import guest as _guest  # noqa: E402

try:
    import libvirt  # Debian: python3-libvirt
except ImportError:  # reported by missing() and Libvirtd()
    libvirt = None
else:
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

__all__ = ["Libvirtd", "missing", "DEPS"]

#: Debian packages this module needs (beyond guest.py's qemu-system-x86, busybox-static, and
#: util-linux).  libvirt-clients (virsh) is handy for debugging, not needed.
DEPS = ("libvirt-daemon", "libvirt-daemon-driver-qemu", "python3-libvirt")

LIBVIRTD = "/usr/sbin/libvirtd"
UNSHARE = "/usr/bin/unshare"
NSENTER = "/usr/bin/nsenter"

#: Host directories that the private namespace overlays (writes go to the prefix).
OVERLAID = ("etc", "var", "run")

_SUN_PATH_MAX = 107
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}

# The holder: mounts the overlays in its new mount namespace, says "ready" on stdout, then
# waits for end of file on stdin (stop(), or the test process died) and kills whatever still
# runs in the namespace.  $1 is the prefix.
_HOLDER_SH = r"""
set -eu
P=$1
for d in etc var run; do
    mount -t overlay ttyhub-virt \
        -o "lowerdir=/$d,upperdir=$P/ov/$d.upper,workdir=$P/ov/$d.work" "/$d"
done
echo ready
exec >>"$P/log/holder.log" 2>&1
while read -r _; do :; done
me=$(readlink /proc/$$/ns/mnt)
for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = "$$" ] && continue
    if [ "$(readlink "$p/ns/mnt" 2>/dev/null || true)" = "$me" ]; then
        echo "holder: killing leftover pid $pid"
        kill -9 "$pid" 2>/dev/null || true
    fi
done
"""

_QEMU_CONF = """\
# Written by ttyhub tests/integration/virt.py
user = "root"
group = "root"
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
dynamic_ownership = 0
remember_owner = 0
stdio_handler = "file"
"""

T = TypeVar("T")

_instances: "weakref.WeakSet[Libvirtd]" = weakref.WeakSet()


def missing() -> list[str]:
    """What this module needs and does not find (empty when everything is there)."""
    out = []
    if libvirt is None:
        out.append("python3-libvirt (import libvirt)")
    for path, pkg in ((LIBVIRTD, "libvirt-daemon"), (UNSHARE, "util-linux"),
                      (NSENTER, "util-linux"), ("/usr/bin/" + _guest.QEMU, "qemu-system-x86")):
        if not os.access(path, os.X_OK):
            out.append(f"{path} ({pkg})")
    drv = "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so"
    if not os.path.exists(drv):
        out.append(f"{drv} (libvirt-daemon-driver-qemu)")
    if os.geteuid() != 0:
        out.append("root (a system libvirtd in its own mount namespace)")
    return out


def _tail_file(path: str | os.PathLike, n: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n))
            data = f.read()
    except OSError as e:
        return f"({path}: {e})"
    head = f"...[{size - n} bytes before]...\n" if size > n else ""
    return head + data.decode("utf-8", "backslashreplace")


def _with_timeout(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run fn() in a helper thread; raise TimeoutError if it takes longer than timeout.

    libvirt client calls have no timeout of their own and block forever on a hung daemon; a
    timed-out call is abandoned (its daemon thread does not keep the process alive).
    """
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            box["error"] = e

    t = threading.Thread(target=run, name=f"virt:{what}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"libvirt: {what}: no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _mntns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _pids_in_mntns(ns: str, exclude: int | None = None) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != exclude and _mntns(entry) == ns:
            out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def _cache_root() -> Path:
    if os.environ.get("TTYHUB_CACHE"):
        return Path(os.environ["TTYHUB_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "ttyhub"


class Libvirtd:
    """A root libvirtd with a private /etc, /var and /run, for one test run.

    ``Libvirtd(workdir, prefix=None, log_level=3)``: prefix defaults to WORKDIR/libvirt.
    log_level is libvirtd's (1 debug, 2 info, 3 warning, 4 error).

    Attributes: ``uri`` / ``uri_ro`` (``qemu+unix:///system?socket=...`` on the read-write /
    read-only socket), ``socket``, ``socket_ro``, ``prefix``, ``log_path`` (libvirt's log),
    ``out_path`` (libvirtd's stdout/stderr), ``status_dir`` (/run/libvirt/qemu as seen from
    the host), ``pid`` (libvirtd), ``timings`` (seconds of the last start: ``api`` until the
    first API answer, ``ready`` until QEMU's capabilities were known),
    ``last_domain_start`` (seconds the last domain start took).
    """

    def __init__(self, workdir: str | os.PathLike, prefix: str | os.PathLike | None = None,
                 log_level: int = 3) -> None:
        self.workdir = os.path.realpath(os.fspath(workdir))
        self.prefix = os.path.realpath(os.fspath(prefix) if prefix is not None
                                       else os.path.join(self.workdir, "libvirt"))
        for d in OVERLAID:
            top = "/" + d
            if self.prefix == top or self.prefix.startswith(top + "/"):
                raise ValueError(f"prefix {self.prefix} is under {top}, which the private "
                                 "libvirtd overlays; use a workdir under /tmp")
        self.sock_dir = os.path.join(self.prefix, "sock")
        self.socket = os.path.join(self.sock_dir, "libvirt-sock")
        self.socket_ro = os.path.join(self.sock_dir, "libvirt-sock-ro")
        longest = os.path.join(self.sock_dir, "libvirt-admin-sock")
        if len(os.fsencode(longest)) > _SUN_PATH_MAX:
            raise ValueError(f"socket path too long for AF_UNIX: {longest}")
        self.uri = f"qemu+unix:///system?socket={self.socket}"
        self.uri_ro = f"qemu+unix:///system?socket={self.socket_ro}"
        self.log_dir = os.path.join(self.prefix, "log")
        self.log_path = os.path.join(self.log_dir, "libvirtd.log")
        self.out_path = os.path.join(self.log_dir, "libvirtd.out")
        self.holder_log = os.path.join(self.log_dir, "holder.log")
        self.conf_path = os.path.join(self.prefix, "libvirtd.conf")
        self.pid_file = os.path.join(self.prefix, "libvirtd.pid")
        self.status_dir = self.private_path("/run/libvirt/qemu")
        self.log_level = log_level
        self.timings: dict[str, float] = {}
        self.last_domain_start: float | None = None
        self._holder: subprocess.Popen | None = None
        self._holder_w: int | None = None
        self._ns: str | None = None       # the private mount namespace ("mnt:[...]")
        self._old_ns: list[str] = []      # namespaces of earlier holders (for leftovers())
        self._daemon: subprocess.Popen | None = None
        self._out = None
        self._conn = None
        _instances.add(self)

    # -- paths --

    def private_path(self, path: str) -> str:
        """Where ``path`` (under /etc, /var or /run as libvirtd sees it) is on the host.

        Only what libvirtd wrote is there (the overlay's upper layer).
        """
        parts = Path(path).parts
        if len(parts) < 2 or parts[0] != "/" or parts[1] not in OVERLAID:
            raise ValueError(f"{path}: not under /etc, /var or /run")
        return os.path.join(self.prefix, "ov", parts[1] + ".upper", *parts[2:])

    def qemu_log(self, name: str) -> str:
        """Host path of libvirt's /var/log/libvirt/qemu/NAME.log (QEMU's command and stderr)."""
        return self.private_path(f"/var/log/libvirt/qemu/{name}.log")

    def logs(self, n: int = 4000) -> str:
        """The tails of libvirtd's logs (and the holder's), for error messages."""
        return (f"--- {self.out_path} ---\n{_tail_file(self.out_path, n)}\n"
                f"--- {self.log_path} ---\n{_tail_file(self.log_path, n)}\n"
                f"--- {self.holder_log} ---\n{_tail_file(self.holder_log, 1000)}")

    @property
    def pid(self) -> int | None:
        return self._daemon.pid if self._daemon is not None else None

    @property
    def running(self) -> bool:
        return self._daemon is not None and self._daemon.poll() is None

    @property
    def namespace(self) -> str | None:
        """The private mount namespace (``mnt:[INODE]``) while the holder runs."""
        return self._ns

    # -- prefix and namespace --

    def _prepare(self) -> None:
        for d in OVERLAID:
            for kind in ("upper", "work"):
                os.makedirs(os.path.join(self.prefix, "ov", f"{d}.{kind}"), exist_ok=True)
        os.makedirs(self.sock_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        os.chmod(self.prefix, 0o755)
        os.chmod(self.sock_dir, 0o755)
        etc = os.path.join(self.prefix, "ov", "etc.upper")
        os.makedirs(os.path.join(etc, "libvirt"), exist_ok=True)
        with open(os.path.join(etc, "libvirt", "qemu.conf"), "w") as f:
            f.write(_QEMU_CONF)
        self._write_accounts(etc)
        with open(self.conf_path, "w") as f:
            f.write(
                "# Written by ttyhub tests/integration/virt.py\n"
                f'unix_sock_dir = "{self.sock_dir}"\n'
                'unix_sock_ro_perms = "0777"\n'
                'unix_sock_rw_perms = "0700"\n'
                'unix_sock_admin_perms = "0700"\n'
                'auth_unix_ro = "none"\n'
                'auth_unix_rw = "none"\n'
                f'log_outputs = "{self.log_level}:file:{self.log_path}"\n'
            )
        self._seed_caps()

    @staticmethod
    def _write_accounts(etc: str) -> None:
        """Private passwd/group that add libvirt-qemu (libvirtd insists on it) if missing."""
        with open("/etc/passwd") as f:
            passwd = f.read()
        with open("/etc/group") as f:
            group = f.read()
        users = {line.split(":")[0] for line in passwd.splitlines() if line}
        groups = {line.split(":")[0] for line in group.splitlines() if line}
        used = set()
        for text in (passwd, group):
            for line in text.splitlines():
                fields = line.split(":")
                if len(fields) > 2 and fields[2].isdigit():
                    used.add(int(fields[2]))
        xid = next(i for i in range(64055, 65000) if i not in used)
        if not passwd.endswith("\n"):
            passwd += "\n"
        if not group.endswith("\n"):
            group += "\n"
        if "libvirt-qemu" not in users:
            passwd += (f"libvirt-qemu:x:{xid}:{xid}:ttyhub test libvirt:/nonexistent:"
                       "/usr/sbin/nologin\n")
        if "libvirt-qemu" not in groups:
            group += f"libvirt-qemu:x:{xid}:\n"
        for name, text in (("passwd", passwd), ("group", group)):
            with open(os.path.join(etc, name), "w") as f:
                f.write(text)

    def _caps_dirs(self) -> tuple[Path, Path]:
        return (_cache_root() / "libvirt-qemu-caps",
                Path(self.private_path("/var/cache/libvirt/qemu/capabilities")))

    def _seed_caps(self) -> None:
        """Copy cached QEMU capabilities into a new prefix (before its overlay is mounted)."""
        if os.environ.get("TTYHUB_VIRT_CAPS_CACHE") == "0":
            return
        shared, mine = self._caps_dirs()
        if not shared.is_dir() or (mine.is_dir() and any(mine.iterdir())):
            return
        mine.mkdir(parents=True, exist_ok=True)
        for f in shared.glob("*.xml"):
            try:
                shutil.copyfile(f, mine / f.name)
                os.chmod(mine / f.name, 0o600)
            except OSError:
                pass

    def _save_caps(self) -> None:
        """Copy this prefix's QEMU capabilities to the shared cache (atomically, per file)."""
        if os.environ.get("TTYHUB_VIRT_CAPS_CACHE") == "0":
            return
        shared, mine = self._caps_dirs()
        if not mine.is_dir():
            return
        for f in mine.glob("*.xml"):
            try:
                data = f.read_bytes()
                dest = shared / f.name
                if dest.exists() and dest.read_bytes() == data:
                    continue
                shared.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=shared, prefix=".tmp-")
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, dest)
            except OSError:
                pass

    def _start_holder(self, timeout: float) -> None:
        if self._holder is not None and self._holder.poll() is None:
            return
        self._end_holder()
        self._prepare()
        r, w = os.pipe()
        hlog = open(self.holder_log, "ab")
        try:
            self._holder = subprocess.Popen(
                [UNSHARE, "--mount", "--propagation", "private", "--",
                 "/bin/sh", "-c", _HOLDER_SH, "ttyhub-virt-holder", self.prefix],
                stdin=r, stdout=subprocess.PIPE, stderr=hlog, env=_ENV,
                cwd=self.prefix, start_new_session=True,
            )
        finally:
            os.close(r)
            hlog.close()
        self._holder_w = w
        out = self._holder.stdout
        line = b""
        deadline = time.monotonic() + timeout
        os.set_blocking(out.fileno(), False)
        while not line.endswith(b"\n"):
            if self._holder.poll() is not None or time.monotonic() >= deadline:
                break
            try:
                chunk = os.read(out.fileno(), 64)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            if not chunk:
                break
            line += chunk
        out.close()
        ns = _mntns(self._holder.pid)
        if line != b"ready\n" or ns is None or ns == _mntns(os.getpid()):
            rc = self._holder.poll()
            self._end_holder()
            raise RuntimeError(
                f"could not set up the private mount namespace (holder said {line!r}, "
                f"exit {rc}):\n{_tail_file(self.holder_log)}")
        self._ns = ns

    def _end_holder(self, timeout: float = 10) -> None:
        """Close the holder's pipe: it kills what is left in the namespace and exits."""
        if self._holder_w is not None:
            os.close(self._holder_w)
            self._holder_w = None
        if self._holder is not None:
            try:
                self._holder.wait(timeout)
            except subprocess.TimeoutExpired:
                self._holder.kill()
                self._holder.wait()
            self._holder = None
        if self._ns is not None:
            self._old_ns.append(self._ns)
            self._ns = None

    # -- daemon lifecycle --

    def start(self, name: str | None = None, timeout: float = 90) -> "Libvirtd":
        """Start libvirtd (no-op if running) and wait until it answers and knows QEMU.

        ``start(name)`` instead starts the defined domain ``name`` (see ``start_domain``).
        The first start in a new prefix may probe QEMU's capabilities (~9 s without the
        cache).  On failure everything is stopped and RuntimeError raised with the logs.
        """
        if name is not None:
            self.start_domain(name)
            return self
        if self.running:
            return self
        if libvirt is None or missing():
            raise RuntimeError("private libvirtd unavailable, missing: " + ", ".join(missing()))
        t0 = time.monotonic()
        deadline = t0 + timeout
        try:
            self._start_holder(timeout)
            for s in os.listdir(self.sock_dir):
                os.unlink(os.path.join(self.sock_dir, s))
            self._out = open(self.out_path, "ab")
            self._out.write(f"### {time.strftime('%F %T')} starting libvirtd\n".encode())
            self._out.flush()
            self._daemon = subprocess.Popen(
                [NSENTER, f"--target={self._holder.pid}", "--mount", "--",
                 LIBVIRTD, "--config", self.conf_path, "--pid-file", self.pid_file],
                stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._out, env=_ENV,
                cwd=self.prefix, start_new_session=True,
            )
            conn = None
            while conn is None:
                if self._daemon.poll() is not None:
                    raise RuntimeError(f"libvirtd exited with status {self._daemon.returncode}")
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"libvirtd did not answer within {timeout:g} s")
                if os.path.exists(self.socket):
                    try:
                        conn = _with_timeout(lambda: libvirt.open(self.uri),
                                             max(1.0, deadline - time.monotonic()), "open")
                    except libvirt.libvirtError:
                        conn = None
                if conn is None:
                    time.sleep(0.02)
            self.timings = {"api": time.monotonic() - t0}
            _with_timeout(conn.getVersion, max(1.0, deadline - time.monotonic()),
                          "getVersion (QEMU capabilities)")
            self.timings["ready"] = time.monotonic() - t0
            if _mntns(self._daemon.pid) != self._ns:
                raise RuntimeError("libvirtd is not in the private mount namespace")
            self._conn = conn
        except BaseException as e:
            logs = self.logs()
            self.stop()
            if isinstance(e, (RuntimeError, TimeoutError)):
                raise RuntimeError(f"private libvirtd: {e}\n{logs}") from e
            raise
        return self

    def stop_daemon(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """Stop libvirtd only (domains keep running, the namespace stays); return its status.

        SIGTERM is an orderly shutdown (~2 s); SIGKILL simulates a crash.  SIGKILL follows
        if it still runs after timeout.
        """
        self._drop_conn()
        if self._daemon is None:
            return None
        if self._daemon.poll() is None:
            self._daemon.send_signal(sig)
        try:
            rc = self._daemon.wait(timeout)
        except subprocess.TimeoutExpired:
            self._daemon.kill()
            rc = self._daemon.wait()
        self._daemon = None
        if self._out is not None:
            self._out.write(f"### {time.strftime('%F %T')} libvirtd exited: {rc}\n".encode())
            self._out.close()
            self._out = None
        return rc

    def restart(self, timeout: float = 90) -> "Libvirtd":
        """Stop libvirtd and start it again in the same namespace with the same state."""
        self.stop_daemon()
        return self.start(timeout=timeout)

    def stop(self, timeout: float = 30) -> None:
        """Destroy every running domain, stop libvirtd, kill leftovers, drop the namespace."""
        if self.running:
            try:
                conn = self.conn()
                for dom in _with_timeout(lambda: conn.listAllDomains(
                        libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE), 10, "listAllDomains"):
                    _with_timeout(dom.destroy, 15, f"destroy {dom.name()}")
            except (libvirt.libvirtError, TimeoutError, RuntimeError):
                pass  # the kill below does it
        self.stop_daemon(timeout=timeout)
        if self._ns is not None:
            self._kill_ns(self._ns)
        self._end_holder()
        if self._old_ns:
            self._save_caps()

    def _kill_ns(self, ns: str, grace: float = 5) -> None:
        holder = self._holder.pid if self._holder is not None else None
        pids = _pids_in_mntns(ns, exclude=holder)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for p in pids:
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                pids = [p for p in pids if _alive(p)]
                if not pids:
                    return
                time.sleep(0.05)

    def leftovers(self) -> list[int]:
        """Pids still running in any private namespace this object created (other than its
        live holder) or running libvirtd with this prefix's config."""
        holder = self._holder.pid if self._holder is not None else None
        out = set()
        for ns in self._old_ns + ([self._ns] if self._ns else []):
            out.update(p for p in _pids_in_mntns(ns, exclude=holder) if _alive(p))
        conf = os.fsencode(self.conf_path)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if conf in f.read().split(b"\0") and _alive(int(entry)):
                        out.add(int(entry))
            except OSError:
                pass
        if self._daemon is not None and self._daemon.poll() is None:
            out.discard(self._daemon.pid)
        return sorted(out)

    def __enter__(self) -> "Libvirtd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self) -> None:
        try:
            if self._holder is not None or self._daemon is not None:
                self.stop()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- connections --

    def _drop_conn(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - a dead connection
                pass
            self._conn = None

    def conn(self, timeout: float = 10):
        """The harness's read-write connection (reopened if libvirtd restarted)."""
        if self._conn is not None:
            try:
                _with_timeout(self._conn.getLibVersion, timeout, "ping")
                return self._conn
            except (libvirt.libvirtError, TimeoutError):
                self._drop_conn()
        if not self.running:
            raise RuntimeError("private libvirtd is not running")
        self._conn = _with_timeout(lambda: libvirt.open(self.uri), timeout, "open")
        return self._conn

    def _api(self, what: str, fn: Callable[[], T], timeout: float = 60) -> T:
        try:
            return _with_timeout(fn, timeout, what)
        except TimeoutError as e:
            raise RuntimeError(f"{e}\n{self.logs()}") from e

    # -- domains --

    def domain_xml(self, name: str, serial_sock: str | None, console_sock: str | None,
                   uuid: str | None = None) -> str:
        """Inactive domain XML for define_and_start() (see the module doc)."""
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"domain name {name!r}: use letters, digits and _.+-")
        for s in (serial_sock, console_sock):
            if s is not None:
                if not os.path.isabs(s):
                    raise ValueError(f"socket path must be absolute: {s}")
                if len(os.fsencode(s)) > _SUN_PATH_MAX:
                    raise ValueError(f"socket path too long for AF_UNIX ({len(s)} bytes): {s}")
        kernel, initrd = _guest.assets()
        append = os.environ.get("TTYHUB_GUEST_APPEND", _guest.DEFAULT_APPEND)
        uuid = uuid or str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, "ttyhub-test-libvirt:" + name))
        dev = []
        if serial_sock is not None:
            dev.append(domains.serial(serial_sock, alias=None))
        if console_sock is not None:
            dev.append(domains.console(console_sock, "virtio", 1))
        boot = domains.Boot(kernel, initrd, append, _guest.MEMORY_MB, f"/usr/bin/{_guest.QEMU}")
        return domains.domain_xml(name, dev, uuid=uuid, boot=boot, extra_devices=(
            "    <controller type='usb' model='none'/>\n", "    <memballoon model='none'/>\n"))

    def define(self, name: str, serial_sock: str | None, console_sock: str | None,
               uuid: str | None = None):
        """Define (persistently) the domain described by domain_xml(); return it."""
        xml = self.domain_xml(name, serial_sock, console_sock, uuid)
        conn = self.conn()
        return self._api(f"define {name}", lambda: conn.defineXML(xml))

    def define_and_start(self, name: str, serial_sock: str | None,
                         console_sock: str | None, uuid: str | None = None):
        """Define and start a guest; return its libvirt.virDomain (on the harness connection).

        serial_sock / console_sock: absolute paths where libvirt binds the 16550's and the
        virtio console's UNIX sockets (None leaves the device out).  Raises RuntimeError with
        the QEMU and libvirtd logs if the start fails.
        """
        dom = self.define(name, serial_sock, console_sock, uuid)
        self._create(name, dom)
        return dom

    def domain(self, name: str):
        """The libvirt.virDomain called name (raises libvirt.libvirtError if unknown)."""
        conn = self.conn()
        return self._api(f"lookup {name}", lambda: conn.lookupByName(name))

    def _create(self, name: str, dom) -> None:
        t = time.monotonic()
        try:
            self._api(f"start {name}", dom.create, timeout=120)
        except libvirt.libvirtError as e:
            raise RuntimeError(
                f"libvirt could not start {name}: {e}\n--- {self.qemu_log(name)} ---\n"
                f"{_tail_file(self.qemu_log(name))}\n{self.logs()}") from e
        self.last_domain_start = time.monotonic() - t

    def start_domain(self, name: str) -> None:
        """Start the defined domain name (raises libvirt.libvirtError if unknown)."""
        self._create(name, self.domain(name))

    def destroy(self, name: str) -> bool:
        """Power the domain off at once (QEMU is gone on return); False if it was not running."""
        dom = self.domain(name)
        if not self._api(f"isActive {name}", dom.isActive):
            return False
        self._api(f"destroy {name}", dom.destroy)
        return True

    def undefine(self, name: str) -> None:
        """Remove the domain's definition (a running domain becomes transient)."""
        dom = self.domain(name)
        self._api(f"undefine {name}", dom.undefine)

    def is_active(self, name: str) -> bool:
        dom = self.domain(name)
        return bool(self._api(f"isActive {name}", dom.isActive))

    def live_xml(self, name: str) -> str:
        """virDomainGetXMLDesc(name, 0): the live XML with aliases while it runs."""
        dom = self.domain(name)
        return self._api(f"XMLDesc {name}", lambda: dom.XMLDesc(0))

    def qemu_pid(self, name: str) -> int | None:
        """QEMU's pid for a running domain, from libvirt's status XML (None if not running)."""
        try:
            with open(os.path.join(self.status_dir, name + ".xml")) as f:
                head = f.read(4096)
        except OSError:
            return None
        m = re.search(r"<domstatus\b[^>]*\bpid='(\d+)'", head)
        return int(m.group(1)) if m else None


def _stop_all() -> None:
    for lv in list(_instances):
        try:
            if lv._holder is not None or lv._daemon is not None:
                lv.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_stop_all)
