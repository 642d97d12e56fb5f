"""Faults against the real four services (web under gunicorn and worker, each a process of its own),
driven only through their HTTP APIs, counted in their databases afterwards:

* RabbitMQ stopped in the middle of 2,000 leads and started again (a private RabbitMQ node);
* workers killed with SIGKILL mid-batch and restarted (embedded bus and RabbitMQ);
* a service's database unreachable for a while (a TCP proxy between sales and PostgreSQL, cut);
* a poison message dead-lettered after its retries, replayed once fixed (both buses).

Every event a service's outbox holds must be processed exactly once by each of its consumers
(`lost` = expected deliveries missing from the consumer's inbox), and every effect must exist
exactly once (`duplicated` = rows beyond one per key): assignments in leads, inbox messages in
notify, customers and opportunities in sales, the customer read models in leads and service-desk.
With CRM_RESULTS_DIR set each test writes what it counted to <name>.json there, for
scripts/reliability.py to render docs/RELIABILITY.md."""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform as host
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone

import pytest
import requests
from sqlalchemy import text

from crm_shared import db, testing
from crm_shared.config import DEV_JWT_SECRET
from crm_shared.events.catalogue import CONSUMERS
from crm_shared.platform import Platform
from crm_shared.web.auth import dev_token

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

N_LEADS = int(os.environ.get("CRM_FAULT_LEADS", "2000"))
N_CONVERT = int(os.environ.get("CRM_FAULT_CONVERSIONS", "300"))
# the embedded run (SIGKILLs only) is shorter: the 2,000 are the RabbitMQ run's
N_KILL_LEADS = int(os.environ.get("CRM_FAULT_KILL_LEADS", "1000"))
REPS = [f"rep{i}" for i in range(4)]
PLATFORM_ENV = {"BUS_RETRY_DELAYS_MS": "200,500,1000", "LOG_LEVEL": "WARNING", "WEB_CONCURRENCY": "1",
                "BUS_LEASE_SECONDS": "10", "OUTBOX_POLL_MS": "100",
                # notify's dispatcher claims deliveries for 5 minutes by default: after a SIGKILL the
                # claimed ones would wait that long; 15 s keeps the test short (the figure says so)
                "NOTIFY_DISPATCH_LEASE_SECONDS": "15"}
REQUIRE = os.environ.get("CRM_REQUIRE_SERVERS") == "1"


def headers(user: str, roles: list[str], team: str | None = "east") -> dict:
    return {"Authorization": "Bearer " + dev_token(DEV_JWT_SECRET, user, user, roles, team)}


MANAGER = headers("mgr1", ["sales_manager"])
OPS = headers("ops1", ["ops"], None)


# -- figures --------------------------------------------------------------------------------------

