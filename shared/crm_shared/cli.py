"""The `crm` command: dev tokens, dead letters, migrations, workers, and the embedded platform."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import click

from . import service as services
from .config import Settings


@click.group()
def main():
    """CRM platform command line."""


@main.command()
@click.option("--user", required=True, help="user id (the token's sub)")
@click.option("--name", required=True, help="display name")
@click.option("--role", "roles", multiple=True, required=True, help="role; repeat for several")
@click.option("--team", default=None)
@click.option("--lang", default="zh-CN", type=click.Choice(["zh-CN", "en"]))
@click.option("--hours", default=12, show_default=True, help="lifetime")
def token(user, name, roles, team, lang, hours):
    """Print a development token (HS256, CRM_JWT_SECRET)."""
    from .web.auth import dev_token
    settings = Settings.from_env("cli")
    if settings.env == "production":
        raise click.ClickException("development tokens are not issued with CRM_ENV=production")
    try:
        click.echo(dev_token(settings.jwt_secret, user, name, list(roles), team, lang, timedelta(hours=hours)))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--role")


@main.group("dead-letters")
def dead_letters():
    """Inspect and replay a service's dead-letter queue."""


def _bus(service):
    from .bus import connect
    s = Settings.from_env(service)
    return connect(s.bus_url, s.bus_namespace)


@dead_letters.command("list")
@click.argument("service")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
def dl_list(service, as_json):
    letters = _bus(service).dead_letters(service)
    for d in letters:
        if as_json:
            click.echo(json.dumps({"message_id": d.message_id, "type": d.routing_key, "attempts": d.attempts,
                                   "error": d.error, "body": d.body.decode("utf-8", "replace")}, ensure_ascii=False))
        else:
            click.echo(f"{d.message_id}  {d.routing_key}  attempts={d.attempts}  {d.error.splitlines()[-1] if d.error else ''}")
    if not as_json:
        click.echo(f"{len(letters)} dead letter(s) in {service}", err=True)


@dead_letters.command("replay")
@click.argument("service")
@click.option("--id", "ids", multiple=True, help="replay only these message ids (default: all)")
def dl_replay(service, ids):
    n = _bus(service).replay(service, list(ids) if ids else None)
    click.echo(f"replayed {n} message(s) into {service}")


@main.group()
def outbox():
    """A producer's outbox: re-publish kept events to one consumer."""


def _when(value):
    from datetime import datetime, timezone
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time, e.g. 2026-11-23T02:00:00+00:00")
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


@outbox.command("republish")
@click.argument("producer")
@click.option("--to", "consumer", required=True, help="the one service whose queue receives the copies")
@click.option("--since", default=None, help="only events created at or after this time (ISO 8601, UTC if no zone)")
@click.option("--until", default=None, help="only events created before this time")
@click.option("--type", "types", multiple=True, help="only these event types (default: every type the consumer "
                                                     "consumes); repeat for several")
@click.option("--dry-run", is_flag=True, help="count what would be sent, send nothing")
def outbox_republish(producer, consumer, since, until, types, dry_run):
    """Copy PRODUCER's published events (kept OUTBOX_RETENTION_DAYS) into CONSUMER's queue only,
    in commit order. Runs with the producer's DATABASE_URL and BUS_URL; the consumer's inbox skips
    the events it has already applied."""
    from .events.catalogue import PRODUCERS
    from .republish import consumed_types, republish
    from .runtime import Runtime
    if consumer not in services.installed() and consumer not in _catalogue_services():
        raise click.BadParameter(f"unknown service {consumer!r}", param_hint="--to")
    produced = [t for t, p in PRODUCERS.items() if p == producer]
    wanted = consumed_types(consumer, produced)
    if types:
        unknown = sorted(set(types) - set(wanted))
        if unknown:
            raise click.BadParameter(f"{', '.join(unknown)}: not an event {producer} produces and {consumer} "
                                     f"consumes ({', '.join(wanted) or 'none'})", param_hint="--type")
        wanted = sorted(set(types))
    if not wanted:
        raise click.ClickException(f"{consumer} consumes no event {producer} produces")
    rt = Runtime(services.load(producer), Settings.from_env(producer))
    try:
        n = republish(rt, rt.bus, consumer, wanted, _when(since), _when(until), dry_run=dry_run)
    finally:
        rt.close()
    verb = "would send" if dry_run else "sent"
    click.echo(f"{verb} {n} event(s) of {producer} ({', '.join(wanted)}) to {consumer}'s queue only")


