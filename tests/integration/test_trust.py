#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A chardev is a guest, never the broker and never a service.

  - A lying QMP monitor, run as an unprivileged user, names in query-chardev
    the broker's own socket, a socket owned by another user, a "pty" outside
    /dev/pts and a symbolic link.  ttyhubd (without --guest-user root) puts
    each of those consoles in state error with its reason, keeps serving the
    monitor's honest chardev and `ttyhub list`, and nothing typed into a
    lying console reaches the broker.
  - A --console socket whose listener is root is refused unless ttyhubd was
    started with --guest-user root; even then ttyhubd's own socket is refused.
  - A real QEMU run as that unprivileged user, served through --qmp with the
    default options: its console connects and its shell answers.
  - A reload (SIGHUP) that drops lock-dir from the configuration and adds a
    pty console: the pty is served (and the sanitized run catches any use of
    the freed lock-dir string).
  - A pty lock file planted by an unprivileged user is ignored, with a warning.
  - A QMP monitor that names its VM with 200 bytes, or gives a UUID that is
    not canonical, gets none of its consoles served, with the reason among
    the errors of `ttyhub list`; a --qmp socket that another user made for a
    root listener is refused even with --guest-user root.

Unprivileged processes run as nobody:nogroup through setpriv.
"""

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest as G  # noqa: E402
import hub  # noqa: E402
import runner  # noqa: E402

USER, GROUP = "nobody", "nogroup"
UID = pwd.getpwnam(USER).pw_uid
OTHER_UID = 1  # "daemon": owns the foreign socket
SETPRIV = ["setpriv", "--reuid=" + USER, "--regid=" + GROUP, "--clear-groups"]
GOOD_TEXT = b"HONEST-GUEST-OUTPUT"
# A broker "hello" and "list" frame, as an attacker would type them into a console.
INJECT = b"".join(b"C" + len(p).to_bytes(4, "big") + p for p in (
    json.dumps({"type": "hello", "version": 1, "client": "evil"}).encode(),
    json.dumps({"type": "list"}).encode()))


# --- the lying QMP monitor (runs as nobody: python3 test_trust.py --fake-qmp ...) ---------

def fake_qmp(qmp_path, chardevs_json, good_paths):
    """Serve QMP on qmp_path answering query-chardev with chardevs_json, and be an honest
    guest on each of good_paths (writes GOOD_TEXT, records what it receives)."""
    chardevs = json.loads(chardevs_json)

    def guest(path):
        ls = socket.socket(socket.AF_UNIX)
        ls.bind(path)
        ls.listen(4)
        while True:
            c, _ = ls.accept()
            try:
                c.sendall(GOOD_TEXT + b" " + os.path.basename(path).encode() + b"\r\n")
                while c.recv(4096):
                    pass
            except OSError:
                pass
            c.close()

    def monitor(c):
        f = c.makefile("rwb", buffering=0)
        f.write(b'{"QMP": {"version": {"qemu": {"major": 8, "minor": 0, "micro": 0}, '
                b'"package": ""}, "capabilities": []}}\r\n')
        answers = {
            "query-name": {"name": os.environ.get("FAKE_QMP_NAME", "evil")},
            "query-uuid": {"UUID": os.environ.get("FAKE_QMP_UUID",
                                                  "00000000-0000-0000-0000-00000000e71e")},
            "query-chardev": chardevs,
            "query-status": {"status": "running", "running": True},
        }
        for line in f:
            try:
                req = json.loads(line)
            except ValueError:
                continue
            reply = {"return": answers.get(req.get("execute"), {})}
            if "id" in req:
                reply["id"] = req["id"]
            f.write(json.dumps(reply).encode() + b"\r\n")
        c.close()

    for p in good_paths:
        threading.Thread(target=guest, args=(p,), daemon=True).start()
    ls = socket.socket(socket.AF_UNIX)
    ls.bind(qmp_path + ".tmp")
    ls.listen(4)
    os.rename(qmp_path + ".tmp", qmp_path)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=monitor, args=(c,), daemon=True).start()


# --- helpers -----------------------------------------------------------------------------

def user_dir(parent, name, uid=UID, gid=None):
    path = os.path.join(parent, name)
    os.mkdir(path)
    os.chown(path, uid, gid if gid is not None else pwd.getpwuid(uid).pw_gid)
    os.chmod(path, 0o755)
    return path


def wait_path(path, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, "helper exited with %s" % proc.returncode
        assert time.monotonic() < deadline, "%s did not appear" % path
        time.sleep(0.05)


def root_listener(path):
    """A socket root listens on (a service, not a guest); the caller closes it."""
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(8)
    return s


def state_of(d, name):
    c = d.console(name) or {}
    return c.get("state"), c.get("status", "")


def wait_state(d, name, state, contains=None, timeout=30):
    def ok():
        st, status = state_of(d, name)
        return st == state and (contains is None or contains in status) and (st, status)
    return d.wait_for(ok, timeout=timeout, what="%s %s %s (now %r)" % (
        name, state, contains or "", state_of(d, name)))


def pty_serves(d, name, master, text):
    """What is written on the pty's master side reaches a client attached to console name."""
    c = hub.BrokerClient(d.socket)
    try:
        c.send({"type": "attach", "console": name, "mode": "ro", "replay": 0})
        c.expect_type("attached")
        os.write(master, text + b"\r\n")
        c.read_data_until(text, timeout=20)
    finally:
        c.close()


