"""End to end, all four services as processes (`crm_shared.platform`): a lead posted to leads →
routed to a rep → `lead.assigned` through the outbox, relay and bus → notify's consumer plans the
delivery and writes the rep's in-app inbox item in the same transaction. Twice: on PostgreSQL +
RabbitMQ, and on the embedded default `crm run` starts (SQLite files + the embedded SQLite bus).
Leads are posted at a steady rate; beside it, in the same run, a bare Flask + SQLAlchemy insert
endpoint (same gunicorn settings, same database kind) is posted to at the same rate. The e2e
latency is broken into hops from timestamps the services store anyway. Also each process's peak RSS.

    .venv/bin/python bench/e2e.py          # prints the Markdown section

Sizes: BENCH_E2E_RATE (leads/s, 100), BENCH_E2E_SECONDS (60), BENCH_E2E_SENDERS (client threads, 16),
BENCH_E2E_BARE_SECONDS (15), BENCH_E2E_LOW_RATE / BENCH_E2E_LOW_SECONDS (15/s for 10 s: the same path
and baseline again at a rate intake sustains), BENCH_E2E_VARIANTS (postgres,embedded).

BENCH_E2E_BEFORE=/path/to/an/older/checkout runs each variant again with that checkout's services and
shared code (first on the processes' PYTHONPATH; the databases get this checkout's migrations, so the
two must have the same schema), in turn with this checkout's, BENCH_E2E_ROUNDS times (1), and adds a
table of the runs side by side (e.g. `git worktree add --detach /tmp/before <rev>`); `make bench`
leaves it out. The older checkout runs in the layout before notify's jobs got a process of their
own (one worker process per service: `Platform(jobs_apart=())`), as its `crm worker` has no --parts.
BENCH_E2E_JOBS_APART (comma-separated services, default `crm_shared.platform.JOBS_APART`; empty: none)
sets this checkout's layout; BENCH_E2E_BEFORE_JOBS_APART (default: none) the older checkout's, when it
has `crm worker --parts` (from 4ca01cc on).
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

TITLE = "End to end: lead posted → lead.assigned in the rep's inbox (all services as processes)"
RATE = int(os.environ.get("BENCH_E2E_RATE", "100"))
SECONDS = float(os.environ.get("BENCH_E2E_SECONDS", "60"))
SENDERS = int(os.environ.get("BENCH_E2E_SENDERS", "16"))
BARE_SECONDS = min(SECONDS, float(os.environ.get("BENCH_E2E_BARE_SECONDS", "15")))
LOW_RATE = int(os.environ.get("BENCH_E2E_LOW_RATE", "15"))      # a rate leads' intake sustains on 2 cores
LOW_SECONDS = float(os.environ.get("BENCH_E2E_LOW_SECONDS", "10"))
PY = sys.executable


def _bare_table():
    from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table
    return Table("bare_leads", MetaData(), Column("id", Integer, primary_key=True), Column("name", String(200)),
                 Column("phone", String(40)), Column("email", String(320)), Column("source", String(20)),
                 Column("created_at", DateTime(timezone=True)))


def _bare_engine(url: str):
    """A SQLite file gets the services' own settings (WAL, synchronous=NORMAL, BEGIN IMMEDIATE:
    `crm_shared.db.make_engine`), so the baseline is the same database as theirs, minus the work."""
    if url.startswith("sqlite"):
        from crm_shared.db import make_engine
        return make_engine(url)
    from sqlalchemy import create_engine
    return create_engine(url, pool_size=5)


def bare_app():
    """gunicorn factory (`--chdir bench 'e2e:bare_app()'`): POST /bare inserts the JSON body as one row
    (the table is created by the benchmark before the workers start)."""
    from flask import Flask, jsonify, request

    t = _bare_table()
    engine = _bare_engine(os.environ["BENCH_BARE_DB"])
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
            body = {"name": f"E2E {prefix}{i}", "phone": f"13{'wxbyz'.index(prefix)}{i:08d}", "email": f"e{prefix}{i}@example.com",
                    "company": f"杭州{prefix}{i}科技有限公司", "city": "杭州", "province": "浙江", "source": "website"}
            wall, start = time.time(), time.perf_counter()
            status, out = request(port, "POST", path, body, headers)
            with lock:
                results.append((wall, (time.perf_counter() - start) * 1000, status, out))

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return results


class MailSink:
    """The mail server the platform sends to, as docker-compose's mailpit is (`SMTP_URL`): an
    in-process aiosmtpd that accepts every message and counts them (nothing is stored)."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        from crm_shared.platform import free_port
        self.count = 0
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                sink.count += 1
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()
        return False

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


