"""End to end on PostgreSQL + RabbitMQ, all four services as processes (`crm_shared.platform`): a
lead posted to leads → routed to a rep → `lead.assigned` through the outbox, relay and RabbitMQ →
notify's consumer plans the delivery → its dispatch job writes the rep's inbox item. Leads are
posted at a steady rate; beside it, in the same run, a bare Flask + SQLAlchemy insert endpoint
(same gunicorn settings) is posted to at the same rate. Also each process's peak RSS.

    .venv/bin/python bench/e2e.py          # prints the Markdown section

Sizes: BENCH_E2E_RATE (leads/s, 100), BENCH_E2E_SECONDS (60), BENCH_E2E_SENDERS (client threads, 16).
(This module must not import the `leads` package's name: bench/leads.py is a module called `leads`.)"""
from __future__ import annotations

import datetime
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import _common as C  # noqa: E402

TITLE = "End to end: lead posted → lead.assigned in the rep's inbox (PostgreSQL + RabbitMQ, all services as processes)"
RATE = int(os.environ.get("BENCH_E2E_RATE", "100"))
SECONDS = float(os.environ.get("BENCH_E2E_SECONDS", "60"))
SENDERS = int(os.environ.get("BENCH_E2E_SENDERS", "16"))
PY = sys.executable


def bare_app():
    """gunicorn factory (`--chdir bench 'e2e:bare_app()'`): POST /bare inserts the JSON body as one row."""
    from flask import Flask, jsonify, request
    from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, create_engine

    md = MetaData()
    t = Table("bare_leads", md, Column("id", Integer, primary_key=True), Column("name", String(200)),
              Column("phone", String(40)), Column("email", String(320)), Column("source", String(20)),
              Column("created_at", DateTime(timezone=True)))
    engine = create_engine(os.environ["BENCH_BARE_DB"], pool_size=5)
    md.create_all(engine)
    app = Flask("bare")

    @app.post("/bare")
    def bare():
        body = request.get_json()
        with engine.begin() as c:
            new_id = c.execute(t.insert().values(name=body.get("name"), phone=body.get("phone"), email=body.get("email"),
                                                 source=body.get("source"),
                                                 created_at=datetime.datetime.now(datetime.timezone.utc))
                               ).inserted_primary_key[0]
        return jsonify(id=new_id), 201

    return app


def request(port: int, method: str, path: str, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    data = json.dumps(body).encode() if body is not None else None
    c.request(method, path, body=data, headers={**({"Content-Type": "application/json"} if data else {}),
                                                **(headers or {})})
    r = c.getresponse()
    out = r.read()
    c.close()
    return r.status, (json.loads(out) if out else None)


def token(user, roles, team="bench"):
    from crm_shared.config import DEV_JWT_SECRET
    from crm_shared.web.auth import dev_token
    return {"Authorization": "Bearer " + dev_token(DEV_JWT_SECRET, user, user.upper(), roles, team)}


def paced_posts(port: int, path: str, headers: dict, rate: int, seconds: float, prefix: str) -> list[tuple]:
    """POSTs at `rate`/s from SENDERS threads taking turns on one schedule; returns
    (sent wall time, latency ms, status, response body) per request."""
    total = int(rate * seconds)
    t0 = time.monotonic() + 0.2
    lock = threading.Lock()
    nxt = [0]
    results = []

    def sender():
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= total or time.monotonic() - t0 >= seconds:
                return  # a server that cannot keep up gets fewer requests, not a longer run
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = {"name": f"E2E {prefix}{i}", "phone": f"13{'wxb'.index(prefix)}{i:08d}", "email": f"e{prefix}{i}@example.com",
                    "company": f"杭州{prefix}{i}科技有限公司", "city": "杭州", "province": "浙江", "source": "website"}
            wall, start = time.time(), time.perf_counter()
            status, out = request(port, "POST", path, body, headers)
            with lock:
                results.append((wall, (time.perf_counter() - start) * 1000, status, out))

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return results


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set size so far."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class services_importable:
    """bench/ holds modules named like service packages (bench/leads.py, notify.py, sales.py), which
    shadow them when bench/ is on sys.path (bench/run.py puts it first). While the platform loads
    the services, the packages must win; afterwards those names are left as they were found, so
    bench/run.py still imports the bench modules."""

    def __enter__(self):
        self.names = {p.stem for p in HERE.glob("*.py")}
        self.path = list(sys.path)
        sys.path[:] = [x for x in sys.path if Path(x or ".").resolve() != HERE]
        self.saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] in self.names}
        return self

    def __exit__(self, *exc):
        sys.path[:] = self.path
        for k in [k for k in sys.modules if k.split(".")[0] in self.names]:
            del sys.modules[k]
        sys.modules.update(self.saved)
        return False