def kill(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- checks ------------------------------------------------------------------------------

def t_lying_qmp(res, wd):
    qdir = user_dir(wd, "q")
    qmp_path = os.path.join(qdir, "evil-qmp.sock")
    good, target = os.path.join(qdir, "good.sock"), os.path.join(qdir, "target.sock")
    link = os.path.join(qdir, "link.sock")
    fdir = user_dir(wd, "f", uid=OTHER_UID)
    foreign = os.path.join(fdir, "foreign.sock")
    d = hub.Daemon(wd, "--qmp", qmp_path, guest_root=False)
    chardevs = [
        {"label": "charserial0", "filename": "unix:%s,server=on" % good, "frontend-open": True},
        {"label": "charself", "filename": "unix:%s,server=on" % d.socket},
        {"label": "charforeign", "filename": "unix:%s,server=on" % foreign},
        {"label": "charzero", "filename": "pty:/dev/zero"},
        {"label": "charlink", "filename": "unix:%s,server=on" % link},
    ]
    fq = subprocess.Popen(SETPRIV + [sys.executable, os.path.abspath(__file__), "--fake-qmp",
                                     qmp_path, json.dumps(chardevs), good, target],
                          stdin=subprocess.DEVNULL)
    fs = None
    try:
        wait_path(qmp_path, fq)
        wait_path(target, fq)
        os.symlink(target, link)
        fs = root_listener(os.path.join(fdir, "tmp.sock"))
        os.rename(os.path.join(fdir, "tmp.sock"), foreign)
        os.chown(foreign, OTHER_UID, OTHER_UID)
        assert os.stat(qmp_path).st_uid == UID
        d.start()

        def honest_served():
            wait_state(d, "evil:serial0", "connected")
            c = hub.BrokerClient(d.socket)
            c.send({"type": "attach", "console": "evil:serial0", "mode": "ro", "replay": "all"})
            c.read_data_until(GOOD_TEXT, timeout=30)
            c.close()
        res.run("lying QMP: its honest chardev is served", honest_served)

        def refused(name, contains):
            def check():
                wait_state(d, name, "error", contains)
                assert d.console(name)["status"].startswith("refused") or \
                    "symbolic link" in contains, d.console(name)
            return check
        res.run("lying QMP: the broker's own socket is refused",
                refused("evil:self", "refused: %s is owned by uid 0, not by the guest's uid %d"
                        % (d.socket, UID)))
        res.run("lying QMP: another user's socket is refused",
                refused("evil:foreign", "refused: %s is owned by uid %d, not by the guest's "
                        "uid %d" % (foreign, OTHER_UID, UID)))
        res.run("lying QMP: a pty outside /dev/pts is refused",
                refused("evil:zero", "refused: /dev/zero is not a pty under /dev/pts/"))
        res.run("lying QMP: a symbolic link is refused",
                refused("evil:link", "%s is a symbolic link; refusing to follow it" % link))

        def nothing_reaches_broker():
            before = d.log()
            w = hub.BrokerClient(d.socket)
            w.send({"type": "attach", "console": "evil:self", "mode": "rw", "replay": 0})
            w.expect_type("attached")
            w.send_data(INJECT)
            w.close()
            time.sleep(1)  # give a (wrong) loopback connection the chance to show up
            after = d.log()[len(before):]
            assert "pid %d" % d.pid() not in after, after
            for c in d.list()["consoles"]:
                who = hub.BrokerClient(d.socket)
                who.send({"type": "who", "console": c["name"]})
                clients = who.expect_type("who")["clients"]
                who.close()
                assert not [x for x in clients if "pid %d" % d.pid() in x.get("user", "")], \
                    clients
            # Still refused, never connected.
            st, status = state_of(d, "evil:self")
            assert st == "error" and status.startswith("refused"), (st, status)
        res.run("lying QMP: keystrokes into a refused console reach nobody",
                nothing_reaches_broker)

        def list_works():
            r = d.cli("list")
            assert r.returncode == 0, r.stderr
            for n in [b"evil:serial0", b"evil:self", b"evil:foreign", b"evil:zero",
                      b"evil:link"]:
                assert n in r.stdout, r.stdout
            assert d.alive()
        res.run("lying QMP: ttyhub list (as root) still works", list_works)
    finally:
        d.stop()
        kill(fq)
        if fs:
            fs.close()


def t_console_root_peer(res, wd):
    sub = os.path.join(wd, "c")
    os.mkdir(sub)
    rootsock = os.path.join(sub, "root.sock")
    rl = root_listener(rootsock)
    udir = user_dir(wd, "u")
    usock = os.path.join(udir, "user.sock")
    fg = subprocess.Popen(SETPRIV + [hub.FAKE_GUEST, "--socket", usock, "--rate", "2000",
                                     "--tag", "nb"], stdin=subprocess.DEVNULL)
    try:
        wait_path(usock, fg)
        d1 = hub.Daemon(sub, "--console", "rootpeer=" + rootsock, "--console", "user=" + usock,
                        name="plain", guest_root=False).start()
        try:
            def root_refused():
                wait_state(d1, "rootpeer", "error",
                           "refused: the peer of %s is uid 0 (root), not a guest" % rootsock)
            res.run("--console: a root peer is refused without --guest-user root", root_refused)

            def user_accepted():
                wait_state(d1, "user", "connected")
            res.run("--console: a socket owned by its unprivileged peer is served",
                    user_accepted)
        finally:
            d1.stop()

        d2 = hub.Daemon(sub, "--console", "rootpeer=" + rootsock, name="asroot")
        d2.args += ["--console", "self=" + d2.socket]
        d2.start()
        try:
            def root_accepted():
                wait_state(d2, "rootpeer", "connected")
            res.run("--console: a root peer is served with --guest-user root", root_accepted)

            def self_refused():
                wait_state(d2, "self", "error",
                           "refused: the peer of %s is ttyhubd itself" % d2.socket)
            res.run("--console: ttyhubd's own socket is refused even with --guest-user root",
                    self_refused)
        finally:
            d2.stop()
    finally:
        kill(fg)
        rl.close()


class UserGuest(G.Guest):
    """A real QEMU guest run as the unprivileged user."""

    def command(self):
        return SETPRIV + super().command()


def t_real_qemu_as_user(res, wd):
    gdir = user_dir(wd, "g")
    g = UserGuest(gdir, "uvm", start=False)
    for attr in ("kernel", "initrd"):
        dst = os.path.join(gdir, os.path.basename(getattr(g, attr)))
        shutil.copyfile(getattr(g, attr), dst)
        os.chmod(dst, 0o644)
        setattr(g, attr, dst)
    g.start(timeout=60)
    d = hub.Daemon(wd, "--qmp", g.qmp_sock, name="realqemu", guest_root=False)
    w = None
    try:
        assert os.stat(g.qmp_sock).st_uid == UID
        d.start()

        def connects():
            wait_state(d, "uvm:serial0", "connected", timeout=60)
        res.run("real QEMU as %s via --qmp (defaults): its console connects" % USER, connects)

        def boots():
            nonlocal w
            w = G.Pty(d.cli_cmd("attach", "uvm"))
            w.expect(r"attached to uvm:serial0 read-write")
            G.sync_shell(w, timeout=120)
            w.send("echo $((6*7))\r")
            w.expect(rb"(?m)^42\r?$", timeout=30)
        res.run("real QEMU as %s: its boot output and shell arrive" % USER, boots)
    finally:
        if w:
            w.close()
        d.stop()
        g.stop()


def t_reload_drops_lock_dir(res, wd):
    sub = os.path.join(wd, "r")
    locks = os.path.join(sub, "locks")
    os.makedirs(locks)
    conf = os.path.join(sub, "ttyhubd.conf")
    with open(conf, "w") as f:
        f.write("lock-dir = %s\nconsole = none=%s/none.sock\n" % (locks, sub))
    master, slave = os.openpty()
    pty = os.ttyname(slave)
    d = hub.Daemon(sub, "--config", conf, name="reload", lock_dir=False)
    try:
        d.start()

        def reload_serves_pty():
            with open(conf, "w") as f:
                # lock-dir is gone: the default applies; the string it pointed to is freed.
                f.write("console = none=%s/none.sock\nconsole = p=%s\n" % (sub, pty))
            os.kill(d.pid(), signal.SIGHUP)
            st = wait_state(d, "p", "connected")
            assert pty in st[1], st
            pty_serves(d, "p", master, b"through-the-pty")
            assert "cannot create lock file" not in d.log(), d.log()[-2000:]
            # A second reload (the same file) keeps everything working.
            os.kill(d.pid(), signal.SIGHUP)
            d.wait_for(lambda: d.log().count("SIGHUP") >= 2, what="second reload")
            wait_state(d, "p", "connected")
            assert d.alive()
        res.run("reload without lock-dir, adding a pty console: served, no stale lock-dir",
                reload_serves_pty)
    finally:
        d.stop()
        os.close(master)
        os.close(slave)


def t_planted_lock(res, wd):
    sub = os.path.join(wd, "l")
    os.mkdir(sub)
    locks = user_dir(sub, "locks")
    os.chmod(locks, 0o1777)  # like /run/lock: anyone may create files
    master, slave = os.openpty()
    pty = os.ttyname(slave)
    lock = os.path.join(locks, "LCK.." + pty[len("/dev"):].replace("/", "_"))
    # A stranger's lock file naming a live process (init) that it cannot remove.
    subprocess.run(SETPRIV + ["sh", "-c", "printf '%10d\\n' 1 > " + lock], check=True)
    assert os.stat(lock).st_uid == UID
    d = hub.Daemon(sub, "--lock-dir", locks, "--console", "p=" + pty, name="lock",
                   lock_dir=False)
    try:
        d.start()

        def ignored():
            wait_state(d, "p", "connected")
            assert "ignoring lock file %s of uid %d" % (lock, UID) in d.log(), d.log()[-2000:]
            pty_serves(d, "p", master, b"despite-the-lock")
        res.run("a pty lock file planted by another user is ignored (with a warning)",
                ignored)
    finally:
        d.stop()
        os.close(master)
        os.close(slave)


def t_qmp_identity(res, wd):
    qdir = user_dir(wd, "id")
    long_qmp, bad_uuid_qmp = os.path.join(qdir, "long.sock"), os.path.join(qdir, "uuid.sock")
    good1, good2 = os.path.join(qdir, "g1.sock"), os.path.join(qdir, "g2.sock")
    fakes = []
    for path, good, env in ((long_qmp, good1, {"FAKE_QMP_NAME": "v" * 200}),
                            (bad_uuid_qmp, good2, {"FAKE_QMP_NAME": "tricky",
                                                   "FAKE_QMP_UUID": "web01"})):
        chardevs = [{"label": "charserial0", "filename": "unix:%s,server=on" % good}]
        fakes.append(subprocess.Popen(
            SETPRIV + [sys.executable, os.path.abspath(__file__), "--fake-qmp", path,
                       json.dumps(chardevs), good],
            stdin=subprocess.DEVNULL, env=dict(os.environ, **env)))
    # A socket root listens on, whose file another user owns: made for it, not by it.
    made_for = os.path.join(wd, "made-for-root.sock")
    rl = root_listener(made_for)
    os.chown(made_for, UID, -1)
    d = hub.Daemon(wd, "--qmp", long_qmp, "--qmp", bad_uuid_qmp, name="identity",
                   guest_root=False)
    d2 = hub.Daemon(wd, "--qmp", made_for, name="made-for")
    try:
        for p, f in zip((long_qmp, bad_uuid_qmp), fakes):
            wait_path(p, f)
        d.start()
        d2.start()

        def errors():
            return " | ".join(e["message"] for e in d.list()["errors"])

        def long_name():
            d.wait_for(lambda: "query-name answered a name of 200 bytes" in errors(),
                       timeout=30, what="the long-name refusal in list (%s)" % errors())
            names = [c["name"] for c in d.list()["consoles"]]
            assert not any(n.startswith("v" * 100) for n in names), names
        res.run("QMP: a 200-byte VM name is refused, not cut (error in list)", long_name)

        def bad_uuid():
            d.wait_for(lambda: "tricky" in errors() and "UUID" in errors(), timeout=30,
                       what="the UUID refusal in list (%s)" % errors())
            assert d.console("tricky") is None and d.console("web01") is None, d.list()
            r = d.cli("attach", "web01", "--ro")
            assert r.returncode != 0 and b"no console named" in r.stderr + r.stdout, r
        res.run("QMP: a UUID that is not canonical is refused (error in list)", bad_uuid)

        def made_for_refused():
            want = "%s belongs to uid %d but its listener is uid 0" % (made_for, UID)
            d2.wait_for(lambda: want in " | ".join(e["message"] for e in d2.list()["errors"]),
                        timeout=30, what="the --qmp owner refusal in list")
        res.run("--qmp: a socket another user made for a root listener is refused",
                made_for_refused)
    finally:
        d.stop()
        d2.stop()
        for f in fakes:
            kill(f)
        rl.close()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--fake-qmp":
        fake_qmp(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    res = runner.Runner()
    wd = hub.workdir("trust")
    os.chmod(wd, 0o755)  # the unprivileged helpers reach their own subdirectories
    t_lying_qmp(res, wd)
    t_console_root_peer(res, wd)
    t_reload_drops_lock_dir(res, wd)
    t_planted_lock(res, wd)
    t_qmp_identity(res, wd)
    t_real_qemu_as_user(res, wd)
    res.finish(wd)


if __name__ == "__main__":
    main()
