# SPDX-License-Identifier: MIT
"""ttyhub's benchmarks against its peers, measured side by side in one run.

Usage: bench.py --build DIR [--quick] [--only NAME[,NAME]] [--out DIR] [--no-write]
(tests/bench/run builds everything and calls this; run it with /usr/bin/python3).

Every tests/bench/b_*.py is a scenario: TITLE, ORDER and run(ctx) -> benchlib.Section.  The
scenarios run in ORDER; one that raises is reported as failed and the run goes on.  Then one
table goes to stdout, and OUT/BENCHMARKS.md (default: docs/ of this tree) is written with the
machine description, one table per section (ttyhub, peer, ratio, target, pass/fail), the
notes and the plots (PNG, matplotlib's Agg backend) under OUT/bench/.

Results are also kept in OUT/bench/results.json.  A run with --only measures the named
scenarios and replaces only their sections: the others are taken from results.json as they
were measured (each section says when, and with which ttyhub).

Exit status: 0 when every scenario ran (a missed target is a result, not an error), 1 when a
scenario failed, 2 for bad usage.
"""

import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import argparse  # noqa: E402
import glob  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))


def fmt(v):
    """A figure for a table: 3 significant digits, no exponent for everyday sizes."""
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1000:
        return "{:,.0f}".format(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    if a >= 0.01:
        return "%.3f" % v
    return "%.2g" % v


def fmt_ratio(r):
    return "—" if r is None else "%.2f×" % r


def fmt_ok(ok):
    return {True: "pass", False: "FAIL", None: ""}[ok]


def discover(only):
    """[(name, module or None, error text)] for every b_*.py, by ORDER."""
    out = []
    wanted = set()
    for n in filter(None, (x.strip() for x in only.split(","))):
        wanted.add(n[2:] if n.startswith("b_") else n[:-3] if n.endswith(".py") else n)
    missing = set(wanted)
    for path in sorted(glob.glob(os.path.join(HERE, "b_*.py"))):
        name = os.path.basename(path)[2:-3]
        if wanted and name not in wanted:
            continue
        missing.discard(name)
        try:
            mod = importlib.import_module("b_" + name)
            out.append((name, mod, None))
        except Exception:  # noqa: BLE001 - a broken module is a failed scenario
            out.append((name, None, traceback.format_exc()))
    if missing:
        raise SystemExit("bench.py: no scenario named %s (have: %s)" % (
            ", ".join(sorted(missing)),
            ", ".join(os.path.basename(p)[2:-3] for p in sorted(glob.glob(
                os.path.join(HERE, "b_*.py"))))))
    out.sort(key=lambda t: (getattr(t[1], "ORDER", 1000), t[0]))
    return out


def section_dict(name, sec, status, seconds, info, quick, error=None):
    return dict(name=name, title=sec.title, rows=sec.rows, notes=sec.notes, plots=sec.plots,
                status=status, seconds=seconds, error=error, measured=info["date"],
                ttyhub=info["ttyhub"], quick=quick)


def run_scenarios(ctx, scenarios, info):
    import benchlib
    results = []
    for name, mod, err in scenarios:
        title = getattr(mod, "TITLE", name)
        print("== %s (%s)" % (title, name), file=sys.stderr, flush=True)
        t0 = time.monotonic()
        error = None
        if mod is None:
            sec, status, error = benchlib.Section(title), "failed", err
        else:
            try:
                sec = mod.run(ctx)
                if not isinstance(sec, benchlib.Section):
                    raise TypeError("run() returned %r, not a benchlib.Section" % (sec,))
                status = "ok"
            except Exception:  # noqa: BLE001 - report it and go on
                error = traceback.format_exc()
                sec, status = benchlib.Section(title), "failed"
            finally:
                benchlib.cleanup()
        if error:
            print(error, file=sys.stderr, flush=True)
        dt = time.monotonic() - t0
        print("== %s: %s in %.0f s" % (name, status, dt), file=sys.stderr, flush=True)
        results.append(section_dict(name, sec, status, dt, info, ctx.quick, error))
    return results


def print_table(sections):
    head = ("section", "metric", "ttyhub", "peer", "peer is", "unit", "ratio", "target", "")
    rows = [head]
    for s in sections:
        if s["status"] != "ok":
            rows.append((s["name"], "FAILED (see the log above)", "", "", "", "", "", "", "FAIL"))
            continue
        for r in s["rows"]:
            rows.append((s["name"], r["metric"], fmt(r["ttyhub"]), fmt(r["peer"]),
                         r["peer_name"], r["unit"], fmt_ratio(r["ratio"]), r["target"],
                         fmt_ok(r["ok"])))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    widths[1] = min(widths[1], 60)
    for i, r in enumerate(rows):
        cells = []
        for j, c in enumerate(r):
            c = str(c)
            if j == 1 and len(c) > widths[1]:
                c = c[:widths[1] - 1] + "…"
            cells.append(c.rjust(widths[j]) if j in (2, 3, 6) else c.ljust(widths[j]))
        print("  ".join(cells).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def make_plots(sections, outdir):
    """PNG files for every plot; returns {file: error} for plots that failed."""
    failed = {}
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        for s in sections:
            for p in s["plots"]:
                failed[p["file"]] = "matplotlib is missing (%s)" % e
        return failed
    os.makedirs(outdir, exist_ok=True)
    for s in sections:
        for p in s["plots"]:
            try:
                fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
                if p.get("kind") == "bar":
                    cats = []
                    for pts in p["series"].values():
                        for x, _ in pts:
                            if x not in cats:
                                cats.append(x)
                    n = max(1, len(p["series"]))
                    w = 0.8 / n
                    for i, (label, pts) in enumerate(p["series"].items()):
                        d = dict(pts)
                        xs = [k + (i - (n - 1) / 2) * w for k in range(len(cats)) if cats[k] in d]
                        ys = [d[c] for c in cats if c in d]
                        bars = ax.bar(xs, ys, w, label=label)
                        ax.bar_label(bars, labels=[fmt(y) for y in ys], fontsize=7,
                                     rotation=90 if n > 2 else 0, padding=2)
                    ax.set_xticks(range(len(cats)))
                    ax.set_xticklabels([str(c) for c in cats])
                else:
                    for label, pts in p["series"].items():
                        pts = [pt for pt in pts if pt[1] is not None]
                        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o",
                                label=label)
                    if p.get("logx"):
                        ax.set_xscale("log")
                if p.get("logy"):
                    ax.set_yscale("log")
                ax.set_title(p["title"])
                ax.set_xlabel(p["xlabel"])
                ax.set_ylabel(p["ylabel"])
                ax.grid(True, alpha=0.3)
                if len(p["series"]) > 1 or p.get("kind") == "bar":
                    ax.legend(fontsize=8)
                fig.tight_layout()
                fig.savefig(os.path.join(outdir, p["file"]))
                plt.close(fig)
            except Exception as e:  # noqa: BLE001 - a bad plot must not lose the report
                failed[p["file"]] = "%s: %s" % (type(e).__name__, e)
    return failed


def md_escape(text):
    return str(text).replace("|", "\\|")


def write_markdown(path, sections, info, command, quick, plot_errors):
    out = []
    w = out.append
    w("# Benchmarks")
    w("")
    w("Generated by `tests/bench/run` (`tests/bench/bench.py`); do not edit by hand.  Every "
      "figure is measured on loopback on the machine below, ttyhub and its peer side by side "
      "in the same run; the ratio is ttyhub / peer.")
    w("")
    w("## Machine")
    w("")
    w("| | |")
    w("|---|---|")
    for key, label in (("cpu", "CPU"), ("cores", "cores"), ("ram", "RAM"), ("kernel", "kernel"),
                       ("ttyhub", "ttyhub"), ("openssh", "OpenSSH"), ("conserver", "conserver"),
                       ("socat", "socat"), ("qemu", "QEMU"), ("libssh", "libssh"),
                       ("openssl", "OpenSSL"), ("python", "Python"), ("date", "date")):
        w("| %s | %s |" % (label, md_escape(info.get(key, "unknown"))))
    w("")
    w("Command: `%s`%s" % (command, " (quick mode: shorter runs, fewer samples)" if quick else ""))
    w("")
    n_fail = sum(1 for s in sections for r in s["rows"] if r["ok"] is False)
    n_pass = sum(1 for s in sections for r in s["rows"] if r["ok"] is True)
    failed = [s["name"] for s in sections if s["status"] != "ok"]
    w("Targets met: %d of %d.%s" % (n_pass, n_pass + n_fail,
                                     "  Scenarios that failed to run: %s." % ", ".join(failed)
                                     if failed else ""))
    w("")
    w("## Summary")
    w("")
    w("| section | metric | ttyhub | peer | ratio | target | result |")
    w("|---|---|---:|---:|---:|---|---|")
    for s in sections:
        for r in s["rows"]:
            if r["target"]:
                peer = "—" if r["peer"] is None else "%s %s (%s)" % (
                    fmt(r["peer"]), r["unit"], md_escape(r["peer_name"]))
                w("| %s | %s | %s %s | %s | %s | %s | %s |" % (
                    md_escape(s["title"]), md_escape(r["metric"]), fmt(r["ttyhub"]), r["unit"],
                    peer, fmt_ratio(r["ratio"]), md_escape(r["target"]), fmt_ok(r["ok"])))
    w("")
    # Where ttyhub loses and why: written by hand from the profiles (tests/bench/analysis.md).
    analysis = os.path.join(HERE, "analysis.md")
    if os.path.exists(analysis):
        with open(analysis) as f:
            w(f.read().rstrip("\n"))
        w("")
    for s in sections:
        w("## %s" % s["title"])
        w("")
        stamp = "Measured %s, %.0f s" % (s["measured"], s["seconds"])
        if s["ttyhub"] != info["ttyhub"]:
            stamp += ", ttyhub %s" % s["ttyhub"]
        if s.get("quick") and not quick:
            stamp += ", quick mode"
        w("_%s (scenario `b_%s.py`)._" % (stamp, s["name"]))
        w("")
        if s["status"] != "ok":
            w("**This scenario failed to run:**")
            w("")
            w("```")
            w((s.get("error") or "unknown error").rstrip()[-3000:])
            w("```")
            w("")
        if s["rows"]:
            w("| metric | ttyhub | peer | peer is | unit | ratio | target | result |")
            w("|---|---:|---:|---|---|---:|---|---|")
            for r in s["rows"]:
                w("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    md_escape(r["metric"]), fmt(r["ttyhub"]), fmt(r["peer"]),
                    md_escape(r["peer_name"]), r["unit"], fmt_ratio(r["ratio"]),
                    md_escape(r["target"]), fmt_ok(r["ok"])))
            w("")
        for n in s["notes"]:
            w("- " + n)
        if s["notes"]:
            w("")
        for p in s["plots"]:
            if p["file"] in plot_errors:
                w("_(plot %s failed: %s)_" % (p["file"], plot_errors[p["file"]]))
            else:
                w("![%s](bench/%s)" % (p["title"], p["file"]))
            w("")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(out).rstrip() + "\n")
    os.rename(tmp, path)