def run() -> str:
    with services_importable():
        return _run()


def _run() -> str:
    from crm_shared import service as services
    from crm_shared.platform import Platform
    from sqlalchemy import create_engine, text

    names = services.installed()
    ns = f"bench{C.new_token()}e"
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        import contextlib
        with contextlib.ExitStack() as stack:
            urls = {n: stack.enter_context(C.postgres_database(f"bench_e2e_{n.replace('-', '_')}")) for n in names}
            bare_url = stack.enter_context(C.postgres_database("bench_e2e_bare"))
            env = {"LOG_LEVEL": "WARNING", "BUS_DECLARE_PLATFORM": "1"}
            p = Platform(f"{tmp}/data", bus_url=C.AMQP_URL, namespace=ns, database_urls=urls, ports="free", env=env,
                         log_dir=f"{tmp}/logs")
            bare = None
            try:
                p.start(wait=True, timeout=180)
                bare_port = __import__("crm_shared.platform", fromlist=["free_port"]).free_port()
                argv = [PY, "-m", "gunicorn", "--bind", f"127.0.0.1:{bare_port}",
                        "--workers", os.environ.get("WEB_CONCURRENCY", "2"), "--worker-class", "gthread",
                        "--threads", os.environ.get("WEB_THREADS", "4"), "--log-level", "warning",
                        "--chdir", str(HERE), "e2e:bare_app()"]
                bare = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "BENCH_BARE_DB": bare_url},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                leads_port = p.services["leads"].port
                mgr = token("manager", ["sales_manager"])
                status, team = request(leads_port, "POST", "/v1/teams", {
                    "name": "Bench", "code": "bench", "strategy": "round_robin",
                    "members": [{"user_id": f"rep{i}", "name": f"Rep {i}"} for i in range(4)]}, mgr)
                assert status == 201, team
                status, rule = request(leads_port, "POST", "/v1/routing-rules", {
                    "priority": 1, "conditions": {"province": ["浙江"]}, "team_id": int(team["id"])}, mgr)
                assert status == 201, rule
                deadline = C.Deadline(60)
                while not deadline.over():
                    try:
                        if request(bare_port, "POST", "/bare", {"name": "warm"})[0] == 201:
                            break
                    except OSError:
                        time.sleep(0.3)
                paced_posts(leads_port, "/v1/leads", mgr, 10, 1, "w")  # warm up
                paced_posts(bare_port, "/bare", {}, 10, 1, "w")

                load_start = time.time()
                posted = paced_posts(leads_port, "/v1/leads", mgr, RATE, SECONDS, "x")
                load_secs = time.time() - load_start
                bare_res = paced_posts(bare_port, "/bare", {}, RATE, min(SECONDS, 20), "b")
                sent = {str(b["id"]): wall for wall, _, s, b in posted if s == 201 and b and b.get("owner_id")}
                errors = sum(1 for _, _, s, _ in posted if s != 201)
                statuses = sorted({s for _, _, s, _ in posted if s != 201})
                notify_engine = create_engine(urls["notify"])
                seen = {}
                wait = C.Deadline(120)
                while not wait.over():
                    with notify_engine.connect() as c:
                        rows = c.execute(text("SELECT refs, created_at FROM inbox_items "
                                              "WHERE event_type = 'lead.assigned'")).all()
                    for refs, created in rows:
                        refs = refs if isinstance(refs, dict) else json.loads(refs)
                        seen[str(refs.get("lead_id"))] = created.timestamp()
                    if all(k in seen for k in sent):
                        break
                    time.sleep(1)
                notify_engine.dispose()
                e2e = [(seen[k] - t) * 1000 for k, t in sent.items() if k in seen]
                post_lat = [lat for _, lat, s, _ in posted if s == 201]
                bare_lat = [lat for _, lat, s, _ in bare_res if s == 201]
                mem = []
                for name, part, proc in p.processes():
                    pids = [proc.pid] + children(proc.pid)
                    mem.append([name, part, " / ".join(f"{peak_rss_mb(x):.0f}" for x in pids)])
            finally:
                if bare is not None:
                    bare.terminate()
                    try:
                        bare.wait(20)
                    except subprocess.TimeoutExpired:
                        bare.kill()
                p.stop()
                try:
                    from crm_shared.testing import delete_amqp_namespace
                    delete_amqp_namespace(ns, names, Settings_delays())
                except Exception as exc:  # pragma: no cover - reported
                    print(f"e2e cleanup: {exc}", file=sys.stderr)
    p50, bare50 = C.percentile(e2e, 50), C.percentile(bare_lat, 50)
    ratio = p50 / bare50 if bare50 == bare50 and bare50 > 0 else float("nan")
    verdict = "meets" if ratio <= 5 else "**misses**"
    out += [f"Leads posted at {RATE}/s for {SECONDS:.0f} s by {SENDERS} client threads to leads' gunicorn "
            f"(`WEB_CONCURRENCY`/`WEB_THREADS` defaults), a round-robin team of 4 reps; every service's web and worker "
            f"as its own process, each on its own PostgreSQL database, one RabbitMQ namespace. E2E latency = the inbox "
            f"item's `created_at` − the POST's send time (same clock). Notify writes inbox items from its dispatch "
            f"job, which runs every second: that job's period is part of the e2e figure.", "",
            C.md_table(["Path", "Requests", "Achieved rate /s", "Errors", "p50 ms", "p99 ms"], [
                ["POST /v1/leads → 201 (HTTP only)", f"{len(posted):,}", C.fmt_rate(len(posted) / load_secs),
                 f"{errors}" + (f" (HTTP {', '.join(map(str, statuses))})" if statuses else ""),
                 C.fmt_ms(C.percentile(post_lat, 50)), C.fmt_ms(C.percentile(post_lat, 99))],
                [f"**POST /v1/leads → `lead.assigned` in the rep's inbox** ({len(e2e):,} of {len(sent):,} assigned "
                 f"leads arrived)", f"{len(sent):,}", "", "", f"**{C.fmt_ms(p50)}**", f"**{C.fmt_ms(C.percentile(e2e, 99))}**"],
                [f"Baseline: bare Flask + SQLAlchemy INSERT, same rate, {min(SECONDS, 20):.0f} s", f"{len(bare_res):,}",
                 "", sum(1 for _, _, s, _ in bare_res if s != 201), C.fmt_ms(bare50), C.fmt_ms(C.percentile(bare_lat, 99))],
            ]), "",
            f"E2E p50 is **{ratio:.1f}x** the bare insert's p50 (goal: within 5x): this {verdict} it. An achieved "
            f"rate below {RATE}/s means leads' intake could not keep up (the requests queued: see the Leads section "
            "for its throughput), and the e2e latency then includes that queueing.", "",
            "#### Memory: peak RSS (VmHWM, MB) of each process after the run (gunicorn: master / workers)", "",
            C.md_table(["Service", "Process", "Peak RSS MB"], mem)]
    return "\n".join(out)


def Settings_delays():
    from crm_shared.config import Settings
    return Settings.from_env("cli").retry_delays_ms


if __name__ == "__main__":
    print(run())
