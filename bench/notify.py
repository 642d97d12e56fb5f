"""Notify service throughput: events/s from the queue to the in-app inbox, and from the queue to a
local webhook receiver (HMAC-signed POSTs), through the real worker (consumer + dispatch job).

    .venv/bin/python bench/notify.py          # prints the Markdown section
    make bench                                # every benchmark under bench/ -> docs/BENCHMARKS.md

Each scenario publishes N `lead.assigned` (inbox) or `lead.created` (webhook) envelopes to the
queue first, then starts the worker and times until the last message has arrived: the figure is the
worker's drain rate, consumer and dispatcher together. Sizes: BENCH_NOTIFY_N (default 2,000).

Also the cost of one email as the dispatch job sends it (`SmtpSession.send` over one kept SMTP
connection to a local aiosmtpd sink): built with `email`'s compat32 API straight to wire bytes (what
it does) beside the modern `EmailMessage` API and `send_message` (what it did before TUNING item 22,
still its path for a non-ASCII address). BENCH_NOTIFY_EMAILS (500 per run), 3 rounds in turn."""
from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from crm_shared.bus import OutgoingMessage  # noqa: E402
from crm_shared.events import Envelope  # noqa: E402
from crm_shared.migrations import upgrade  # noqa: E402
from crm_shared.runtime import Runtime  # noqa: E402
from crm_shared.testing import demo_settings  # noqa: E402
from crm_shared.worker import Worker, declare_topology  # noqa: E402



def _load_service_package():
    """This file is called notify.py, like the service's package: while this module may itself be
    `notify` in sys.modules (bench/run.py imports benchmarks by name), load the service package and
    all its modules with bench/ off the path, then put things back. The service's modules stay
    importable under their own names (notify.models, ...), which is all that is used below."""
    import importlib
    import pkgutil
    here = Path(__file__).resolve().parent
    mine = sys.modules.pop("notify", None)
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    try:
        pkg = importlib.import_module("notify")
        for info in pkgutil.walk_packages(pkg.__path__, "notify."):
            importlib.import_module(info.name)
        return pkg, sys.modules["notify.models"], sys.modules["notify.service"].SERVICE
    finally:
        sys.path[:] = saved
        if mine is not None:
            sys.modules["notify"] = mine
        else:
            sys.modules.pop("notify", None)


_pkg, models, SERVICE = _load_service_package()

TITLE = "Notify: queue to inbox and to a webhook"
N = int(os.environ.get("BENCH_NOTIFY_N", 2_000))
TIMEOUT = float(os.environ.get("BENCH_NOTIFY_TIMEOUT", 240))


class _Receiver:
    def __init__(self):
        self.count = 0
        lock = threading.Lock()
        rec = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    rec.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _count(rt, table) -> int:
    with rt.engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar_one()


def _scenario(db_url: str, bus_url: str, namespace: str, target: str) -> dict:
    upgrade(SERVICE, db_url)
    receiver = _Receiver() if target == "webhook" else None
    extra = {"NOTIFY_WEBHOOK_ALLOW_PRIVATE": "1", "SMS_URL": "file:///dev/null"}
    rt = Runtime(SERVICE, demo_settings("notify", db_url, bus_url, namespace, extra=extra))
    try:
        if receiver is not None:
            with rt.uow() as uow:
                uow.session.execute(models.webhooks.insert().values(
                    owner_id="bench", kind="webhook", url=receiver.url, secret="bench-secret-0123456",
                    event_types=["lead.created"], language="en", enabled=True, consecutive_failures=0,
                    created_at=rt.clock.now()))
                uow.commit()
        declare_topology(rt)
        if target == "inbox":
            envs = [Envelope(type="lead.assigned", producer="bench", payload={
                "lead_id": f"L{i}", "owner_id": f"u{i % 50}", "name": f"Lead {i}", "reason": "auto"}) for i in range(N)]
        else:
            envs = [Envelope(type="lead.created", producer="bench", payload={
                "lead_id": f"L{i}", "status": "new", "name": f"Lead {i}"}) for i in range(N)]
        for i in range(0, N, 500):
            rt.bus.publish([OutgoingMessage(e.id, e.type, e.to_json().encode()) for e in envs[i:i + 500]])
        done = (lambda: receiver.count >= N) if receiver else (lambda: _count(rt, models.inbox_items) >= N)
        started = time.perf_counter()
        w = Worker(rt, relay=False).start()
        consumed_at = None
        try:
            while not done():
                if consumed_at is None and _count(rt, models.processed_events) >= N:
                    consumed_at = time.perf_counter()
                if time.perf_counter() - started > TIMEOUT:
                    raise RuntimeError(f"{target}: not done within {TIMEOUT:.0f} s")
                time.sleep(0.05)
            took = time.perf_counter() - started
            consumed_at = consumed_at or time.perf_counter()
        finally:
            w.shutdown()
        return {"took": took, "consumed": consumed_at - started,
                "delivered": receiver.count if receiver else _count(rt, models.inbox_items)}
    finally:
        rt.close()
        if receiver is not None:
            receiver.close()


EMAILS = int(os.environ.get("BENCH_NOTIFY_EMAILS", "500"))


