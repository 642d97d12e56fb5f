"""Before/after of the lead intake's CPU per request, in lock step (bench/TUNING.md item 25; not part
of `make bench`).

    .venv/bin/python bench/_lockstep.py BEFORE_TREE [AFTER_TREE] [requests] [warm-up]

Two processes, one per checkout (its `services/leads` and `shared` first on PYTHONPATH, migrated by
its own migrations on a fresh PostgreSQL database of its own), each serving `POST /v1/leads` through
the service's WSGI app in process (no HTTP server), with a round-robin team of 4 and a manager's
token. This process tells them in turn to take one intake each (who goes first alternates), so both
run under the same machine conditions request by request; each reports the request's thread CPU time
(`time.thread_time`) and wall time, and at the start and end of the measured part its database
backends' CPU time (/proc). On this shared machine the speed of a core moves 2–3x from minute to
minute, which drowns a 5–10% change in separate runs (item 16); in lock step the after/before ratio of
the medians repeats within about 2–3%.

Each side waits idle while the other runs, so a request here costs about what one costs at a moderate
rate (caches cold; e2e at 100/s), 2–3x a request in a busy loop. AFTER_TREE defaults to this checkout."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def child(url: str) -> None:
    """One side: read a command per line ('go': one intake, 'pg': database CPU so far), answer a line."""
    with tempfile.TemporaryDirectory(prefix="lockstep") as tmp:
        os.environ.update({"DATABASE_URL": url, "BUS_URL": f"sqlite:///{tmp}/bus.db", "CRM_DATA_DIR": tmp,
                           "LOG_LEVEL": "WARNING", "DB_POOL_SIZE": "5"})
        subprocess.run([sys.executable, "-m", "crm_shared.cli", "migrate", "leads"], check=True, capture_output=True)
        _serve(url)


def _serve(url: str) -> None:
    import _common as C
    import psycopg
    from werkzeug.test import EnvironBuilder

    from crm_shared.config import DEV_JWT_SECRET
    from crm_shared.web.auth import dev_token
    from leads.wsgi import app

    auth = {"Authorization": "Bearer " + dev_token(DEV_JWT_SECRET, "manager", "MANAGER", ["sales_manager"], "bench")}

    def call(path: str, body: dict) -> tuple[str, bytes]:
        environ = EnvironBuilder(method="POST", path=path, data=json.dumps(body), content_type="application/json",
                                 headers=auth).get_environ()
        status = []
        out = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
        return status[0], out

    status, out = call("/v1/teams", {"name": "Bench", "code": "bench", "strategy": "round_robin",
                                     "members": [{"user_id": f"rep{i}", "name": f"Rep {i}"} for i in range(4)]})
    assert status.startswith("201"), out
    status, out = call("/v1/routing-rules", {"priority": 1, "conditions": {}, "team_id": int(json.loads(out)["id"])})
    assert status.startswith("201"), out
    db = url.rsplit("/", 1)[1]
    admin = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)

    def backends_ms() -> float:
        pids = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                             (db,)).fetchall()
        return sum(x for x in (C.cpu_seconds(pid) for (pid,) in pids) if x == x) * 1000  # NaN: a backend gone

    print("ready", flush=True)
    n = 0
    for line in sys.stdin:
        if line.strip() == "pg":
            print(backends_ms(), flush=True)
            continue
        n += 1
        phone = f"13{n:09d}"
        body = {"name": f"客户{n}", "phone": f"{phone[:3]}-{phone[3:7]}-{phone[7:]}", "email": f"c{n}@example.com",
                "company": f"杭州{n}科技有限公司", "city": "杭州", "province": "浙江", "source": "website"}
        c0, w0 = time.thread_time(), time.perf_counter()
        status, out = call("/v1/leads", body)
        c1, w1 = time.thread_time(), time.perf_counter()
        assert status.startswith("201"), out
        print(f"{(c1 - c0) * 1000:.4f} {(w1 - w0) * 1000:.4f}", flush=True)


def main(before: str, after: str, requests: int, warm: int) -> None:
    sys.path.insert(0, str(HERE))
    import _common as C
    trees = {"before": Path(before).resolve(), "after": Path(after).resolve()}
    with C.postgres_database("lockstep_before") as url_b, C.postgres_database("lockstep_after") as url_a:
        procs = {}
        for name, url in (("before", url_b), ("after", url_a)):
            tree = trees[name]
            env = {**os.environ, "PYTHONPATH": f"{tree}/services/leads:{tree}/shared"}
            procs[name] = subprocess.Popen([sys.executable, str(HERE / "_lockstep.py"), "--child", url], cwd=tree,
                                           env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            for p in procs.values():
                assert p.stdout.readline().strip() == "ready"

            def ask(name: str, command: str) -> list[float]:
                procs[name].stdin.write(command + "\n")
                procs[name].stdin.flush()
                return [float(x) for x in procs[name].stdout.readline().split()]

            got = {name: [] for name in procs}
            pg0 = {}
            for i in range(warm + requests):
                if i == warm:
                    pg0 = {name: ask(name, "pg")[0] for name in procs}
                for name in (("before", "after") if i % 2 == 0 else ("after", "before")):
                    cpu_wall = ask(name, "go")
                    if i >= warm:
                        got[name].append(cpu_wall)
            pg = {name: (ask(name, "pg")[0] - pg0[name]) / requests for name in procs}
        finally:
            for p in procs.values():
                p.stdin.close()
                p.wait(30)
    med = {name: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for name, v in got.items()}
    quarters = []
    for q in range(4):
        part = slice(q * requests // 4, (q + 1) * requests // 4)
        quarters.append(statistics.median(x[0] for x in got["after"][part])
                        / statistics.median(x[0] for x in got["before"][part]))
    for name in procs:
        print(f"{name} ({trees[name]}, {C.git_revision(trees[name])}): thread CPU median {med[name][0]:.3f} ms, "
              f"wall median {med[name][1]:.3f} ms, PostgreSQL backends {pg[name]:.3f} ms CPU per intake")
    print(f"after / before: thread CPU {med['after'][0] / med['before'][0]:.3f} "
          f"(per quarter of the run: {' '.join(f'{r:.3f}' for r in quarters)}), "
          f"wall {med['after'][1] / med['before'][1]:.3f}, PostgreSQL {pg['after'] / pg['before']:.3f}; "
          f"{requests} intakes each after {warm} warm-up")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        # this file's folder holds bench/leads.py, which is not the service's `leads` package: it goes
        # after the checkout's PYTHONPATH (for `_common` only)
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
        child(sys.argv[2])
    else:
        args = sys.argv[1:]
        if not args:
            sys.exit(__doc__)
        main(args[0], args[1] if len(args) > 1 else str(ROOT), int(args[2]) if len(args) > 2 else 1500,
             int(args[3]) if len(args) > 3 else 200)
