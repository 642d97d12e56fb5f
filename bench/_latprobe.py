"""Probe for bench/TUNING.md item 18 (not part of `make bench`): where an event's time goes at a given
rate through the outbox -> relay -> RabbitMQ -> consumer path. Runs bench/bus.py's emitter process
against a Worker whose Relay and Dispatcher record timestamps, thread CPU time and the time each
thread waited for a CPU (the kernel's /proc/self/task/<tid>/schedstat), then a raw round trip run.

    .venv/bin/python bench/_latprobe.py [rate] [seconds] [rounds] [variants...]

A variant is a name in VARIANTS (a function returning a Relay class and a Dispatcher class), "main"
by default; several are run in turn in every round. PROBE_PYSPY=/tmp/prefix also records py-spy
(pip install py-spy into the venv) over each run, per thread, with idle samples (PROBE_GIL=1: only
samples holding the GIL)."""
from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bus as B  # noqa: E402
import _common as C  # noqa: E402
from crm_shared.inbox import Dispatcher  # noqa: E402
from crm_shared.outbox import Relay  # noqa: E402
from crm_shared.worker import Worker  # noqa: E402

P = {}  # probe records
_RUNS = itertools.count()  # numbers the py-spy output files


def pct(xs, p):
    return C.percentile(list(xs), p) if xs else float("nan")


def runq() -> float:
    """ms this thread has waited for a CPU (runnable, not running), from the kernel's schedstat."""
    with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
        return int(f.read().split()[1]) / 1e6


def instrument_relay(cls):
    class Probed(cls):
        def run_once(self):
            t0 = time.monotonic()
            c0 = time.thread_time()
            q0 = runq()
            n = super().run_once()
            t1 = time.monotonic()
            P.setdefault("cycles", []).append((t0, t1, n, time.thread_time() - c0, runq() - q0))
            return n
    Probed.__name__ = cls.__name__
    return Probed


def instrument_dispatcher(cls):
    class Probed(cls):
        def handle_batch(self, deliveries):
            t0 = time.monotonic()
            c0 = time.thread_time()
            q0 = runq()
            out = super().handle_batch(deliveries)
            t1 = time.monotonic()
            P.setdefault("batches", []).append((t0, t1, len(deliveries), time.thread_time() - c0, runq() - q0))
            return out
    return Probed


def make_worker(relay_cls, disp_cls):
    R, D = instrument_relay(relay_cls or Relay), instrument_dispatcher(disp_cls)

    class W(Worker):
        def _consume(self):
            d = D(self.rt, self.rt.definition.handlers, own_connection=True)
            try:
                self.rt.bus.consume_batches(self.rt.name, d.handle_batch, self.stop,
                                            prefetch=self.rt.settings.prefetch, max_batch=self.rt.settings.consume_batch)
            finally:
                d.close()

        def start(self):
            # as Worker.start, with the probed relay class and without the scheduler
            from crm_shared.worker import declare_topology
            declare_topology(self.rt)
            targets = {"consume": self._consume, "relay": lambda: R(self.rt).run(self.stop)}
            for part in ("consume", "relay") if relay_cls is not None else ("consume",):
                t = threading.Thread(target=self._guard(part, targets[part]), name=f"{self.rt.name}-{part}")
                t.start()
                self.threads.append(t)
            return self
    return W


