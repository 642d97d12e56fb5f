"""What every benchmark under bench/ shares: the servers' addresses, a throw-away PostgreSQL
database, machine and version information, small statistics and Markdown helpers.

Servers (localhost only by default; override with the environment variables):
  BENCH_AMQP_URL      amqp://guest:guest@127.0.0.1:5672//
  BENCH_PG_ADMIN_URL  postgresql://postgres@127.0.0.1:5432/postgres   (a database is created and dropped)
"""
from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
import uuid
from importlib import metadata
from pathlib import Path

AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def new_token() -> str:
    return uuid.uuid4().hex[:10]


@contextlib.contextmanager
def postgres_database(prefix: str = "bench"):
    """A fresh PostgreSQL database, dropped afterwards (also on failure). Yields its SQLAlchemy URL."""
    import psycopg
    name = f"{prefix}_{new_token()}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- machine and versions ---------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def rabbitmq_version() -> str:
    try:
        import amqp
        from kombu.utils.url import parse_url
        u = parse_url(AMQP_URL)
        conn = amqp.Connection(host=f"{u['hostname'] or '127.0.0.1'}:{u['port'] or 5672}",
                               userid=u["userid"] or "guest", password=u["password"] or "guest",
                               virtual_host=u["virtual_host"] or "/", connect_timeout=5)
        conn.connect()
        try:
            props = conn.server_properties
            return f"{props.get('product', 'RabbitMQ')} {props.get('version', '?')}"
        finally:
            conn.close()
    except Exception as exc:  # pragma: no cover - reported, not fatal
        return f"unreachable ({exc})"


def postgres_version() -> str:
    try:
        import psycopg
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=5) as c:
            return "PostgreSQL " + c.execute("SHOW server_version").fetchone()[0]
    except Exception as exc:  # pragma: no cover
        return f"unreachable ({exc})"


def git_revision(root: Path | None = None) -> str:
    """The commit a report was made from (this checkout, or `root`), and whether the work tree
    differed from it."""
    root = root or Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + (" (with uncommitted changes)" if dirty else "") if rev else "unknown"
    except Exception:
        return "unknown"


def machine_info() -> dict[str, str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    return {
        "CPU": cpu_model(),
        "Cores": str(os.cpu_count()),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "RabbitMQ": rabbitmq_version(),
        "PostgreSQL": postgres_version(),
        "SQLite": __import__("sqlite3").sqlite_version,
        "kombu / amqp (py-amqp)": f"{_version('kombu')} / {_version('amqp')}",
        "SQLAlchemy / psycopg": f"{_version('SQLAlchemy')} / {_version('psycopg')}",
        "Load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" if isinstance(x, float) else x for x in load),
    }


# -- numbers ----------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (NaN once it has gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for an empty list."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")


def fmt_rate(x: float) -> str:
    return "n/a" if x != x else f"{x:,.0f}"


def fmt_ms(x: float) -> str:
    return "n/a" if x != x else (f"{x:.1f}" if x >= 10 else f"{x:.2f}")


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class Deadline:
    """A time budget: `left()` seconds remain; `over()` once it is spent."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def over(self) -> bool:
        return self.left() <= 0
