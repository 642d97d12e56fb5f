"""Fault injection for the reliability tests: a private RabbitMQ node that can be stopped and
started without touching anybody else's broker, and a TCP proxy between a service and its database
that can be cut and restored.

    with RabbitNode() as rabbit:          # its own node name, ports, data and log directories
        rabbit.url                        # amqp://guest:guest@127.0.0.1:<port>//
        rabbit.stop_app(); rabbit.start_app()

    with TcpProxy("127.0.0.1", 5432) as proxy:
        url = proxy.rewrite(database_url)  # the same database, through the proxy
        proxy.cut()                        # open connections reset, new ones refused
        proxy.restore()
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

from .platform import free_port

RABBIT_BIN = "/usr/lib/rabbitmq/bin"  # the Debian wrapper in /usr/sbin would `su rabbitmq` and drop our environment


def _rabbit_tool(name: str) -> str:
    path = os.path.join(RABBIT_BIN, name)
    if os.path.exists(path):
        return path
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed")
    return found


class RabbitNode:
    """A RabbitMQ node of its own (node name crmfault-<random>@localhost, free AMQP and
    distribution ports, data, logs, Erlang cookie and an empty plugin list in a temporary directory),
    run as a child process in its own session, so it is always torn down, even when the test fails:
    `rabbitmqctl stop`, then SIGKILL of the process group if that did not do it."""

    def __init__(self, start_timeout: float = 90):
        self.dir = tempfile.mkdtemp(prefix="crmfault-rabbit-")
        self.node = f"crmfault-{secrets.token_hex(4)}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        while self.dist_port == self.port:
            self.dist_port = free_port()
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        cookie = os.path.join(self.dir, ".erlang.cookie")
        with open(cookie, "w") as f:
            f.write(secrets.token_hex(16).upper())
        os.chmod(cookie, 0o400)
        for name, text in (("enabled_plugins", ""), ("rabbitmq-env.conf", ""),
                           ("rabbitmq.conf", f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
                                             "log.file.level = warning\nlog.console = false\n")):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        self.env = dict(
            os.environ, HOME=self.dir,  # the CLI and the node find the same private cookie there
            RABBITMQ_NODENAME=self.node, RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=os.path.join(self.dir, "mnesia"), RABBITMQ_LOG_BASE=os.path.join(self.dir, "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.dir, "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=os.path.join(self.dir, "rabbitmq.conf"),
            RABBITMQ_CONF_ENV_FILE=os.path.join(self.dir, "rabbitmq-env.conf"),  # not the machine's NODENAME
            RABBITMQ_PID_FILE=os.path.join(self.dir, "pid"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_ADDRESS="127.0.0.1")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def ctl(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([_rabbit_tool("rabbitmqctl"), "-n", self.node, *args], env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()[-800:]}")
        return r

    def start(self) -> "RabbitNode":
        log = open(os.path.join(self.dir, "server.out"), "ab")
        self.proc = subprocess.Popen([_rabbit_tool("rabbitmq-server")], env=self.env, cwd=self.dir, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.await_startup()
        return self

    def await_startup(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the private RabbitMQ node exited ({self.proc.returncode}): {self.log_tail()}")
            # fails at once while the node has not registered with epmd yet: ask again
            r = self.ctl("await_startup", "--timeout", "30", check=False, timeout=45)
            if r.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the private RabbitMQ node did not start: {r.stderr.strip()[-500:]} {self.log_tail()}")
            time.sleep(0.5)

    def stop_app(self) -> None:
        """The broker stops (connections dropped, port closed); the Erlang node stays up."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.ctl("await_startup")

    def log_tail(self, n: int = 2000) -> str:
        out = []
        for path in (os.path.join(self.dir, "server.out"), os.path.join(self.dir, "log", f"{self.node}.log")):
            try:
                with open(path, "rb") as f:
                    out.append(f.read().decode("utf-8", "replace")[-n:])
            except OSError:
                pass
        return "\n".join(out)

    def stop(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    self.ctl("stop", timeout=30, check=False)
                    self.proc.wait(20)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "RabbitNode":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a crashed or unplugged server would look to the client."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class TcpProxy:
    """Forwards a local port to `upstream`. `cut()` resets every open connection and refuses new ones
    (accepted, then reset at once) until `restore()`: the database is unreachable for the clients
    behind it, while it keeps running for everybody else."""

    def __init__(self, host: str, port: int):
        self.upstream = (host, port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.listener.settimeout(0.5)  # the accept loop notices close()
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.closed = False
        self.refused = 0  # connections refused while cut
        self.accepted = 0
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)

    def rewrite(self, url: str) -> str:
        """A SQLAlchemy/libpq URL for the same database through this proxy."""
        from sqlalchemy.engine import make_url
        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def start(self) -> "TcpProxy":
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(None)
            if not self.open:
                self.refused += 1
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            self.accepted += 1
            pair = (client, server)
            with self._lock:
                self._pairs.add(pair)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b, pair), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pair) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(pair)

    def _drop(self, pair) -> None:
        with self._lock:
            if pair not in self._pairs:
                return
            self._pairs.discard(pair)
        for s in pair:
            _reset(s)

    def cut(self) -> int:
        """Reset every connection and refuse new ones. Returns how many were open."""
        self.open = False
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            self._drop(pair)
        return len(pairs)

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.closed = True
        self.cut()
        try:
            self.listener.close()
        except OSError:
            pass

    def __enter__(self) -> "TcpProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
