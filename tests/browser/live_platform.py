"""The platform as the browser tests need it: `crm_shared.platform.Platform` (the four services,
web + worker each, on free ports, SQLite files and the embedded bus) with the development gateway
in front of it, serving the consoles. Usable alone for a manual look:
`.venv/bin/python tests/browser/live_platform.py DATA_DIR` (prints the consoles' URL)."""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {"LOG_LEVEL": "WARNING", "CRM_ENV": "development",
       # one process per web, threads enough for the browsers' inbox streams and page loads: every
       # console page holds one of notify's threads with its inbox stream, and a closed page's thread
       # is freed only when the stream's next heartbeat finds it gone (NOTIFY_SSE_HEARTBEAT_SECONDS,
       # 10) or the stream reaches its end (25 s); the tests open more than 12 pages in that time,
       # and with 12 threads notify's other requests waited for a free one (names shown as ids, the
       # inbox stream of the next page not served)
       "WEB_CONCURRENCY": "1", "WEB_THREADS": "32", "OUTBOX_POLL_MS": "100"}


class LivePlatform:
    def __init__(self, data_dir: Path):
        from crm_shared.platform import Platform
        self.data_dir = Path(data_dir)
        data = self.data_dir / "data"
        self.services = Platform(str(data), ports="free", env=ENV, bus_url=f"sqlite:///{data}/bus.db", namespace="crm",
                                 log_dir=str(self.data_dir / "logs"))
        self.ports = {n: s.port for n, s in self.services.services.items()}
        self.server = None
        self.url = None
        self.data: dict = {}

    def start(self, timeout: float = 90) -> "LivePlatform":
        from crm_shared.gateway import Gateway, serve
        try:
            self.services.start(wait=True, timeout=timeout)
        except Exception:
            self.services.stop()
            raise
        # the development login (user picker), whatever this shell's CRM_OIDC_* say
        env = {k: v for k, v in self.services.env.items() if not k.startswith("CRM_OIDC_")}
        gw = Gateway(self.upstreams(), ROOT / "frontends", env=env)
        self.server = serve(gw, "127.0.0.1", 0)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        return self

    def upstreams(self) -> dict[str, str]:
        return {n: self.services.url(n) for n in self.services.services}

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        self.services.stop()


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly on SIGTERM as on Ctrl-C
    p = LivePlatform(Path(sys.argv[1] if len(sys.argv) > 1 else "var-browser")).start()
    print(f"{p.url}/app/", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        p.stop()
