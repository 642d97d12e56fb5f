"""Peers on the same broker, for the bus benchmark: a Celery task round trip (Celery pinned in
requirements-dev.txt) and nameko's event dispatch + handler (in a virtual environment of its own,
made here under var/bench/, because nameko needs eventlet's monkey-patching)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import _common as C

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NAMEKO_PIN = "nameko==2.14.1"
NAMEKO_VENV = Path(os.environ.get("BENCH_NAMEKO_VENV", ROOT / "var" / "bench" / "nameko-venv"))


# -- Celery -----------------------------------------------------------------------------------------

def celery_round_trips(token: str, payload: dict, n: int, rate: int, seconds: float, prefetch: int) -> dict:
    """A Celery app on the same RabbitMQ (quorum task queue, persistent messages, acks_late so the
    message is acknowledged after the task like ours, prefetch = ours), results over `rpc://`; a
    solo-pool worker in a thread of this process (as our latency rows run the Worker in-process).
    (1) n tasks sent at once, time until every result is back; (2) tasks at `rate`/s: latency from
    `apply_async` to the task starting, and to its result back at the caller."""
    from importlib.metadata import version

    from celery import Celery
    from celery.contrib.testing.worker import start_worker

    queue = f"bench{token}.celery"
    app = Celery(f"bench{token}", broker=C.AMQP_URL, backend="rpc://")
    app.conf.update(task_default_queue=queue, task_default_exchange=queue, task_default_routing_key=queue,
                    task_default_queue_type="quorum", worker_detect_quorum_queues=True,
                    task_acks_late=True, worker_prefetch_multiplier=prefetch, task_serializer="json",
                    result_serializer="json", accept_content=["json"], task_default_delivery_mode="persistent",
                    broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
                    result_persistent=False)

    @app.task(name="bench.lead_created")
    def lead_created(body):
        return time.monotonic()

    out: dict = {"celery": version("celery")}
    try:
        with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING",
                          shutdown_timeout=10):
            lead_created.delay(payload).get(timeout=30)  # warm: queue declared, reply queue up
            t0 = time.perf_counter()
            results = [lead_created.delay(payload) for _ in range(n)]
            for r in results:
                r.get(timeout=120)
            out["rt_n"], out["rt_seconds"] = n, time.perf_counter() - t0
            out["rt_rate"] = C.rate(n, out["rt_seconds"])

            started, done, sent = {}, {}, {}
            pending = []
            total = int(rate * seconds)
            t0 = time.monotonic()
            for i in range(total):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif time.monotonic() - t0 >= seconds:
                    break
                sent[i] = time.monotonic()
                pending.append((i, lead_created.delay(payload)))
            elapsed = time.monotonic() - t0
            for i, r in pending:
                started[i] = r.get(timeout=60)
                done[i] = time.monotonic()  # an upper bound: results are collected in order after sending
            lat = [(started[i] - t) * 1000 for i, t in sent.items() if i in started]
            out.update(lat_sent=len(sent), lat_received=len(lat), lat_rate=C.rate(len(sent), elapsed),
                       p50=C.percentile(lat, 50), p99=C.percentile(lat, 99), max=max(lat) if lat else float("nan"))
    finally:
        try:
            with app.connection_for_write() as conn:
                ch = conn.channel()
                ch.queue_delete(queue)
                ch.exchange_delete(queue)
        except Exception as exc:  # pragma: no cover - reported, not fatal
            print(f"celery cleanup: {exc}", file=sys.stderr)
    return out


# -- nameko -------------------------------------------------------------------------------------------

def nameko_python() -> tuple[str | None, str]:
    """The nameko environment's python (made on first use), or None and why it cannot be made."""
    py = NAMEKO_VENV / "bin" / "python"
    if py.exists():
        return str(py), ""
    try:
        NAMEKO_VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(NAMEKO_VENV)], check=True, capture_output=True, timeout=300)
        r = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", NAMEKO_PIN],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            return None, f"`pip install {NAMEKO_PIN}` failed on Python {sys.version.split()[0]}: " + \
                (r.stderr.strip().splitlines() or ["?"])[-1]
        return str(py), ""
    except Exception as exc:
        return None, f"could not make nameko's virtual environment: {exc}"


def nameko_events(token: str, payload: dict, n: int, rate: int, seconds: float, prefetch: int) -> dict:
    py, why = nameko_python()
    if py is None:
        return {"error": why}
    r = subprocess.run([py, str(HERE / "_nameko_probe.py"), C.AMQP_URL, token, json.dumps(payload), str(n), str(rate),
                        str(seconds), str(prefetch)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        tail = [line for line in r.stderr.strip().splitlines() if line.strip()][-3:]
        return {"error": "nameko probe failed: " + " / ".join(tail)}
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_threaded(fn, *args):
    """Run fn in a thread (Celery's test worker installs signal handlers only on the main thread's
    behalf; a thread keeps it off ours) and return its result or raise its error."""
    box = {}

    def go():
        try:
            box["ok"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            box["err"] = exc
    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(600)
    if "err" in box:
        raise box["err"]
    return box.get("ok")