def _email_runs() -> str:
    """CPU of the sending thread per email (`time.thread_time`: the sink runs in another thread)."""
    from aiosmtpd.controller import Controller
    from crm_shared.platform import free_port
    from email import policy

    from notify.channels import email as channel
    from notify.channels.email import SmtpSender

    received = [0]

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            received[0] += 1
            return "250 OK"

    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    subject = "新线索已分配给您：张三 (杭州某某科技有限公司)"
    text = "您好 李四，\n\n新线索 张三（杭州某某科技有限公司，13800138000）已分配给您，请在 24 小时内跟进。\n"
    html = "<p>您好 李四，</p><p>新线索 <b>张三</b>（杭州某某科技有限公司）已分配给您，请在 24 小时内跟进。</p>"
    results: dict = {"wire": [], "folded": [], "modern": []}
    ours, stock = channel._WIRE, policy.compat32.clone(linesep="\r\n")
    try:
        for r in range(3):
            for kind in (("wire", "folded", "modern") if r % 2 == 0 else ("modern", "folded", "wire")):
                sender = SmtpSender(f"smtp://127.0.0.1:{port}", "CRM 销售 <noreply@crm.local>")
                if kind == "modern":
                    sender.build_bytes = lambda *a: None  # the path before: EmailMessage + send_message
                # before tuning item 27: compat32's own folding for every header
                channel._WIRE = stock if kind == "folded" else ours
                before = received[0]
                t0, c0 = time.perf_counter(), time.thread_time()
                with sender.session() as smtp:
                    for i in range(EMAILS):
                        smtp.send(f"rep{i % 4}@example.com", subject, text, html, f"bench:{kind}:{r}:{i}")
                cpu, wall = time.thread_time() - c0, time.perf_counter() - t0
                deadline = time.monotonic() + 10
                while received[0] - before < EMAILS and time.monotonic() < deadline:
                    time.sleep(0.01)
                if received[0] - before != EMAILS:
                    raise RuntimeError(f"the sink received {received[0] - before} of {EMAILS}")
                results[kind].append((cpu, wall))
    finally:
        channel._WIRE = ours
        controller.stop()
    rows = []
    for kind, label in (("wire", "**compat32 API straight to wire bytes, `sendmail`; short plain headers "
                                 "written as they are** (now)"),
                        ("folded", "Before tuning item 27: the same, every header through compat32's folding"),
                        ("modern", "Before tuning item 22: `EmailMessage` (modern API) + `send_message`")):
        cpu = sum(c for c, _ in results[kind]) / (3 * EMAILS) * 1000
        wall = sum(w for _, w in results[kind])
        rows.append([label, f"{3 * EMAILS:,}", f"{cpu:.2f}", C.fmt_rate(3 * EMAILS / wall),
                     " / ".join(f"{c / EMAILS * 1000:.2f}" for c, _ in results[kind])])
    ratio = (sum(c for c, _ in results["modern"]) / sum(c for c, _ in results["wire"]))
    folded = (sum(c for c, _ in results["wire"]) / sum(c for c, _ in results["folded"]))
    return ("### One email through the dispatch job's SMTP session\n\n"
            f"{EMAILS} emails per run over one kept connection to a local aiosmtpd sink (every one received, "
            "checked), a Chinese subject, text and HTML body, 3 rounds with the three paths in turn. CPU = the "
            "sending thread's CPU time (`time.thread_time`; the sink runs in another thread of this process).\n\n"
            + C.md_table(["Path", "Emails", "CPU ms per email", "emails/s", "CPU ms per email, per round"], rows)
            + f"\n\nThe wire path uses **{ratio:.1f}x less CPU** per email than the modern API in this run, and "
            f"{folded:.2f}x the CPU of the same path with every header folded by compat32.\n")


def run() -> str:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for target in ("inbox", "webhook"):
            r = _scenario(f"sqlite:///{tmp}/{target}.db", f"sqlite:///{tmp}/bus-{target}.db", "bench" + C.new_token(),
                          target)
            rows.append(["SQLite + embedded bus", target, N, f"{r['took']:.1f}", C.fmt_rate(C.rate(N, r["took"])),
                         C.fmt_rate(C.rate(N, r["consumed"]))])
    try:
        with C.postgres_database("bench_notify") as url:
            for target in ("inbox", "webhook"):
                ns = "bench" + C.new_token()
                r = _scenario(url if target == "inbox" else url, C.AMQP_URL, ns, target)
                rows.append(["PostgreSQL + RabbitMQ", target, N, f"{r['took']:.1f}",
                             C.fmt_rate(C.rate(N, r["took"])), C.fmt_rate(C.rate(N, r["consumed"]))])
                _drop_namespace(ns)
    except Exception as exc:  # noqa: BLE001 - reported in the section
        rows.append(["PostgreSQL + RabbitMQ", "-", "-", "-", f"not run: {type(exc).__name__}: {exc}", "-"])
    table = C.md_table(["database + bus", "to", "events", "seconds", "delivered events/s", "consumed events/s"],
                       rows)
    return (f"{N:,} events published to the notify queue first, then drained by one worker (consumer + "
            "dispatch job, one process). *Delivered*: until the last inbox item is committed or the last "
            "signed webhook POST is answered by a local receiver; *consumed*: until the last event has been "
            "turned into delivery rows. An in-app item due now is written by the consumer, in the transaction "
            "that consumes its event; the dispatch job runs every second and sends the rest in batches of 200 "
            "(webhook POSTs go one after another over a kept-alive connection).\n\n" + table + "\n\n"
            + _email_runs())


def _drop_namespace(ns: str) -> None:
    try:
        from crm_shared import testing
        testing.delete_amqp_namespace(ns, ["notify", "leads", "sales", "service-desk"],
                                      demo_settings("notify", "", "", ns).retry_delays_ms)
    except Exception:  # noqa: BLE001 - best effort
        pass


if __name__ == "__main__":
    print(run())
