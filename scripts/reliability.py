"""Runs the reliability tests (pytest -m reliability) and writes docs/RELIABILITY.md from what they
counted (`make reliability`). Each test writes its figures as JSON into $CRM_RESULTS_DIR; this
script sets that directory, runs the tests, and renders every JSON file it finds there, so no figure
in the document is typed by hand.

    .venv/bin/python scripts/reliability.py                     # run the tests, write docs/RELIABILITY.md
    .venv/bin/python scripts/reliability.py --render-only       # render the JSON files already there
    .venv/bin/python scripts/reliability.py --results DIR --out FILE -- -k poison   # more pytest arguments
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import _common as C  # noqa: E402  (machine and server versions, as in docs/BENCHMARKS.md)

DEFAULT_RESULTS = ROOT / "var" / "reliability"
RUN_FILE = "_run.json"
JUNIT_FILE = "_junit.xml"


# -- running ---------------------------------------------------------------------------------------

def run_tests(results: Path, extra: list[str]) -> dict:
    results.mkdir(parents=True, exist_ok=True)
    for f in results.glob("*.json"):
        f.unlink()  # figures of an earlier run must not pass for this one's
    argv = [sys.executable, "-m", "pytest", "-m", "reliability", "-q",
            f"--junitxml={os.path.relpath(results / JUNIT_FILE, ROOT)}", *extra]
    env = dict(os.environ, CRM_RESULTS_DIR=str(results))
    info, revision = C.machine_info(), C.git_revision()  # the code the tests ran, not what came after
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    rc = subprocess.call(argv, cwd=ROOT, env=env)
    run = {"started": started.strftime("%Y-%m-%d %H:%M UTC"), "seconds": round(time.monotonic() - t0),
           "exit_status": rc, "revision": revision, "machine": info,
           "load_end": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
           "command": "make reliability" if os.environ.get("MAKELEVEL") else
           " ".join(["scripts/reliability.py", *sys.argv[1:]]),
           "pytest": " ".join(["CRM_RESULTS_DIR=" + os.path.relpath(results, ROOT), "pytest", *argv[3:]])}
    (results / RUN_FILE).write_text(json.dumps(run, indent=2), encoding="utf-8")
    return run


# -- rendering -------------------------------------------------------------------------------------

def table(header: list[str], rows: list[list]) -> str:
    return C.md_table(header, [[_cell(c) for c in r] for r in rows])


def _cell(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_cell(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_cell(x) for x in v)
    return str(v).replace("|", "\\|").replace("\n", " ")


def junit(results: Path) -> list[list]:
    path = results / JUNIT_FILE
    if not path.exists():
        return []
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[tag]
                if tag == "skipped":
                    outcome += f" ({(el.get('message') or '').strip()[:80]})"
        rows.append([f"`{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}`", outcome,
                     round(float(case.get("time") or 0), 1)])
    return rows


FAULT_KEYS = {"name", "title", "backend", "faults", "faults_injected", "events_by_type", "effects",
              "duplicated_by_kind", "finished_at", "python", "machine", "lost", "duplicated",
              "events_produced", "deliveries_expected", "deliveries_processed", "total_seconds"}


def fault_section(d: dict) -> str:
    out = [f"### {d.get('title') or d['name']} — {d.get('backend', '')}", "",
           f"From `{d['name']}.json` ({d.get('finished_at', '')}).", ""]
    faults = d.get("faults") or []
    if faults:
        out += ["Faults injected:", "", table(
            ["fault", "at lead", "deliveries in flight", "down (s)", "count"],
            [[f.get("fault"), f.get("at_lead", "—"), f.get("in_flight", "—"), f.get("down_seconds", "—"),
              f.get("faults", 1)] for f in faults]), ""]
    if "deliveries_expected" in d:
        out += ["Counted afterwards in the services' databases:", "", table(["what", "count"], [
            ["events produced (all outboxes)", d["events_produced"]],
            *[[f"  {k}", v] for k, v in (d.get("events_by_type") or {}).items()],
            ["deliveries expected (each event × each consuming service)", d["deliveries_expected"]],
            ["deliveries processed (in the consumers' inboxes)", d["deliveries_processed"]],
            ["**lost**", f"**{d['lost']}**"],
            *[[k, v] for k, v in (d.get("effects") or {}).items()],
            ["**duplicated effects**", f"**{d['duplicated']}**"],
            *[[f"  {k}", v] for k, v in (d.get("duplicated_by_kind") or {}).items()],
        ]), ""]
    rest = [[k.replace("_", " "), v] for k, v in sorted(d.items()) if k not in FAULT_KEYS]
    if rest:
        out += ["Other figures:", "", table(["figure", "value"], rest), ""]
    return "\n".join(out)


def hostile_section(d: dict) -> str:
    out = ["### Hostile input", "", "From `hostile.json`.", ""]
    fuzz = d.get("fuzz") or {}
    if fuzz:
        cols = sorted({k for v in fuzz.values() if isinstance(v, dict) for k in v})
        out += ["Fuzzing (schemathesis) per service:", "",
                table(["service", *cols], [[s, *[v.get(c, "—") for c in cols]] for s, v in sorted(fuzz.items())]), ""]
    for k, v in sorted(d.items()):
        if k == "fuzz":
            continue
        if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
            cols = sorted({c for x in v.values() for c in x})
            out += [f"{k.replace('_', ' ').capitalize()}:", "",
                    table(["", *cols], [[name, *[x.get(c, "—") for c in cols]] for name, x in sorted(v.items())]), ""]
        else:
            out += [table([k.replace("_", " "), ""], [["value", v]]), ""]
    return "\n".join(out)


def generic_section(title: str, name: str, d: dict) -> str:
    rows = []

    def walk(prefix, v):  # nested objects as dotted names
        if isinstance(v, dict) and v:
            for k, x in v.items():
                walk(f"{prefix}{k}.", x)
        else:
            rows.append([prefix.rstrip("."), v])
    walk("", d)
    return "\n".join([f"### {title}", "", f"From `{name}.json`.", "", table(["figure", "value"], rows), ""])


ORDER = ("faults-rabbitmq", "faults-sigkill", "faults-database", "faults-poison")


def _order(name: str) -> tuple:
    return next((i for i, p in enumerate(ORDER) if name.startswith(p)), len(ORDER)), name


def render(results: Path) -> str:
    files = sorted(p for p in results.glob("*.json") if p.name != RUN_FILE)
    data = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in files}
    run_path = results / RUN_FILE
    run = json.loads(run_path.read_text(encoding="utf-8")) if run_path.exists() else {}
    faults = dict(sorted(((k, v) for k, v in data.items() if k.startswith("faults-")), key=lambda kv: _order(kv[0])))
    head = [
        "# Reliability",
        "",
        "Generated by `make reliability` (= `.venv/bin/python scripts/reliability.py`): it runs every test marked "
        "`reliability` with `CRM_RESULTS_DIR` set, each test writes what it counted there as JSON, and this page is "
        "rendered from those files. Do not edit by hand; run it again. Each fault test drives the four services as "
        "real processes (gunicorn web + worker each, own database each, one bus) through their HTTP APIs only, "
        "injects its faults, then counts in the services' databases: every event in any outbox must have been "
        "processed by each service that consumes its type (**lost** = the ones that were not) and every effect "
        "must exist once (**duplicated** = rows beyond one per key).",
        "",
    ]
    if run:
        status = "all passed" if run.get("exit_status") == 0 else f"pytest exit status {run.get('exit_status')}"
        head += [f"Run: {run['started']}, command `{run['command']}` (`{run['pytest']}`), revision {run['revision']}, "
                 f"{run['seconds']} s in all, {status}.", ""]
        machine = dict(run.get("machine") or {})
        machine["Load average at end"] = run.get("load_end", "?")
        head += [table(["Machine", ""], [[k, v] for k, v in machine.items()]), "",
                 "The servers are local (127.0.0.1). The machine is shared: durations move between runs; the "
                 "counts (lost, duplicated) must not.", ""]
    rows = junit(results)
    if rows:
        head += ["## Tests run", "", table(["test", "outcome", "seconds"], rows), ""]
    if faults:
        head += ["## Faults: summary", "", table(
            ["test", "backend", "faults injected", "deliveries counted", "lost", "duplicated", "seconds"],
            [[v.get("title") or k, v.get("backend", ""), v.get("faults_injected", "—"),
              v.get("deliveries_processed", "—"), v.get("lost", "—"), v.get("duplicated", "—"),
              v.get("total_seconds", "—")] for k, v in faults.items()]), "",
                 "## Faults in detail", ""]
        head += [fault_section(v) for v in faults.values()]
    if "hostile" in data:
        head += ["## Hostile input", "", hostile_section(data["hostile"])]
    if "flow" in data:
        head += ["## The business flow, end to end", "", generic_section("Flow", "flow", data["flow"])]
    others = {k: v for k, v in data.items() if not k.startswith("faults-") and k not in ("hostile", "flow")}
    if others:
        head += ["## Other results", ""] + [generic_section(k, k, v) for k, v in others.items()]
    if not data:
        head += ["No result files were found: run `make reliability`.", ""]
    head += ["## What these tests do not cover", "",
             "* **A database outage on the embedded default.** There a service's database is a SQLite file on its "
             "own disk: it cannot become unreachable while the process runs, short of a disk failure. The nearest "
             "fault, another process holding the write lock longer than the busy timeout (30 s), is answered with "
             "503 and `Retry-After` by the same code path as a PostgreSQL outage (`database is locked` counts as "
             "transient), but no test here holds a lock that long.",
             "* **A database that drops packets instead of refusing.** The proxy resets connections and refuses new "
             "ones (a stopped or restarted server); a black hole would make each request wait for TCP timeouts.",
             "* **The broker losing its disk.** RabbitMQ is stopped and started (`stop_app`/`start_app`), its "
             "quorum queues kept on disk; a lost node is a matter for a RabbitMQ cluster.",
             ""]
    return "\n".join(head)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=os.environ.get("CRM_RESULTS_DIR") or str(DEFAULT_RESULTS),
                    help="directory of the JSON files (default: var/reliability)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "RELIABILITY.md"))
    ap.add_argument("--render-only", action="store_true", help="do not run the tests, render what is there")
    args = ap.parse_args(argv)
    results = Path(args.results).resolve()
    rc = 0
    if not args.render_only:
        rc = run_tests(results, extra)["exit_status"]
    Path(args.out).write_text(render(results), encoding="utf-8")
    print(f"reliability: wrote {os.path.relpath(args.out, ROOT)} from {results}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