REPS = 4
# The bench's 4 reps stand for a sales floor that takes 100 leads/s (hundreds of reps, each well under
# notify's email throttle of 20 an hour); with the shipped throttle, all but their first 20 emails would
# be folded into a digest. The bench lifts it so that every lead.assigned is mailed, as it is in production.
THROTTLE_MAX = "1000000"


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


BEFORE = os.environ.get("BENCH_E2E_BEFORE")
ROUNDS = int(os.environ.get("BENCH_E2E_ROUNDS", "1"))
_APART = os.environ.get("BENCH_E2E_JOBS_APART")
JOBS_APART = None if _APART is None else tuple(x for x in _APART.split(",") if x)
BEFORE_JOBS_APART = tuple(x for x in os.environ.get("BENCH_E2E_BEFORE_JOBS_APART", "").split(",") if x)


def run() -> str:
    with services_importable():
        parts = []
        for variant in VARIANTS:
            if variant not in ONLY:
                continue
            if not BEFORE:
                parts.append(_run(variant)[0])
                continue
            tree = Path(BEFORE).resolve()
            rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True,
                                 text=True).stdout.strip()
            rows = []
            for r in range(ROUNDS):
                for label, code in (("this checkout", None), (f"{rev} (BENCH_E2E_BEFORE)", tree)):
                    text, summary = _run(variant, code)
                    if r == 0 and code is None:
                        parts.append(text)
                    rows.append([str(r + 1), label] + summary)
            parts.append("\n".join([
                f"#### {variant}: this checkout and {rev} in turn ({ROUNDS} round(s))", "",
                C.md_table(["Round", "Code", "Achieved /s", "e2e p50 ms", "e2e p99 ms", "bare p50 ms", "e2e / bare"]
                           + [f"{k} p50 ms" for k in HOPS if k != "total"]
                           + [f"e2e p50 ms at {LOW_RATE}/s", f"bare p50 ms at {LOW_RATE}/s",
                              "emails received by SMTP when the inbox was done", "notify worker(s) CPU ms per lead"],
                           rows)]))
        return "\n\n".join(parts)


def _code_path(tree: Path) -> str:
    """PYTHONPATH that puts an older checkout's services and shared code before the installed ones."""
    return os.pathsep.join([str(p) for p in sorted((tree / "services").iterdir()) if p.is_dir()] + [str(tree / "shared")])


def _stamp(v) -> float:
    """A stored timestamp as epoch seconds (SQLite hands back naive UTC datetimes)."""
    if isinstance(v, str):
        v = datetime.datetime.fromisoformat(v)
    if v.tzinfo is None:
        v = v.replace(tzinfo=datetime.timezone.utc)
    return v.timestamp()


