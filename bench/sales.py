"""Sales service: approval decisions per second and the funnel report on 100,000 opportunities.

The benchmark itself is `sales.bench` (services/sales/sales/bench.py); it runs in a process of its
own because this file's module name, `sales`, would otherwise shadow the service's package.

    .venv/bin/python bench/sales.py        # prints the Markdown section
    make bench                             # every benchmark under bench/ -> docs/BENCHMARKS.md
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TITLE = "Sales: approval decisions and the funnel report"
ROOT = Path(__file__).resolve().parent.parent


def run() -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "sales.bench"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"sales.bench failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout.strip()


if __name__ == "__main__":
    print(run())