def one(rt, svc, rate, seconds, pg_url, ns):
    P.clear()
    got, picked = {}, {}
    svc.on_handle = lambda env: got.setdefault(env.id, time.monotonic())
    publish = rt.bus.publish

    def timed_publish(messages):
        t = time.monotonic()
        for m in messages:
            picked.setdefault(m.message_id, t)
        r = publish(messages)
        t2 = time.monotonic()
        P.setdefault("pub", []).append((t, t2, len(messages)))
        return r

    rt.bus.publish = timed_publish
    spy = None
    if os.environ.get("PROBE_PYSPY"):
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(os.getpid()), "-d",
                                str(int(seconds)), "-r", "200", "--threads", "--idle", "--format", "raw", "-o",
                                os.environ["PROBE_PYSPY"] + f".{next(_RUNS)}.txt"] +
                               (["--gil"] if os.environ.get("PROBE_GIL") else []),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out = subprocess.run([sys.executable, B.__file__, "--emit", pg_url, ns, str(rate), str(seconds)],
                             capture_output=True, text=True, timeout=seconds + 60)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        sent, committed = res["sent"], res["committed"]
        B.wait_for(lambda: len(got) >= len(sent), 15)
        if spy:
            spy.wait(30)
    finally:
        svc.on_handle = None
        del rt.bus.publish
    e2e = [(got[k] - t) * 1000 for k, t in sent.items() if k in got]
    seg = {
        "rate": len(sent) / res["elapsed"],
        "p50": pct(e2e, 50), "p90": pct(e2e, 90), "p99": pct(e2e, 99),
        "emit->commit": pct([(committed[k] - t) * 1000 for k, t in sent.items() if k in committed], 50),
        "commit->pick": pct([(picked[k] - committed[k]) * 1000 for k in sent if k in picked and k in committed], 50),
        "commit->pick p99": pct([(picked[k] - committed[k]) * 1000 for k in sent if k in picked and k in committed], 99),
        "pick->handler": pct([(got[k] - picked[k]) * 1000 for k in sent if k in got and k in picked], 50),
        "pick->handler p99": pct([(got[k] - picked[k]) * 1000 for k in sent if k in got and k in picked], 99),
    }
    cyc = [c for c in P.get("cycles", []) if c[2]]
    seg["relay cycle p50"] = pct([(c[1] - c[0]) * 1000 for c in cyc], 50)
    seg["relay cycles"] = len(cyc)
    seg["rows/cycle"] = statistics.mean([c[2] for c in cyc]) if cyc else 0
    seg["relay cpu/cycle"] = statistics.mean([c[3] * 1000 for c in cyc]) if cyc else 0
    seg["relay runq/cycle"] = statistics.mean([c[4] for c in cyc]) if cyc else 0
    pub = P.get("pub", [])
    seg["publish+confirm p50"] = pct([(p[1] - p[0]) * 1000 for p in pub], 50)
    b = P.get("batches", [])
    seg["batch wall p50"] = pct([(x[1] - x[0]) * 1000 for x in b], 50)
    seg["batch cpu mean"] = statistics.mean([x[3] * 1000 for x in b]) if b else 0
    seg["batch wall mean"] = statistics.mean([(x[1] - x[0]) * 1000 for x in b]) if b else 0
    seg["batch runq mean"] = statistics.mean([x[4] for x in b]) if b else 0
    seg["batch size"] = statistics.mean([x[2] for x in b]) if b else 0
    return seg


def main():
    rate = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 6
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    variants = sys.argv[4:] or ["main"]
    token = C.new_token()
    broker = B.Broker(token)
    svc = B.BenchService()
    try:
        with C.postgres_database() as pg_url:
            ns = f"bench{token}"
            rt = svc.runtime(pg_url, ns)
            broker.namespace(ns, rt.settings.retry_delays_ms)
            rt.bus.declare_consumer(B.SERVICE, ["lead.created"], rt.settings.retry_delays_ms)
            q_l, k_l = broker.raw_queue("quorum", "latency")
            for r in range(rounds):
                for v in variants:
                    relay_cls, disp_cls = VARIANTS[v]()
                    child = None
                    if relay_cls is None:  # the relay in a process of its own
                        child = subprocess.Popen([sys.executable, __file__, "--relay", pg_url, ns])
                    w = make_worker(relay_cls, disp_cls)(rt, schedule=False).start()
                    time.sleep(1.5 if child else 0.5)
                    s = one(rt, svc, rate, seconds, pg_url, ns)
                    w.shutdown(15)
                    if child:
                        child.terminate()
                        child.wait(15)
                    print(f"round {r} {v}: " + ", ".join(f"{k} {v:.1f}" for k, v in s.items()), flush=True)
                raw = B.raw_latency(broker, q_l, k_l, rate, seconds)
                print(f"round {r} raw: p50 {raw['p50']:.2f} p99 {raw['p99']:.2f} rate {raw['achieved_rate']:.0f}", flush=True)
            rt.close()
    finally:
        broker.cleanup()


def _main_variant():
    return Relay, Dispatcher


def relay_process(pg_url: str, ns: str) -> None:
    """The "split" variant's relay: `Relay.run` alone in this process until SIGTERM."""
    import signal
    from crm_shared.config import Settings
    from crm_shared.runtime import Runtime
    svc = B.BenchService()
    rt = Runtime(svc.definition, Settings(service=B.SERVICE, database_url=pg_url, bus_url=C.AMQP_URL, bus_namespace=ns))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    Relay(rt).run(stop)
    rt.close()


# "split": the consume thread in this process, the relay in a process of its own (no shared GIL)
VARIANTS = {"main": _main_variant, "split": lambda: (None, Dispatcher)}

if __name__ == "__main__":
    if sys.argv[1:2] == ["--relay"]:
        relay_process(sys.argv[2], sys.argv[3])
    else:
        main()