@main.group()
def job():
    """A service's scheduled jobs, run by hand."""


@job.command("run")
@click.argument("service")
@click.argument("name", required=False)
def job_run(service, name):
    """Run SERVICE's job NAME once now (without NAME: list the jobs), with the service's
    DATABASE_URL and BUS_URL, e.g. `crm job run sales report_rollups` after a rollout. Holds the job's
    lock as the workers do: if a worker is running it right now, this says so and exits 1."""
    from .runtime import Runtime
    from .scheduler import Scheduler
    if service not in services.installed():
        raise click.BadParameter(f"unknown service {service!r}", param_hint="SERVICE")
    definition = services.load(service)
    jobs = {j.name: j for j in definition.jobs}
    if name is None:
        for j in definition.jobs:
            click.echo(f"{j.name}\t{j.cron or f'every {j.every_seconds:g} s'}")
        return
    if name not in jobs:
        raise click.BadParameter(f"{service} has no job {name!r} (it has: {', '.join(jobs) or 'none'})",
                                 param_hint="NAME")
    rt = Runtime(definition, Settings.from_env(service))
    try:
        ran = Scheduler(rt, definition.jobs).run_job(jobs[name])
        rt.outbox_wake.set()
    finally:
        rt.close()
    if not ran:
        raise click.ClickException(f"{service}'s {name} is running in a worker right now; try again when it is done")
    click.echo(f"ran {service}'s {name}; events it emitted go out with the service's relay")


def _catalogue_services():
    from .events.catalogue import SERVICES
    return SERVICES


@main.command()
@click.argument("names", nargs=-1)
def migrate(names):
    """Bring each service's database to the latest schema (all installed services by default)."""
    from .migrations import upgrade
    for name in names or services.installed():
        d = services.load(name)
        upgrade(d, Settings.from_env(name).database_url)
        click.echo(f"{name}: migrated", err=True)


@main.command()
def declare():
    """Declare the exchange, every service's queue, retry and dead-letter queues."""
    s = Settings.from_env("cli")
    from .bus import connect
    connect(s.bus_url, s.bus_namespace).declare_platform(s.retry_delays_ms)
    click.echo("bus topology declared", err=True)


@main.command()
@click.argument("name")
@click.option("--parts", default=None, metavar="consume,relay,schedule",
              help="which parts this process runs (default: WORKER_PARTS, else all three)")
def worker(name, parts):
    """Run a service's worker: consumer, outbox relay and scheduler (or the --parts named)."""
    from .worker import main as run, resolve_parts
    try:
        flags = resolve_parts(parts)
    except ValueError as exc:
        raise click.UsageError(str(exc))
    run(services.load(name), parts=flags)


@main.command()
@click.argument("name")
@click.option("--port", type=int, default=None)
@click.option("--workers", type=int, default=None, help="gunicorn workers (WEB_CONCURRENCY)")
def web(name, port, workers):
    """Serve a service's HTTP API with gunicorn."""
    d = services.load(name)
    os.execvp(sys.executable, _gunicorn_argv(d, port or d.port, workers))


def _gunicorn_argv(d, port, workers=None):
    return [sys.executable, "-m", "gunicorn", "--bind", f"{os.environ.get('BIND_HOST', '127.0.0.1')}:{port}",
            "--workers", str(workers or os.environ.get("WEB_CONCURRENCY", "2")),
            # threads: a slow client or a server-sent-events stream does not hold a whole process
            "--worker-class", "gthread", "--threads", os.environ.get("WEB_THREADS", "4"),
            "--graceful-timeout", "20", "--no-control-socket",
            "--access-logfile", "-", "--name", f"crm-{d.name}", d.wsgi]