def _hops(urls: dict, sent: dict, seen: dict) -> dict:
    """Per assigned lead that arrived, the time of each hop (ms), from the timestamps the services
    store anyway: leads' outbox row (`created_at`: written in the intake transaction just before
    its commit; `published_at`: the relay's clock when it claimed the row, before publishing it; the
    row reads as published only once the broker has confirmed and the relay committed), notify's processed event
    (`processed_at`: the consumer's transaction for its batch began) and the inbox item."""
    from sqlalchemy import create_engine, text
    out = {}
    eng = create_engine(urls["leads"])
    with eng.connect() as c:
        for lead_id, ev, created, published in c.execute(text(
                "SELECT aggregate_id, event_id, created_at, published_at FROM outbox WHERE event_type = 'lead.assigned'")):
            out[str(lead_id)] = [ev, _stamp(created), _stamp(published) if published is not None else None]
    eng.dispose()
    eng = create_engine(urls["notify"])
    with eng.connect() as c:
        consumed = {ev: _stamp(at) for ev, at in c.execute(text(
            "SELECT event_id, processed_at FROM processed_events WHERE event_type = 'lead.assigned'"))}
    eng.dispose()
    hops = {k: [] for k in HOPS}
    for lead_id, t_send in sent.items():
        ob = out.get(lead_id)
        if ob is None or lead_id not in seen or ob[2] is None or ob[0] not in consumed:
            continue
        _, t_out, t_pub = ob
        t_cons, t_inbox = consumed[ob[0]], seen[lead_id]
        for k, v in zip(HOPS, (t_out - t_send, t_pub - t_out, t_cons - t_pub, t_inbox - t_cons, t_inbox - t_send)):
            hops[k].append(v * 1000)
    return hops


HOPS = {
    "send": "POST sent → `lead.assigned` written to leads' outbox (HTTP queueing + intake, in its transaction)",
    "relay": "outbox row written → relay claimed it (intake's commit, relay wake-up, claim)",
    "consume": "relay claimed it → notify's consumer took it (publish, broker: persisted and delivered; prefetch, batch)",
    "inbox": "consumer took it → inbox item written (notify's handler, in the consuming transaction)",
    "total": "**total: POST sent → inbox item**",
}
VARIANTS = ("postgres", "embedded")
ONLY = tuple(os.environ.get("BENCH_E2E_VARIANTS", ",".join(VARIANTS)).split(","))