def record(name: str, figures: dict) -> None:
    """Write the figures of one fault test to $CRM_RESULTS_DIR/<name>.json (if set)."""
    out = os.environ.get("CRM_RESULTS_DIR")
    if not out:
        return
    os.makedirs(out, exist_ok=True)
    figures = {"name": name, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "python": sys.version.split()[0], "machine": f"{host.system()} {host.machine()}, {os.cpu_count()} CPUs",
               "test_settings": ", ".join(f"{k}={v}" for k, v in PLATFORM_ENV.items()), **figures}
    with open(os.path.join(out, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(figures, f, indent=2, ensure_ascii=False, sort_keys=True)


# -- the load: leads through the HTTP API, some converted by their reps ----------------------------

class Load:
    """Posts `n` leads through leads' API from a few threads (a routing rule gives each to one of
    four reps, so each is `lead.assigned`), and converts every (n // conversions)-th as its owner
    (contacted → qualified → converted), so sales creates a customer for it."""

    def __init__(self, p: Platform, n: int = N_LEADS, conversions: int = N_CONVERT, threads: int = 6, first: int = 0):
        self.p, self.n, self.threads, self.first = p, n, threads, first
        step = max(1, n // conversions) if conversions else 0
        self.to_convert = set(range(first, first + n, step)[:conversions]) if conversions else set()
        self._next = itertools.count(first)
        self._lock = threading.Lock()
        self.posted = 0
        self.converted = 0
        self.lead_ids: dict[int, str] = {}
        self.owners: dict[str, str] = {}
        self.errors: list[str] = []
        self._workers: list[threading.Thread] = []
        self.started = self.finished = None

    def setup(self) -> "Load":
        L = self.p.url("leads")
        r = requests.post(L + "/v1/teams", json={"name": "East", "code": "east", "strategy": "round_robin",
                                                 "members": [{"user_id": u, "name": u} for u in REPS]},
                          headers=MANAGER, timeout=30)
        assert r.status_code == 201, r.text
        r = requests.post(L + "/v1/routing-rules", json={"priority": 1, "conditions": {"source": ["website"]},
                                                         "team_id": int(r.json()["id"])}, headers=MANAGER, timeout=30)
        assert r.status_code == 201, r.text
        for rep in REPS:  # each rep takes new leads in the app only (the reps have no email address here)
            r = requests.put(self.p.url("notify") + "/v1/preferences", json={"channels": {"lead.assigned": ["inbox"]}},
                             headers=headers(rep, ["sales_rep"]), timeout=30)
            assert r.status_code == 200, r.text
        return self

    def start(self) -> "Load":
        self.started = time.monotonic()
        for _ in range(self.threads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def _run(self) -> None:
        s = requests.Session()
        L = self.p.url("leads")
        while True:
            i = next(self._next)
            if i >= self.first + self.n or len(self.errors) > 20:
                return
            try:
                r = s.post(L + "/v1/leads", json={"name": f"Lead {i}", "company": f"Fault Test Co {i}",
                                                  "phone": f"139{i:08d}", "city": "Shanghai", "source": "website"},
                           headers=OPS, timeout=60)
                if r.status_code != 201:
                    self.errors.append(f"POST /v1/leads: {r.status_code} {r.text[:200]}")
                    continue
                lead = r.json()
                with self._lock:
                    self.posted += 1
                    self.lead_ids[i] = lead["id"]
                    self.owners[lead["id"]] = lead["owner_id"]
                if i in self.to_convert:
                    self.convert(s, lead["id"], lead["owner_id"])
            except requests.RequestException as exc:
                self.errors.append(f"lead {i}: {exc}")

    def convert(self, s, lead_id: str, owner: str) -> None:
        L, h = self.p.url("leads"), headers(owner, ["sales_rep"])
        for status in ("contacted", "qualified"):
            r = s.post(f"{L}/v1/leads/{lead_id}/status", json={"status": status}, headers=h, timeout=60)
            if r.status_code != 200:
                self.errors.append(f"status {status}: {r.status_code} {r.text[:200]}")
                return
        r = s.post(f"{L}/v1/leads/{lead_id}/convert", json={"opportunity_name": f"Deal {lead_id}"}, headers=h, timeout=60)
        if r.status_code != 200:
            self.errors.append(f"convert: {r.status_code} {r.text[:200]}")
            return
        with self._lock:
            self.converted += 1

    def wait_posted(self, k: int, timeout: float = 240) -> None:
        testing.wait_until(lambda: self.posted >= k or self.errors or not self.alive(), timeout=timeout, interval=0.05,
                           message=f"{k} leads posted")
        assert not self.errors, self.errors[:5]

    def alive(self) -> bool:
        return any(t.is_alive() for t in self._workers)

    def join(self, timeout: float = 300) -> None:
        for t in self._workers:
            t.join(timeout)
        self.finished = time.monotonic()
        assert not self.errors, self.errors[:5]
        assert self.posted == self.n and self.converted == len(self.to_convert)

    @property
    def seconds(self) -> float:
        return round((self.finished or time.monotonic()) - self.started, 1)


# -- counting: every expected delivery, every effect ------------------------------------------------

@contextlib.contextmanager
def engines(p: Platform):
    es = {n: db.make_engine(s.database_url) for n, s in p.services.items()}
    try:
        yield es
    finally:
        for e in es.values():
            e.dispose()


def _rows(e, sql: str) -> list:
    with e.connect() as c:
        return c.execute(text(sql)).all()


def ledger(p: Platform) -> dict:
    """What the four databases say: events produced, expected and processed deliveries (each
    consumer of each event type), and the effects, grouped by the key that makes them unique."""
    with engines(p) as es:
        produced = {n: _rows(e, "SELECT event_id, event_type, published_at IS NOT NULL FROM outbox") for n, e in es.items()}
        processed = {n: {r[0] for r in _rows(e, "SELECT event_id FROM processed_events")} for n, e in es.items()}
        expected = {(c, eid) for n, rows in produced.items() for eid, et, _ in rows
                    for c in CONSUMERS.get(et, ()) if c in es}
        known = {eid for rows in produced.values() for eid, _, _ in rows}
        lost = sorted(k for k in expected if k[1] not in processed[k[0]])
        by_type = Counter(et for rows in produced.values() for _, et, _ in rows)
        leads = es["leads"]
        effects = {
            # one assignment per lead: its owner, and one lead.assigned event
            "leads: leads": _rows(leads, "SELECT count(*) FROM leads")[0][0],
            "leads: assigned to a rep": _rows(leads, "SELECT count(*) FROM leads WHERE owner_id IS NOT NULL")[0][0],
            "leads: converted, linked to their customer":
                _rows(leads, "SELECT count(*) FROM leads WHERE customer_id IS NOT NULL")[0][0],
            "leads: customers (read model)": _rows(leads, "SELECT count(*) FROM customers")[0][0],
            "notify: lead.assigned deliveries (inbox)": _rows(es["notify"], "SELECT count(*) FROM deliveries WHERE "
                                                          "event_type = 'lead.assigned' AND channel = 'inbox'")[0][0],
            "notify: lead.assigned inbox messages": _rows(es["notify"], "SELECT count(*) FROM inbox_items "
                                                          "WHERE event_type = 'lead.assigned'")[0][0],
            "sales: customers": _rows(es["sales"], "SELECT count(*) FROM customers")[0][0],
            "sales: opportunities": _rows(es["sales"], "SELECT count(*) FROM opportunities")[0][0],
            "service-desk: customers (read model)": _rows(es["service-desk"], "SELECT count(*) FROM customers")[0][0],
        }
        # duplicates: more than one row for what must exist once
        dup_queries = {
            "leads: lead.assigned per lead": (leads, "SELECT aggregate_id, count(*) FROM outbox WHERE "
                                              "event_type = 'lead.assigned' GROUP BY aggregate_id"),
            "notify: inbox message per lead.assigned event and rep": (
                es["notify"], "SELECT event_id, user_id, count(*) FROM inbox_items WHERE event_type = 'lead.assigned' "
                              "GROUP BY event_id, user_id"),
            "notify: delivery per event, recipient, channel": (
                es["notify"], "SELECT event_id, recipient, channel, count(*) FROM deliveries GROUP BY event_id, recipient, channel"),
            "sales: customer per lead": (es["sales"], "SELECT lead_id, count(*) FROM customers GROUP BY lead_id"),
            "sales: opportunity per lead": (es["sales"], "SELECT lead_id, count(*) FROM opportunities GROUP BY lead_id"),
        }
        duplicated = {k: sum(r[-1] - 1 for r in _rows(e, q)) for k, (e, q) in dup_queries.items()}
        inbox_per_rep = dict(_rows(es["notify"], "SELECT user_id, count(*) FROM inbox_items WHERE "
                                                 "event_type = 'lead.assigned' GROUP BY user_id"))
        owners = dict(_rows(leads, "SELECT owner_id, count(*) FROM leads GROUP BY owner_id"))
    return {
        "events_produced": sum(len(r) for r in produced.values()),
        "events_by_type": dict(sorted(by_type.items())),
        "unpublished": sum(1 for rows in produced.values() for r in rows if not r[2]),
        "deliveries_expected": len(expected),
        "deliveries_processed": len(expected) - len(lost),
        "lost": len(lost),
        "lost_sample": [f"{c}:{eid}" for c, eid in lost[:5]],
        "unknown_processed": sum(len(ids - known) for ids in processed.values()),
        "effects": effects,
        "duplicated_by_kind": duplicated,
        "duplicated": sum(duplicated.values()),
        "inbox_per_rep": inbox_per_rep,
        "leads_per_rep": owners,
    }


def settled(p: Platform, n_leads: int, n_customers: int):
    """The ledger once everything has arrived (or None): every delivery processed, every outbox
    row published, every lead.assigned in its rep's inbox, every conversion a customer everywhere."""
    c = ledger(p)
    e = c["effects"]
    done = (c["lost"] == 0 and c["unpublished"] == 0
            and e["notify: lead.assigned inbox messages"] >= n_leads
            and e["sales: customers"] >= n_customers
            and e["leads: converted, linked to their customer"] >= n_customers
            and e["service-desk: customers (read model)"] >= n_customers)
    return c if done else None


def wait_settled(p: Platform, n_leads: int, n_customers: int, timeout: float = 300) -> tuple[dict, float]:
    t0 = time.monotonic()
    last = {}

    def check():
        nonlocal last
        if p.exited():
            raise AssertionError(f"processes died: {p.exited()}")
        got = settled(p, n_leads, n_customers)
        if got is None:
            last = ledger(p)
        return got
    try:
        c = testing.wait_until(check, timeout=timeout, interval=1.0, message="every event applied")
    except AssertionError:
        raise AssertionError(f"not settled: lost={last.get('lost')} unpublished={last.get('unpublished')} "
                             f"effects={last.get('effects')}")
    time.sleep(2)  # anything arriving late would be a duplicate: count again
    return ledger(p), round(time.monotonic() - t0, 1)


def assert_exactly_once(c: dict, n_leads: int, n_customers: int) -> None:
    e = c["effects"]
    assert c["lost"] == 0, c["lost_sample"]
    assert c["duplicated"] == 0, c["duplicated_by_kind"]
    assert c["unknown_processed"] == 0 and c["unpublished"] == 0
    assert c["events_by_type"]["lead.assigned"] == n_leads
    assert c["events_by_type"]["lead.converted"] == n_customers
    assert c["events_by_type"]["customer.created"] == n_customers
    assert e["leads: leads"] == e["leads: assigned to a rep"] == n_leads
    assert e["notify: lead.assigned deliveries (inbox)"] == e["notify: lead.assigned inbox messages"] == n_leads
    assert c["inbox_per_rep"] == {r: c["leads_per_rep"][r] for r in REPS}
    assert e["sales: customers"] == e["sales: opportunities"] == n_customers
    assert e["leads: converted, linked to their customer"] == e["leads: customers (read model)"] == n_customers
    assert e["service-desk: customers (read model)"] == n_customers


def inbox_via_api(p: Platform) -> dict:
    """What each rep sees: their unread count in notify's API."""
    return {r: requests.get(p.url("notify") + "/v1/inbox/unread-count", headers=headers(r, ["sales_rep"]),
                            timeout=30).json()["unread"] for r in REPS}


# -- platforms outside the shared fixture: a private broker, a proxied database ---------------------

@pytest.fixture
def pg_urls():
    testing.need("postgres")
    from crm_shared import service as services
    with contextlib.ExitStack() as stack:
        yield {n: stack.enter_context(testing.postgres_database()) for n in services.installed()}


def servers_platform(tmp_path, bus_url: str, urls: dict, namespace: str | None = None) -> Platform:
    return Platform(str(tmp_path / "data"), bus_url=bus_url, namespace=namespace or "f" + uuid.uuid4().hex[:10],
                    database_urls=urls, ports="free", env=PLATFORM_ENV, log_dir=str(tmp_path / "logs"))


def summary(c: dict) -> dict:
    return {k: c[k] for k in ("events_produced", "events_by_type", "deliveries_expected", "deliveries_processed",
                              "lost", "duplicated", "duplicated_by_kind", "effects")}


def backend_label(kind: str) -> str:
    return {"embedded": "SQLite + embedded bus", "servers": "PostgreSQL + RabbitMQ"}.get(kind, kind)


class Faults:
    """Runs fault actions when the load passes given points, and keeps what happened."""

    def __init__(self, p: Platform, load: Load):
        self.p, self.load = p, load
        self.log: list[dict] = []
        self.t0 = time.monotonic()

    def at(self, fraction: float) -> dict:
        """Wait until that share of the leads is in; the deliveries in flight at that moment."""
        self.load.wait_posted(int(self.load.n * fraction))
        # on an idle machine the workers keep up and the queues are often empty: wait (a little)
        # for a moment with deliveries in flight, so the fault interrupts work rather than nothing
        deadline = time.monotonic() + 20
        while True:
            c = ledger(self.p)
            in_flight = c["lost"] + c["unpublished"]
            if in_flight > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        return {"at_lead": self.load.posted, "in_flight": in_flight, "t": round(time.monotonic() - self.t0, 1)}

    def kill_workers(self, fraction: float, names: tuple[str, ...], down_seconds: float = 1.0) -> None:
        point = self.at(fraction)
        for name in names:
            self.p.kill_worker(name)  # SIGKILL to the process group, as a crash would
        time.sleep(down_seconds)  # the writes go on with the workers dead
        for name in names:
            self.p.start_worker(name)
        self.log.append({"fault": "SIGKILL " + ", ".join(f"{n} worker" for n in names), **point,
                         "faults": len(names), "down_seconds": down_seconds})

    @property
    def injected(self) -> int:
        return sum(f["faults"] for f in self.log)


# -- 1 and 2. RabbitMQ stopped, workers killed, in the middle of 2,000 leads ------------------------

@pytest.mark.postgres
def test_rabbitmq_stopped_and_workers_killed_mid_run_every_event_once(tmp_path, pg_urls):
    """PostgreSQL + a private RabbitMQ node (never the shared one). While 2,000 leads come in
    through the API (300 of them converted): at 20 % the workers of leads (relaying), notify and
    sales (consuming) are killed with SIGKILL and restarted; at 40 % RabbitMQ is stopped
    (`rabbitmqctl stop_app`) and the writes go on; at 65 % (and at least a quarter of the leads later)
    it is started again; at 80 % notify's and sales' workers are killed again. Afterwards every event has been delivered to each of its
    consumers and every effect applied exactly once."""
    from crm_shared.faults import RabbitNode
    if not shutil.which("rabbitmq-server") and not os.path.exists("/usr/lib/rabbitmq/bin/rabbitmq-server"):
        pytest.fail("rabbitmq-server is not installed") if REQUIRE else pytest.skip("rabbitmq-server is not installed")
    t_all = time.monotonic()
    with RabbitNode() as rabbit:
        broker_start = round(time.monotonic() - t_all, 1)
        with servers_platform(tmp_path, rabbit.url, pg_urls) as p:
            p.start(wait=True)
            load = Load(p).setup().start()
            f = Faults(p, load)
            f.kill_workers(0.2, ("leads", "notify", "sales"))
            point = f.at(0.4)
            rabbit.stop_app()
            t_down = time.monotonic()
            # `at` may have waited past 40 % for deliveries in flight: a quarter of the leads more
            # come in while the broker is down, whenever it went down
            f.load.wait_posted(min(N_LEADS, max(int(N_LEADS * 0.65), point["at_lead"] + N_LEADS // 4)))
            posted_while_down = load.posted - point["at_lead"]
            with engines(p) as es:
                pending = {n: _rows(e, "SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0] for n, e in es.items()}
            readyz = requests.get(p.url("leads") + "/readyz", timeout=10)
            rabbit.start_app()
            f.log.append({"fault": "RabbitMQ stopped (rabbitmqctl stop_app), then started", **point, "faults": 1,
                          "down_seconds": round(time.monotonic() - t_down, 1)})
            f.kill_workers(0.8, ("notify", "sales"))
            load.join()
            c, settle = wait_settled(p, N_LEADS, len(load.to_convert))
            assert_exactly_once(c, N_LEADS, len(load.to_convert))
            assert inbox_via_api(p) == {r: c["leads_per_rep"][r] for r in REPS}
            dead = all_dead_letters(p)
            assert set(dead.values()) == {0}, dead  # the outage and the kills used up no retries
            assert not p.exited(), p.exited()
    # the faults hit the middle of the flow: deliveries were in flight at each, the writes went on
    # while the broker was down (their events waiting in the outboxes), and /readyz said so
    assert all(x["in_flight"] > 0 for x in f.log), f"a fault hit with nothing in flight, proving nothing: {f.log}"
    assert posted_while_down >= N_LEADS // 5 and pending["leads"] > 0, (posted_while_down, pending)
    assert readyz.status_code == 503 and readyz.json()["checks"]["bus"] != "ok"
    record("faults-rabbitmq-outage-and-sigkill", {
        "title": "RabbitMQ stopped and workers killed in the middle of 2,000 leads",
        "backend": "PostgreSQL + RabbitMQ (a private node)", "faults": f.log, "faults_injected": f.injected,
        "leads_posted": N_LEADS, "leads_posted_while_broker_down": posted_while_down,
        "conversions": len(load.to_convert), "outbox_pending_while_broker_down": pending,
        "http_errors": len(load.errors), "broker_start_seconds": broker_start, "load_seconds": load.seconds,
        "settle_seconds": settle, "dead_letters": dead, "total_seconds": round(time.monotonic() - t_all, 1),
        **summary(c)})


def test_workers_sigkilled_mid_batch_embedded_nothing_lost_nothing_doubled(tmp_path):
    """The embedded default (SQLite files, SQLite bus): while 1,000 leads come in (a seventh of
    them converted), the workers of leads (relaying), notify and sales (consuming) are killed with
    SIGKILL at 30 %, notify's and sales' again at 60 %, and restarted: every event is applied
    exactly once."""
    t_all = time.monotonic()
    with Platform(str(tmp_path / "data"), ports="free", env=PLATFORM_ENV, log_dir=str(tmp_path / "logs")) as p:
        p.start(wait=True)
        load = Load(p, n=N_KILL_LEADS, conversions=N_KILL_LEADS // 7).setup().start()
        f = Faults(p, load)
        f.kill_workers(0.3, ("leads", "notify", "sales"))
        f.kill_workers(0.6, ("notify", "sales"))
        load.join()
        c, settle = wait_settled(p, N_KILL_LEADS, len(load.to_convert))
        assert_exactly_once(c, N_KILL_LEADS, len(load.to_convert))
        assert inbox_via_api(p) == {r: c["leads_per_rep"][r] for r in REPS}
        dead = all_dead_letters(p)
        assert set(dead.values()) == {0}, dead
        assert not p.exited(), p.exited()
    assert all(x["in_flight"] > 0 for x in f.log), f"a kill hit with nothing in flight, proving nothing: {f.log}"
    record("faults-sigkill-embedded", {
        "title": f"Workers killed with SIGKILL in the middle of {N_KILL_LEADS:,} leads",
        "backend": "SQLite + embedded bus", "faults": f.log, "faults_injected": f.injected,
        "leads_posted": N_KILL_LEADS, "conversions": len(load.to_convert), "http_errors": len(load.errors),
        "load_seconds": load.seconds, "settle_seconds": settle, "dead_letters": dead,
        "total_seconds": round(time.monotonic() - t_all, 1), **summary(c)})


# -- 3. a service's database unreachable -------------------------------------------------------------

@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_database_unreachable_503_then_recovers_by_itself(tmp_path, pg_urls):
    """Sales reaches PostgreSQL through a TCP proxy, which is cut (connections reset, new ones
    refused) for a while: sales' API answers 503 with Retry-After (problem+json, never 500) and
    writes nothing; leads and notify go on answering and their events flow; the conversions sent to
    sales meanwhile wait in its queue. Restored, sales recovers without a restart (same processes)
    and applies every waiting event once."""
    from crm_shared.faults import TcpProxy
    need_rabbitmq()
    ns = "f" + uuid.uuid4().hex[:10]
    t_all = time.monotonic()
    try:
        with TcpProxy("127.0.0.1", 5432) as proxy:
            urls = dict(pg_urls, sales=proxy.rewrite(pg_urls["sales"]))
            with servers_platform(tmp_path, testing.AMQP_URL, urls, ns) as p:
                p.start(wait=True)
                before = Load(p, n=40, conversions=8, threads=3).setup().start()
                before.join()
                wait_settled(p, 40, 8, timeout=90)
                pids = {part: getattr(p.services["sales"], part).pid for part in ("web", "worker")}
                S, rep = p.url("sales"), headers(REPS[0], ["sales_rep"])
                t_cut = time.monotonic()
                proxy.cut()
                during = Load(p, n=40, conversions=8, threads=3, first=40).start()
                answers, problems = Counter(), []

                def ask(method, path, **kw):
                    r = requests.request(method, S + path, headers=rep, timeout=30, **kw)
                    answers[f"{method} {path.split('?')[0]}: {r.status_code}"] += 1
                    if r.status_code == 503:
                        assert r.headers.get("Retry-After") and r.headers["Content-Type"].startswith("application/problem+json"), r.headers
                    else:
                        problems.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
                    return r
                # at least 8 s of outage, and until leads and notify have carried on without sales
                while time.monotonic() - t_cut < 8 or during.alive():
                    ask("GET", "/v1/customers")
                    ask("GET", "/v1/customers/1")
                    ask("POST", "/v1/customers", json={"name": "Written during the outage"})
                    assert requests.get(S + "/readyz", timeout=30).status_code == 503
                    time.sleep(0.3)
                during.join()
                # events flowed between the others meanwhile: every new lead reached its rep's inbox
                testing.wait_until(lambda: ledger_notify_inbox(p) >= 80, timeout=60, interval=0.5,
                                   message="leads -> notify while sales' database is down")
                other_ok = {n: requests.get(p.url(n) + "/readyz", timeout=30).status_code for n in ("leads", "notify", "service-desk")}
                outage = round(time.monotonic() - t_cut, 1)
                proxy.restore()
                t_back = time.monotonic()
                testing.wait_until(lambda: requests.get(S + "/v1/customers", headers=rep, timeout=30).status_code == 200,
                                   timeout=60, interval=0.2, message="sales answering again")
                recovered = round(time.monotonic() - t_back, 1)
                c, settle = wait_settled(p, 80, 16, timeout=120)
                assert_exactly_once(c, 80, 16)
                assert {part: getattr(p.services["sales"], part).pid for part in ("web", "worker")} == pids
                assert not p.exited(), p.exited()
                assert dead_letters(p) == []  # waiting for the database used up no retries
                restarted = {part: getattr(p.services["sales"], part).pid for part in ("web", "worker")} != pids
                with engines(p) as es:  # nothing half-written by the requests that got 503
                    assert _rows(es["sales"], "SELECT count(*) FROM customers WHERE name = 'Written during the outage'")[0][0] == 0
    finally:
        testing.delete_amqp_namespace(ns, ["leads", "sales", "service-desk", "notify"], (200, 500, 1000))
    assert not problems, problems[:5]
    assert other_ok == {"leads": 200, "notify": 200, "service-desk": 200}
    record("faults-database-outage-postgres", {
        "title": "Sales' PostgreSQL unreachable (TCP proxy cut), then restored",
        "backend": "PostgreSQL + RabbitMQ", "faults": [{"fault": "sales' database connections reset and refused",
                                                         "faults": 1, "down_seconds": outage}],
        "faults_injected": 1, "sales_answers_during_outage": dict(answers),
        "sales_500s": sum(v for k, v in answers.items() if k.endswith(": 500")),
        "other_services_ready_during_outage": other_ok,
        "leads_posted_during_outage": during.posted, "conversions_queued_for_sales": during.converted,
        "connections_refused_by_proxy": proxy.refused,
        "recovery_seconds": recovered, "settle_seconds": settle, "sales_restarted": restarted,
        "total_seconds": round(time.monotonic() - t_all, 1), **summary(c)})


def need_rabbitmq() -> None:
    testing.need("rabbitmq")


def ledger_notify_inbox(p: Platform) -> int:
    with engines(p) as es:
        return _rows(es["notify"], "SELECT count(*) FROM inbox_items WHERE event_type = 'lead.assigned'")[0][0]


# -- 4. a poison message ---------------------------------------------------------------------------

POISON_SQL = {
    "sqlite": ["CREATE TRIGGER crm_poison BEFORE INSERT ON customers WHEN NEW.lead_id = '{lead}' "
               "BEGIN SELECT RAISE(ABORT, 'poison pill: this customer cannot be written'); END"],
    "postgresql": ["CREATE FUNCTION crm_poison() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'poison pill: this customer cannot be written'; END $$",
                   "CREATE TRIGGER crm_poison BEFORE INSERT ON customers FOR EACH ROW "
                   "WHEN (NEW.lead_id = '{lead}') EXECUTE FUNCTION crm_poison()"],
}
FIX_SQL = {"sqlite": ["DROP TRIGGER crm_poison"],
           "postgresql": ["DROP TRIGGER crm_poison ON customers", "DROP FUNCTION crm_poison()"]}


def crm(p: Platform, *args: str, service: str = "sales") -> str:
    r = subprocess.run([sys.executable, "-m", "crm_shared.cli", *args], env=p.service_env(service),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def dead_letters(p: Platform, service: str = "sales") -> list[dict]:
    """`crm dead-letters list SERVICE --json`, as an operator would ask."""
    out = crm(p, "dead-letters", "list", service, "--json", service=service)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def all_dead_letters(p: Platform) -> dict:
    return {n: len(dead_letters(p, n)) for n in p.services}


def test_poison_message_dead_lettered_rest_flow_replay_applies_once(platform_factory):
    """Sales cannot apply one lead's conversion (a trigger in its database refuses that customer):
    that event is retried, then dead-lettered with its error, while the 20 conversions behind it
    flow. Once fixed (trigger dropped), `crm dead-letters replay sales` applies it exactly once; a
    second replay finds nothing."""
    t_all = time.monotonic()
    p = platform_factory(env=PLATFORM_ENV)
    load = Load(p, n=21, conversions=0, threads=3).setup().start()
    load.join()
    ids = [load.lead_ids[i] for i in range(21)]
    poison = ids[0]
    sales = db.make_engine(p.services["sales"].database_url)
    try:
        with sales.begin() as c:
            for sql in POISON_SQL[sales.dialect.name]:
                c.exec_driver_sql(sql.replace("{lead}", poison))
        s = requests.Session()
        t_poison = time.monotonic()
        for lead in ids:  # the poison first: the others queue up behind it
            load.convert(s, lead, load.owners[lead])
        assert not load.errors, load.errors

        def customers():
            return dict(_rows(sales, "SELECT lead_id, count(*) FROM customers GROUP BY lead_id"))
        testing.wait_until(lambda: len(customers()) == 20 and len(dead_letters(p)) == 1, timeout=60, interval=0.5,
                           message="20 conversions applied, the poison dead-lettered")
        dead_after = round(time.monotonic() - t_poison, 1)
        (letter,) = dead_letters(p)
        assert letter["type"] == "lead.converted" and json.loads(letter["body"])["payload"]["lead_id"] == poison
        assert "poison pill" in letter["error"] and letter["attempts"] == 4  # the try and 3 retries
        assert poison not in customers() and set(customers().values()) == {1}
        with sales.begin() as c:  # the fix
            for sql in FIX_SQL[sales.dialect.name]:
                c.exec_driver_sql(sql)
        assert "replayed 1 message" in crm(p, "dead-letters", "replay", "sales")
        testing.wait_until(lambda: poison in customers(), timeout=30, interval=0.3, message="the replayed event applied")
        assert "replayed 0 message" in crm(p, "dead-letters", "replay", "sales")
        time.sleep(1.5)
        got = customers()
        assert len(got) == 21 and set(got.values()) == {1} and dead_letters(p) == []
        c, settle = wait_settled(p, 21, 21, timeout=60)
        assert_exactly_once(c, 21, 21)
    finally:
        sales.dispose()
    record(f"faults-poison-{platform_factory.backend}", {
        "title": "A poison message: dead-lettered after its retries, replayed once fixed",
        "backend": backend_label(platform_factory.backend),
        "faults": [{"fault": "sales cannot write one lead's customer (a trigger refuses it)", "faults": 1}],
        "faults_injected": 1, "conversions": 21, "attempts_before_dead_letter": letter["attempts"],
        "dead_lettered_after_seconds": dead_after, "applied_behind_the_poison": 20, "replayed": 1,
        "applied_after_replay": 1, "second_replay": 0, "total_seconds": round(time.monotonic() - t_all, 1),
        **summary(c)})