def main():
    ap = argparse.ArgumentParser(description="ttyhub benchmarks against its peers")
    ap.add_argument("--build", required=True, help="the build directory to measure")
    ap.add_argument("--quick", action="store_true", help="shorter runs, fewer samples")
    ap.add_argument("--only", default="", help="NAME[,NAME]: these scenarios (b_NAME.py) only")
    ap.add_argument("--out", default=os.path.join(TOP, "docs"),
                    help="where BENCHMARKS.md goes (plots in OUT/bench/)")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    ap.add_argument("--command", default=None, help="the command line to quote in the report")
    args = ap.parse_args()

    build = os.path.abspath(args.build)
    os.environ["TTYHUB_BUILD"] = build   # before anything imports hub.py / sshhub.py
    sys.path.insert(0, HERE)
    import benchlib

    if os.geteuid() != 0:
        print("bench.py: warning: not root; the OpenSSH and conserver peers need root",
              file=sys.stderr)
    benchlib.raise_nofile()
    scenarios = discover(args.only)
    info = benchlib.machine_info(build)
    ctx = benchlib.Ctx(build, quick=args.quick)
    try:
        benchlib.check_sshload(ctx)
    finally:
        benchlib.cleanup()
    t0 = time.monotonic()
    results = run_scenarios(ctx, scenarios, info)
    print()
    print_table(results)
    print()
    for s in results:
        for n in s["notes"]:
            print("[%s] %s" % (s["name"], n))
    print()
    print("%d scenarios in %.0f s; targets met: %d of %d" % (
        len(results), time.monotonic() - t0,
        sum(1 for s in results for r in s["rows"] if r["ok"] is True),
        sum(1 for s in results for r in s["rows"] if r["ok"] is not None)))

    if not args.no_write:
        plotdir = os.path.join(args.out, "bench")
        os.makedirs(plotdir, exist_ok=True)
        store = os.path.join(plotdir, "results.json")
        kept = {}
        if args.only and os.path.exists(store):
            with open(store) as f:
                kept = {s["name"]: s for s in json.load(f)["sections"]}
        for s in results:
            kept[s["name"]] = s
        order = {name: getattr(mod, "ORDER", 1000) for name, mod, _ in discover("")}
        sections = sorted(kept.values(), key=lambda s: (order.get(s["name"], 1000), s["name"]))
        sections = [s for s in sections if s["name"] in order]
        plot_errors = make_plots(sections if not args.only else results, plotdir)
        command = args.command or "tests/bench/run" + (" --quick" if args.quick else "") + \
            (" --only " + args.only if args.only else "")
        with open(store + ".tmp", "w") as f:
            json.dump({"machine": info, "sections": sections}, f, indent=1, default=str)
        os.rename(store + ".tmp", store)
        write_markdown(os.path.join(args.out, "BENCHMARKS.md"), sections, info, command,
                       args.quick, plot_errors)
        print("wrote %s and %s/" % (os.path.join(args.out, "BENCHMARKS.md"), plotdir))
    if any(s["status"] != "ok" for s in results):
        print("work directory kept (logs of the failed scenarios):", ctx.root)
        return 1
    shutil.rmtree(ctx.root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