def _run(variant: str, code: Path | None = None) -> tuple[str, list]:
    """The variant's Markdown section and a summary row; `code`: an older checkout to run instead."""
    from crm_shared import service as services
    from crm_shared.platform import Platform, free_port
    from sqlalchemy import create_engine, text

    names = services.installed()
    ns = f"bench{C.new_token()}e"
    embedded = variant == "embedded"
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        import contextlib
        with contextlib.ExitStack() as stack:
            if embedded:
                # exactly what `crm run` starts: a SQLite file per service and the embedded bus file
                urls, bus_url, bare_url = None, None, f"sqlite:///{tmp}/bare.db"
            else:
                urls = {n: stack.enter_context(C.postgres_database(f"bench_e2e_{n.replace('-', '_')}")) for n in names}
                bus_url, bare_url = C.AMQP_URL, stack.enter_context(C.postgres_database("bench_e2e_bare"))
            sink = stack.enter_context(MailSink())
            env = {"LOG_LEVEL": "WARNING", "BUS_DECLARE_PLATFORM": "1", "SMTP_URL": sink.url,
                   "NOTIFY_THROTTLE_MAX": THROTTLE_MAX}
            if not embedded:
                # as production runs (CRM_ENV=production refuses it): the real clock, not the movable
                # development clock `crm run` gives its processes (a stat of its file per reading)
                env["CRM_CLOCK_FILE"] = ""
            apart = JOBS_APART
            if code is not None:
                env["PYTHONPATH"] = _code_path(code)
                # the layout before: one worker process (consumer, relay and jobs), unless the older
                # checkout knows `crm worker --parts` and BENCH_E2E_BEFORE_JOBS_APART names its layout
                apart = BEFORE_JOBS_APART
            p = Platform(f"{tmp}/data", bus_url=bus_url, namespace=None if embedded else ns, database_urls=urls,
                         ports="free", env=env, log_dir=f"{tmp}/logs", jobs_apart=apart)
            apart = p.jobs_apart
            urls = {n: s.database_url for n, s in p.services.items()}
            bare = None
            try:
                p.start(wait=True, timeout=180)
                bare_port = free_port()
                eng = _bare_engine(bare_url)
                _bare_table().metadata.create_all(eng)
                eng.dispose()
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
                    "members": [{"user_id": f"rep{i}", "name": f"Rep {i}"} for i in range(REPS)]}, mgr)
                assert status == 201, team
                # the reps' contact data, as the identity sync or an admin enters it in notify
                for i in range(REPS):
                    status, body = request(p.services["notify"].port, "PUT", f"/v1/recipients/rep{i}", {
                        "name": f"Rep {i}", "email": f"rep{i}@example.com", "roles": ["sales_rep"],
                        "team_id": "bench"}, token("admin", ["admin"]))
                    assert status == 200, body
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
                bare_start = time.time()
                bare_res = paced_posts(bare_port, "/bare", {}, RATE, BARE_SECONDS, "b")
                bare_secs = time.time() - bare_start
                # the same path at a rate leads' intake sustains here: the latency of the pipeline
                # itself, without the queueing of requests intake cannot serve
                low_posted = paced_posts(leads_port, "/v1/leads", mgr, LOW_RATE, LOW_SECONDS, "y")
                low_bare = paced_posts(bare_port, "/bare", {}, LOW_RATE, LOW_SECONDS, "z")
                sent = {str(b["id"]): wall for wall, _, s, b in posted if s == 201 and b and b.get("owner_id")}
                low_sent = {str(b["id"]): wall for wall, _, s, b in low_posted if s == 201 and b and b.get("owner_id")}
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
                        seen[str(refs.get("lead_id"))] = _stamp(created)
                    if all(k in seen for k in sent) and all(k in seen for k in low_sent):
                        break
                    time.sleep(1)
                # the emails of lead.assigned: the dispatch job sends them beside the consumer (same
                # process); by now most are out, the rest follow
                with notify_engine.connect() as c:
                    emails = dict(c.execute(text("SELECT status, count(*) FROM deliveries WHERE channel = 'email' "
                                                 "AND event_type = 'lead.assigned' GROUP BY status")).all())
                mailed = sink.count
                # then until the dispatch job has sent them all (at most 60 s more), so that notify's
                # worker CPU below includes every lead's email
                drain = C.Deadline(60)
                while not drain.over():
                    with notify_engine.connect() as c:
                        unsent = c.execute(text("SELECT count(*) FROM deliveries WHERE channel = 'email' "
                                                "AND status IN ('pending', 'sending')")).scalar()
                    if not unsent:
                        break
                    time.sleep(0.5)
                notify_engine.dispose()
                hops = _hops(urls, sent, seen)
                e2e = [(seen[k] - t) * 1000 for k, t in sent.items() if k in seen]
                post_lat = [lat for _, lat, s, _ in posted if s == 201]
                bare_lat = [lat for _, lat, s, _ in bare_res if s == 201]
                low_e2e = [(seen[k] - t) * 1000 for k, t in low_sent.items() if k in seen]
                low_hops = _hops(urls, low_sent, seen)
                low_bare_lat = [lat for _, lat, s, _ in low_bare if s == 201]
                mem = []
                for name, part, proc in p.processes():
                    pids = [proc.pid] + children(proc.pid)
                    mem.append([name, part, " / ".join(f"{peak_rss_mb(x):.0f}" for x in pids),
                                f"{sum(C.cpu_seconds(x) for x in pids):.1f}"])
                intakes = len(posted) + len(low_posted) + 10  # and the warm-up's
                # notify's worker, and its jobs process where the jobs run apart
                worker_cpu = sum(float(cpu) for name, part, _, cpu in mem if name == "notify" and part != "web")
                load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
            finally:
                if bare is not None:
                    bare.terminate()
                    try:
                        bare.wait(20)
                    except subprocess.TimeoutExpired:
                        bare.kill()
                p.stop()
                if not embedded:
                    try:
                        from crm_shared.testing import delete_amqp_namespace
                        delete_amqp_namespace(ns, names, Settings_delays())
                    except Exception as exc:  # pragma: no cover - reported
                        print(f"e2e cleanup: {exc}", file=sys.stderr)
    p50, bare50 = C.percentile(e2e, 50), C.percentile(bare_lat, 50)
    ratio = p50 / bare50 if bare50 == bare50 and bare50 > 0 else float("nan")
    verdict = "meets" if ratio <= 5 else "**misses**"
    achieved = len(posted) / load_secs
    low50, low_bare50 = C.percentile(low_e2e, 50), C.percentile(low_bare_lat, 50)
    low_ratio = low50 / low_bare50 if low_bare50 == low_bare50 and low_bare50 > 0 else float("nan")
    if embedded:
        out += [f"### Embedded default: SQLite files + the embedded SQLite bus (`crm run`)", "",
                f"The same load on what `crm run` starts (`crm_shared.platform.Platform` with no database or bus "
                f"URL): a SQLite file per service and the embedded bus file, the same gunicorn settings. The "
                f"baseline inserts into a SQLite file of its own.", ""]
    else:
        out += [f"### PostgreSQL + RabbitMQ", "",
                f"Leads posted at {RATE}/s for {SECONDS:.0f} s by {SENDERS} client threads to leads' gunicorn "
                f"(`WEB_CONCURRENCY`/`WEB_THREADS` defaults), a round-robin team of 4 reps; every service's web and "
                f"worker as its own process, each on its own PostgreSQL database, one RabbitMQ namespace. E2E "
                f"latency = the inbox item's `created_at` − the POST's send time (same clock; `created_at` is taken "
                f"in the transaction that writes the item, so its commit, a few ms later with a batch, is not in "
                f"it). Notify writes an in-app item that is due now in the transaction that consumes the event. "
                f"The reps are registered in notify with an email address (`PUT /v1/recipients/{{id}}`) and "
                f"`SMTP_URL` points at a local SMTP server (aiosmtpd in the bench process, as docker-compose's "
                f"mailpit), so each `lead.assigned` also sends the rep an email through notify's dispatch job, "
                + ("which runs in a process of its own beside notify's consumer (`crm worker notify --parts "
                   "schedule`, as production runs it); " if "notify" in apart else
                   "which runs in notify's worker process beside the consumer; ")
                + f"notify's email throttle is lifted "
                f"(`NOTIFY_THROTTLE_MAX`={THROTTLE_MAX}: the bench's {REPS} reps stand for a sales floor of "
                f"hundreds, each under the shipped 20 an hour). The processes keep the real clock, as in "
                f"production (no `CRM_CLOCK_FILE`, which `crm run` sets for its movable development clock).", ""]
    out += [C.md_table(["Path", "Requests", "Achieved rate /s", "Errors", "p50 ms", "p99 ms"], [
                ["POST /v1/leads → 201 (HTTP only)", f"{len(posted):,}", C.fmt_rate(achieved),
                 f"{errors}" + (f" (HTTP {', '.join(map(str, statuses))})" if statuses else ""),
                 C.fmt_ms(C.percentile(post_lat, 50)), C.fmt_ms(C.percentile(post_lat, 99))],
                [f"**POST /v1/leads → `lead.assigned` in the rep's inbox** ({len(e2e):,} of {len(sent):,} assigned "
                 f"leads arrived)", f"{len(sent):,}", "", "", f"**{C.fmt_ms(p50)}**", f"**{C.fmt_ms(C.percentile(e2e, 99))}**"],
                [f"Baseline: bare Flask + SQLAlchemy INSERT, same rate, {BARE_SECONDS:.0f} s", f"{len(bare_res):,}",
                 C.fmt_rate(len(bare_res) / bare_secs), sum(1 for _, _, s, _ in bare_res if s != 201), C.fmt_ms(bare50),
                 C.fmt_ms(C.percentile(bare_lat, 99))],
                [f"POST /v1/leads → `lead.assigned` in the rep's inbox at {LOW_RATE}/s, {LOW_SECONDS:.0f} s "
                 f"({len(low_e2e):,} of {len(low_sent):,} arrived)", f"{len(low_posted):,}", "",
                 sum(1 for _, _, s, _ in low_posted if s != 201), C.fmt_ms(low50), C.fmt_ms(C.percentile(low_e2e, 99))],
                [f"Baseline: bare INSERT at {LOW_RATE}/s, {LOW_SECONDS:.0f} s", f"{len(low_bare):,}", "",
                 sum(1 for _, _, s, _ in low_bare if s != 201), C.fmt_ms(low_bare50),
                 C.fmt_ms(C.percentile(low_bare_lat, 99))],
            ]), "",
            f"Emails of `lead.assigned` when the last inbox item had arrived: "
            + (", ".join(f"{v:,} {k}" for k, v in sorted(emails.items())) or "none")
            + f"; the SMTP server had received {mailed:,} messages.", "",
            f"E2E p50 is **{ratio:.1f}x** the bare insert's p50 (goal: within 5x): this {verdict} it. "
            + (f"Leads' intake reached {achieved:.0f}/s of the {RATE}/s asked (load average at the end "
               f"{load}): the requests beyond what it serves queue in gunicorn, and that queueing is in the first "
               f"hop below and in the e2e figure. " if achieved < RATE * 0.95 else f"(Load average at the end {load}.) "),
            "",
            f"At {LOW_RATE}/s, a rate intake sustains here, e2e p50 is **{low_ratio:.1f}x** the bare insert's p50 at "
            f"that rate ({'meets' if low_ratio <= 5 else 'misses'} the 5x goal).", "",
            "Where the time goes, per lead (the hops add up to the total; mean is given because medians do not "
            "add up):", "",
            C.md_table(["Hop", f"p50 ms at {RATE}/s", "p99 ms", "mean ms", f"p50 ms at {LOW_RATE}/s", "p99 ms",
                        "mean ms"], [
                [HOPS[k], C.fmt_ms(C.percentile(v, 50)), C.fmt_ms(C.percentile(v, 99)),
                 C.fmt_ms(sum(v) / len(v) if v else float("nan")), C.fmt_ms(C.percentile(low_hops[k], 50)),
                 C.fmt_ms(C.percentile(low_hops[k], 99)),
                 C.fmt_ms(sum(low_hops[k]) / len(low_hops[k]) if low_hops[k] else float("nan"))]
                for k, v in hops.items()]), "",
            f"Notify's worker{' and jobs processes' if 'notify' in apart else ' (consumer + dispatch job)'} "
            f"used {worker_cpu:.1f} s of CPU in all, "
            f"{worker_cpu / intakes * 1000:.2f} ms per lead posted (two events and an email each), counted "
            + ("once every email had gone." if not unsent else f"with {unsent:,} emails still unsent after 60 s."), "",
            "#### Memory and CPU: peak RSS (VmHWM, MB) of each process after the run (gunicorn: master / workers), "
            "CPU seconds used (all the processes of the row)", "",
            C.md_table(["Service", "Process", "Peak RSS MB", "CPU s"], mem)]
    summary = [C.fmt_rate(achieved), C.fmt_ms(p50), C.fmt_ms(C.percentile(e2e, 99)), C.fmt_ms(bare50), f"{ratio:.1f}x"] + \
        [C.fmt_ms(C.percentile(v, 50)) for k, v in hops.items() if k != "total"] + [C.fmt_ms(low50), C.fmt_ms(low_bare50), f"{mailed:,} of {sum(emails.values()):,}",
                                                f"{worker_cpu / intakes * 1000:.2f}"]
    return "\n".join(out), summary


def Settings_delays():
    from crm_shared.config import Settings
    return Settings.from_env("cli").retry_delays_ms


if __name__ == "__main__":
    print(run())