@main.command("clock")
@click.option("--days", type=float, default=0.0, help="move the shared clock forward by this many days")
@click.option("--hours", type=float, default=0.0)
@click.option("--reset", is_flag=True, help="back to the real time")
@click.option("--run-jobs", is_flag=True, help="leave the time as it is, but make every worker run its jobs now")
def clock_cmd(days, hours, reset, run_jobs):
    """Show or move the shared development clock (CRM_CLOCK_FILE; refused with CRM_ENV=production).
    Every process of the platform reads it; the workers run their jobs at once when it moves."""
    from . import clock
    if os.environ.get("CRM_ENV", "development") == "production":
        raise click.ClickException("the movable clock is refused with CRM_ENV=production")
    path = _clock_file()
    offset = 0.0 if reset else clock.read_offset(path) + timedelta(days=days, hours=hours).total_seconds()
    if reset or days or hours or run_jobs:
        clock.write_offset(path, offset)
    click.echo(f"{clock.FileClock(path).now().isoformat()} (offset {timedelta(seconds=offset)}, {path})")


def _clock_file() -> str:
    """CRM_CLOCK_FILE, or the one `crm run` gives its processes: $CRM_DATA_DIR/clock.json."""
    return os.environ.get("CRM_CLOCK_FILE") or os.path.join(os.environ.get("CRM_DATA_DIR", "var"), "clock.json")


@main.command()
@click.option("--url-base", default="http://127.0.0.1", show_default=True,
              help="where the services of `make run` listen (each on its own port)")
def demo(url_base):
    """Load sample data (Chinese and English) into a running platform through its APIs and walk it
    through the whole flow: leads, customers, quotes in approval, contracts, orders, tickets, inbox."""
    import requests
    from .demo import run_demo, urls_from_base
    try:
        run_demo(urls_from_base(url_base), echo=lambda m: click.echo(m, err=True))
    except requests.ConnectionError as exc:
        raise click.ClickException(f"cannot reach the platform ({exc.request.url if exc.request else url_base}): "
                                   "start it first with `make run`")
    except Exception as exc:  # noqa: BLE001 - a platform refusing: say so plainly
        raise click.ClickException(f"the demo stopped: {exc}")


@main.command()
@click.option("--data-dir", default=lambda: os.environ.get("CRM_DATA_DIR", "var"), show_default="var")
def run(data_dir):
    """Run the whole platform on this machine: SQLite files and the embedded bus, no servers to
    install. Each service gets a web (gunicorn) and a worker process; notify's scheduled jobs get a
    process of their own (crm_shared.platform.JOBS_APART). Ctrl-C stops everything."""
    from .platform import Platform
    try:
        platform = Platform(data_dir)
    except RuntimeError as exc:
        raise click.ClickException(str(exc))
    platform.start()
    for name in platform.services:
        click.echo(f"{name:>13}: {platform.url(name)}/docs", err=True)
    # the development gateway: consoles under /app/, services under /leads/ … (crm_shared/gateway.py)
    gateway = subprocess.Popen([sys.executable, "-m", "crm_shared.gateway", *(
        f"--upstream={n}={platform.url(n)}" for n in platform.services)], env=platform.env, start_new_session=True)
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        down = platform.exited() + ([f"gateway (exit {gateway.returncode})"] if gateway.poll() is not None else [])
        if down:
            click.echo(f"{', '.join(down)}: stopping the platform", err=True)
            break
        time.sleep(0.3)
    gateway.terminate()
    platform.stop()
    gateway.wait(10)
    click.echo("platform stopped", err=True)
    sys.exit(0 if stopping else 1)


if __name__ == "__main__":
    main()
