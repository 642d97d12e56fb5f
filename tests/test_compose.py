"""The container platform, checked without Docker: docker-compose.yml, the gateway's nginx.conf,
the services' Dockerfiles and .dockerignore.

No container is started (CI has no Docker engine): the files are parsed and the properties the
platform relies on are asserted, so that a change which breaks one of them fails here rather than
at the first `docker compose up`. Compose's variable substitution is done here too (`${VAR}`,
`${VAR:-default}`, `${VAR:?error}`, `$$`), with fake values for the secrets."""
from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import pytest
import yaml

from crm_shared.config import DEV_JWT_SECRET
from crm_shared.service import load as load_service

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"

# service -> the port its web listens on (checked against each ServiceDefinition below)
SERVICES = {"leads": 8001, "sales": 8002, "service-desk": 8003, "notify": 8004}
ROLES = ("migrate", "web", "worker")
GATEWAY_PORT = 8080

# The variables compose must refuse to start without. Each gets a fake, URL-safe value here.
SECRET_VARIABLES = ("CRM_JWT_SECRET", "LEADS_DB_PASSWORD", "SALES_DB_PASSWORD", "SERVICE_DESK_DB_PASSWORD",
                    "NOTIFY_DB_PASSWORD", "RABBITMQ_LEADS_PASSWORD", "RABBITMQ_SALES_PASSWORD",
                    "RABBITMQ_SERVICE_DESK_PASSWORD", "RABBITMQ_NOTIFY_PASSWORD", "RABBITMQ_ADMIN_PASSWORD")
FAKE_ENV = {name: f"fake{i}{name.lower().replace('_', '')}" for i, name in enumerate(SECRET_VARIABLES)}

SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|_PASS$|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIAL", re.I)
REQUIRED_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}")
# Secrets that exist only for a while (key rotation): optional, and then their only allowed default
# is the empty string, never a value.
OPTIONAL_SECRETS = {"CRM_JWT_PREVIOUS_SECRET"}
OPTIONAL_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):-\}")


# the services whose scheduled jobs run in a container of their own, `<name>-jobs` (as `crm run`
# does: crm_shared.platform.JOBS_APART); their `<name>-worker` consumes and relays only
JOBS_APART = ("notify",)


def roles(name: str) -> tuple[str, ...]:
    return ROLES + (("jobs",) if name in JOBS_APART else ())


def app_containers():
    return [(name, role, f"{name}-{role}") for name in SERVICES for role in roles(name)]


def db_service(name: str) -> str:
    return f"{name}-db"


# ---- compose variable substitution ---------------------------------------------------------------

class MissingVariable(Exception):
    def __init__(self, name: str, message: str):
        super().__init__(f"required variable {name} is missing a value: {message}")
        self.name = name


_DOLLAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>.*))?", re.S)


def interpolate(value, env: dict):
    """Compose's substitution, applied to every string value of a parsed compose file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group("escaped"):
            return "$"
        if m.group("named"):
            return env.get(m.group("named"), "")
        b = _BRACED.fullmatch(m.group("braced"))
        if b is None:
            raise ValueError(f"invalid substitution ${{{m.group('braced')}}}")
        name, op, arg = b.group("name"), b.group("op"), b.group("arg")
        current = env.get(name)
        if op is None:
            return current or ""
        if op == ":-":
            return current or arg
        if op == "-":
            return arg if current is None else current
        if (op == ":?" and not current) or (op == "?" and current is None):
            raise MissingVariable(name, arg)
        return current

    return _DOLLAR.sub(sub, value)


def references(value) -> list[tuple[str, str | None, str]]:
    """Every `${NAME<op><arg>}` in a parsed compose document: (name, op, arg)."""
    found = []
    if isinstance(value, dict):
        for v in value.values():
            found += references(v)
    elif isinstance(value, list):
        for v in value:
            found += references(v)
    elif isinstance(value, str):
        for m in _DOLLAR.finditer(value):
            if m.group("braced") is not None:
                b = _BRACED.fullmatch(m.group("braced"))
                found.append((b.group("name"), b.group("op"), b.group("arg")) if b else (m.group("braced"), None, ""))
            elif m.group("named"):
                found.append((m.group("named"), None, ""))
    return found


# ---- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def raw() -> dict:
    """The compose file as written (YAML anchors and merge keys resolved, variables not)."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    """The compose file as compose sees it, with every required variable set."""
    return interpolate(raw, FAKE_ENV)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def environment(svc: dict) -> dict:
    env = svc.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...]
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def depends_on(svc: dict) -> dict:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):  # short syntax: no condition, i.e. only "started"
        return {d: {"condition": "service_started"} for d in deps}
    return deps


def command(svc: dict) -> list[str] | None:
    cmd = svc.get("command")
    return shlex.split(cmd) if isinstance(cmd, str) else cmd


def healthcheck_text(svc: dict) -> str:
    test = (svc.get("healthcheck") or {}).get("test")
    return " ".join(test) if isinstance(test, list) else (test or "")


def healthcheck_disabled(svc: dict) -> bool:
    hc = svc.get("healthcheck") or {}
    return hc.get("disable") is True or hc.get("test") in (["NONE"], "NONE")


class Port(NamedTuple):
    host_ip: str
    published: int | None
    target: int


def published_ports(svc: dict) -> set[Port]:
    ports = set()
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            ports.add(Port(p.get("host_ip", ""), int(p["published"]) if p.get("published") else None, int(p["target"])))
            continue
        spec = str(p).split("/")[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            ports.add(Port(parts[0], int(parts[1]), int(parts[2])))
        elif len(parts) == 2:
            ports.add(Port("", int(parts[0]), int(parts[1])))
        else:
            ports.add(Port("", None, int(parts[0])))
    return ports


# ---- services, images, commands ------------------------------------------------------------------

def test_ports_match_the_service_definitions():
    for name, port in SERVICES.items():
        assert load_service(name).port == port, f"{name}'s ServiceDefinition port changed: update compose, Dockerfile, gateway"


def test_every_expected_service_exists(services):
    expected = {"rabbitmq", "mailpit", "gateway"}
    for name in SERVICES:
        expected |= {f"{name}-{role}" for role in roles(name)} | {db_service(name)}
    assert expected - set(services) == set()
    # no jobs container for a service whose worker runs its jobs
    assert {k for k in services if k.endswith("-jobs")} == {f"{n}-jobs" for n in JOBS_APART}


def test_the_jobs_apart_are_those_crm_run_starts():
    from crm_shared.platform import JOBS_APART as platform_jobs_apart
    assert JOBS_APART == platform_jobs_apart


def test_every_service_has_an_image_or_a_buildable_dockerfile(services):
    for key, svc in services.items():
        assert svc.get("image") or svc.get("build"), f"{key} has neither image nor build"
        build = svc.get("build")
        if build is None:
            continue
        build = {"context": build} if isinstance(build, str) else build
        assert build.get("context") == ".", f"{key}: the build context must be the repository root (shared/ is needed)"
        dockerfile = ROOT / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{key}: {dockerfile} does not exist"


@pytest.mark.parametrize("name", SERVICES)
def test_migrate_web_and_worker_of_a_service_run_one_image(services, name):
    containers = [services[f"{name}-{role}"] for role in roles(name)]
    images = {c.get("image") for c in containers}
    assert len(images) == 1 and None not in images, f"{name}: one image for migrate, web and worker, got {images}"
    for c in containers:
        assert c["build"]["dockerfile"] == f"services/{name}/Dockerfile"
    assert len({json.dumps(c["build"], sort_keys=True) for c in containers}) == 1


@pytest.mark.parametrize("name", SERVICES)
def test_commands(services, name):
    assert command(services[f"{name}-migrate"]) == ["crm", "migrate", name]
    if name in JOBS_APART:
        # between them, the two run every part once (`crm worker --parts`)
        assert command(services[f"{name}-worker"]) == ["crm", "worker", name, "--parts", "consume,relay"]
        assert command(services[f"{name}-jobs"]) == ["crm", "worker", name, "--parts", "schedule"]
    else:
        assert command(services[f"{name}-worker"]) == ["crm", "worker", name]
    # the web may rely on the image's CMD (checked in the Dockerfile tests)
    assert command(services[f"{name}-web"]) in (None, ["crm", "web", name])


def test_migrations_run_once_and_the_rest_restarts(services):
    for name, role, key in app_containers():
        restart = str(services[key].get("restart", "no"))
        if role == "migrate":
            assert restart in ("no", "on-failure"), f"{key} is a one-shot job, got restart={restart}"
        else:
            assert restart in ("unless-stopped", "always"), f"{key} should come back after a crash"


# ---- ports ---------------------------------------------------------------------------------------

def test_published_ports(services):
    expected = {
        "gateway": {Port("", GATEWAY_PORT, GATEWAY_PORT)},
        "mailpit": {Port("127.0.0.1", 8025, 8025)},     # UI, local only
        "rabbitmq": {Port("127.0.0.1", 15672, 15672)},  # management UI, local only
    }
    for key, svc in services.items():
        assert published_ports(svc) == expected.get(key, set()), (
            f"{key} publishes {published_ports(svc)}: databases, the broker's AMQP port and the services "
            "stay inside the network; the gateway is the one way in")


# ---- configuration of the app containers ---------------------------------------------------------

@pytest.mark.parametrize("name,role,key", app_containers())
def test_database_url_points_at_the_service_own_database(services, name, role, key):
    env = environment(services[key])
    db = environment(services[db_service(name)])
    url = urlsplit(env["DATABASE_URL"])
    assert url.scheme == "postgresql+psycopg"
    assert url.hostname == db_service(name), f"{key} must use its own database, not {url.hostname}"
    assert url.port in (None, 5432)
    assert url.path.lstrip("/") == db["POSTGRES_DB"]
    assert url.username == db["POSTGRES_USER"]
    assert url.password == db["POSTGRES_PASSWORD"]


@pytest.mark.parametrize("name,role,key", app_containers())
def test_bus_url_is_the_service_own_broker_user(services, name, role, key):
    """Each service connects as its own user of deploy/rabbitmq/definitions.json, with its own
    password, to the definitions' vhost, and declares only its own queues."""
    env = environment(services[key])
    url = urlsplit(env["BUS_URL"])
    assert url.scheme == "amqp"
    assert url.hostname == "rabbitmq"
    assert url.port in (None, 5672)
    defs = json.loads((ROOT / "deploy/rabbitmq/definitions.json").read_text())
    assert url.username == f"crm-{name}" and url.username in {u["name"] for u in defs["users"]}
    assert url.path == "/" + defs["vhosts"][0]["name"]
    assert url.password == FAKE_ENV[f"RABBITMQ_{name.upper().replace('-', '_')}_PASSWORD"]
    assert env["BUS_DECLARE_PLATFORM"] == "0"
    others = [f"crm-{n}:" for n in SERVICES if n != name]
    assert not any(o in json.dumps(env) for o in others)


@pytest.mark.parametrize("name,role,key", app_containers())
def test_app_environment(services, name, role, key):
    env = environment(services[key])
    assert env["CRM_JWT_SECRET"] == FAKE_ENV["CRM_JWT_SECRET"]
    assert env.get("CRM_ENV") == "production", f"{key}: the compose platform runs with CRM_ENV=production by default"


@pytest.mark.parametrize("name,role,key", app_containers())
def test_the_previous_jwt_secret_reaches_every_container_during_a_rotation(raw, name, role, key):
    """Rotation (docs/OPERATIONS.md): the old key must reach every web and worker, or tokens issued
    before the rotation fail on some containers only; unset, it is empty (= no previous key)."""
    rotating = environment(interpolate(raw, {**FAKE_ENV, "CRM_JWT_PREVIOUS_SECRET": "old" + "k" * 40})["services"][key])
    assert rotating["CRM_JWT_PREVIOUS_SECRET"] == "old" + "k" * 40
    assert environment(interpolate(raw, FAKE_ENV)["services"][key])["CRM_JWT_PREVIOUS_SECRET"] == ""


def test_notify_sends_mail_to_the_catcher(services):
    assert str(services["mailpit"]["image"]).startswith("axllent/mailpit:")
    for role in roles("notify"):
        assert environment(services[f"notify-{role}"]).get("SMTP_URL") == "smtp://mailpit:1025"
    assert "mailpit" in depends_on(services["notify-worker"]) and "mailpit" in depends_on(services["notify-jobs"])


# ---- health checks and start order ---------------------------------------------------------------

def test_healthchecks(services):
    checked = ["rabbitmq", "mailpit", "gateway"] + [db_service(n) for n in SERVICES] + [f"{n}-web" for n in SERVICES]
    for key in checked:
        assert services[key].get("healthcheck") and not healthcheck_disabled(services[key]), f"{key} needs a health check"
        assert healthcheck_text(services[key]), f"{key}: empty health check"
    for name in SERVICES:
        assert "pg_isready" in healthcheck_text(services[db_service(name)])
    assert "rabbitmq-diagnostics" in healthcheck_text(services["rabbitmq"])


@pytest.mark.parametrize("name", SERVICES)
def test_web_healthcheck_is_readiness_on_its_own_port(services, name):
    text = healthcheck_text(services[f"{name}-web"])
    assert re.search(rf"//(127\.0\.0\.1|localhost):{SERVICES[name]}/readyz\b", text), text
    assert "curl" not in text and "wget" not in text, "python:3.11-slim has neither curl nor wget"


@pytest.mark.parametrize("name", SERVICES)
def test_worker_and_migration_replace_the_image_web_healthcheck(services, name):
    # the image's HEALTHCHECK probes the web port: a worker would be reported unhealthy forever,
    # so the migration turns it off and the worker probes its own metrics port instead
    assert healthcheck_disabled(services[f"{name}-migrate"]), f"{name}-migrate"
    for role in roles(name)[2:]:  # worker, and jobs
        hc = services[f"{name}-{role}"]["healthcheck"]
        assert not hc.get("disable") and "9100/metrics" in " ".join(hc["test"]), f"{name}-{role}"
        assert services[f"{name}-{role}"]["stop_grace_period"] == "40s"


@pytest.mark.parametrize("name", SERVICES)
def test_start_order(services, name):
    assert depends_on(services[f"{name}-migrate"]) == {db_service(name): {"condition": "service_healthy"}}
    for role in roles(name)[1:]:  # web, worker (and jobs)
        deps = depends_on(services[f"{name}-{role}"])
        assert deps.get(f"{name}-migrate", {}).get("condition") == "service_completed_successfully", f"{name}-{role}"
        assert deps.get("rabbitmq", {}).get("condition") == "service_healthy", f"{name}-{role}"


def test_gateway_starts_after_the_webs(services):
    assert {f"{n}-web" for n in SERVICES} <= set(depends_on(services["gateway"]))


# ---- isolation: one database per service ---------------------------------------------------------

def test_databases_are_separate(services, compose):
    dbs = [environment(services[db_service(n)]) for n in SERVICES]
    assert len({d["POSTGRES_DB"] for d in dbs}) == len(SERVICES)
    assert len({d["POSTGRES_USER"] for d in dbs}) == len(SERVICES)
    assert len({d["POSTGRES_PASSWORD"] for d in dbs}) == len(SERVICES)
    sources = []
    for name in SERVICES:
        svc = services[db_service(name)]
        assert re.fullmatch(r"postgres:16(\.\d+)*(-[a-z0-9.]+)?(@sha256:[0-9a-f]{64})?", str(svc["image"])), svc["image"]
        mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in svc.get("volumes", [])]
        data = [m.split(":")[0] for m in mounts if m.split(":")[1] == "/var/lib/postgresql/data"]
        assert len(data) == 1 and data[0] in (compose.get("volumes") or {}), f"{name}: named volume for its data"
        sources += data
    assert len(set(sources)) == len(SERVICES), "each database has a volume of its own"


@pytest.mark.parametrize("name,role,key", app_containers())
def test_no_service_touches_another_services_database(services, name, role, key):
    others = [n for n in SERVICES if n != name]
    env_text = json.dumps(environment(services[key]))
    for other in others:
        assert f"@{db_service(other)}" not in env_text and f"//{db_service(other)}" not in env_text, (
            f"{key} reaches {other}'s database")
        assert db_service(other) not in depends_on(services[key])
        assert f"{other}-migrate" not in depends_on(services[key])


# ---- secrets -------------------------------------------------------------------------------------

def test_secret_looking_settings_are_required_variables(raw):
    for key, svc in raw["services"].items():
        for var, value in environment(svc).items():
            if var in OPTIONAL_SECRETS:
                m = OPTIONAL_REFERENCE.fullmatch(str(value).strip())
                assert m and m["name"] == var, f"{key}.{var} must be `${{{var}:-}}` (empty unless set): {value!r}"
            elif SECRET_NAME.search(var):
                assert isinstance(value, str) and REQUIRED_REFERENCE.fullmatch(value.strip()), (
                    f"{key}.{var} must be `${{VAR:?message}}`, never a literal or a default: {value!r}")


def test_secret_variables_have_no_default(raw):
    for name, op, arg in references(raw):
        if name in OPTIONAL_SECRETS:
            assert (op, arg) == (":-", ""), f"${{{name}}} may only default to empty"
        elif SECRET_NAME.search(name):
            assert op in (":?", "?"), f"${{{name}}} must be required (`:?`): a default would be a secret in the file"


@pytest.mark.parametrize("missing", SECRET_VARIABLES)
def test_compose_refuses_to_start_without_each_secret(raw, missing):
    env = {k: v for k, v in FAKE_ENV.items() if k != missing}
    with pytest.raises(MissingVariable) as exc:
        interpolate(raw, env)
    assert exc.value.name == missing


def test_every_password_in_a_url_comes_from_a_secret_variable(services):
    for key, svc in services.items():
        for var, value in environment(svc).items():
            if isinstance(value, str) and "://" in value:
                password = urlsplit(value).password
                assert password is None or password in FAKE_ENV.values(), f"{key}.{var} has a literal password"


def test_no_literal_secret_in_the_file():
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert DEV_JWT_SECRET not in text
    assert "guest:guest" not in text and "RABBITMQ_DEFAULT_PASS: guest" not in text
    assert "POSTGRES_HOST_AUTH_METHOD" not in text, "trust authentication: no password at all"


def test_blocks_are_written_once():
    # the per-service settings live in one extension field each (x-<name>), reused by anchors
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert text.count("postgresql+psycopg://") == len(SERVICES)
    assert len(re.findall(r"^\s+CRM_JWT_SECRET:", text, re.M)) == 1
    assert len(re.findall(r"^\s+BUS_URL:", text, re.M)) == len(SERVICES)   # one per service block


# ---- the broker ----------------------------------------------------------------------------------

def test_rabbitmq(services, compose):
    rmq = services["rabbitmq"]
    assert str(rmq["image"]).startswith("rabbitmq:3.13-management")
    # the node name (and so its data folder) comes from the host name: it must not change
    assert rmq.get("hostname") == "rabbitmq"
    mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in rmq.get("volumes", [])]
    assert any(m.split(":")[1] == "/var/lib/rabbitmq" and m.split(":")[0] in compose["volumes"] for m in mounts)
    # no single shared user: the definitions (users per service) are loaded at boot
    assert not {"RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"} & set(environment(rmq))
    conf = [m for m in mounts if m.split(":")[1].startswith("/etc/rabbitmq/conf.d/")]
    assert len(conf) == 1 and conf[0].endswith(":ro")
    conf_text = (ROOT / conf[0].split(":")[0]).read_text()
    loaded = re.search(r"^load_definitions\s*=\s*(\S+)$", conf_text, re.M).group(1)
    defs_mount = [m for m in mounts if loaded.startswith(m.split(":")[1] + "/")]
    assert len(defs_mount) == 1, f"{loaded} is not in a mounted volume"
    volume = defs_mount[0].split(":")[0]
    # ... written by the one-shot container from the committed definitions, before the broker starts
    writer = services["rabbitmq-definitions"]
    assert depends_on(rmq) == {"rabbitmq-definitions": {"condition": "service_completed_successfully"}}
    wmounts = dict(m.split(":")[:2][::-1] for m in writer["volumes"])
    out_dir = next(t for t, src in wmounts.items() if src == volume)
    cmd = command(writer)
    src_dir = next(t for t, src in wmounts.items() if src == "./deploy/rabbitmq")
    assert cmd[-2:] == [f"{src_dir}/definitions.json", f"{out_dir}/{loaded.rsplit('/', 1)[1]}"]
    assert cmd[-3] == f"{src_dir}/with-passwords.py"
    assert str(writer.get("restart")) == "no"


def test_the_definitions_writer_fills_every_service_user(tmp_path, services):
    """with-passwords.py with the compose environment: every user of definitions.json gets the hash
    of its own password (RabbitMQ's salted SHA-256), plus an administrator; nothing else changes."""
    import base64
    import hashlib
    import subprocess
    import sys
    env = dict(environment(services["rabbitmq-definitions"]), PATH="/usr/bin:/bin")
    out = tmp_path / "definitions.json"
    run = subprocess.run([sys.executable, str(ROOT / "deploy/rabbitmq/with-passwords.py"),
                          str(ROOT / "deploy/rabbitmq/definitions.json"), str(out)], env=env,
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    committed = json.loads((ROOT / "deploy/rabbitmq/definitions.json").read_text())
    written = json.loads(out.read_text())
    users = {u["name"]: u for u in written["users"]}
    assert set(users) == {u["name"] for u in committed["users"]} | {"crm-admin"}

    def check(user, password):
        raw = base64.b64decode(users[user]["password_hash"])
        assert raw[4:] == hashlib.sha256(raw[:4] + password.encode()).digest(), user

    for name in SERVICES:
        check(f"crm-{name}", FAKE_ENV[f"RABBITMQ_{name.upper().replace('-', '_')}_PASSWORD"])
    check("crm-admin", FAKE_ENV["RABBITMQ_ADMIN_PASSWORD"])
    assert users["crm-admin"]["tags"] == ["administrator"]
    for key in ("queues", "bindings", "policies", "exchanges", "topic_permissions"):
        assert written[key] == committed[key]
    # a missing password stops it (and so the broker, which waits for it)
    run = subprocess.run([sys.executable, str(ROOT / "deploy/rabbitmq/with-passwords.py"),
                          str(ROOT / "deploy/rabbitmq/definitions.json"), str(tmp_path / "x.json")],
                         env={k: v for k, v in env.items() if k != "RABBITMQ_SALES_PASSWORD"},
                         capture_output=True, text=True, timeout=30)
    assert run.returncode != 0 and "RABBITMQ_SALES_PASSWORD" in run.stderr


# ---- the gateway ---------------------------------------------------------------------------------

class Directive(NamedTuple):
    name: str
    args: list[str]
    block: list | None


def _nginx_tokens(text: str):
    """(kind, value): kind is 'word' or one of '{', '}', ';'. Quotes and comments handled."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{};":
            yield c, c
            i += 1
        elif c in "'\"":
            j, buf = i + 1, []
            while text[j] != c:
                if text[j] == "\\":
                    j += 1
                buf.append(text[j])
                j += 1
            yield "word", "".join(buf)
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "{};":
                j += 1
            yield "word", text[i:j]
            i = j


def parse_nginx(text: str) -> list[Directive]:
    tokens = list(_nginx_tokens(text))
    pos = 0

    def block(top: bool) -> list[Directive]:
        nonlocal pos
        items = []
        while pos < len(tokens):
            kind, value = tokens[pos]
            if kind == "}":
                assert not top, "unbalanced }"
                pos += 1
                return items
            words = []
            while tokens[pos][0] == "word":
                words.append(tokens[pos][1])
                pos += 1
            end = tokens[pos][0]
            pos += 1
            assert words, f"empty directive before {end}"
            items.append(Directive(words[0], words[1:], block(False) if end == "{" else None))
            assert end in ("{", ";"), f"unexpected {end}"
        assert top, "unclosed {"
        return items

    return block(True)


def find(items: list[Directive], name: str, *args: str) -> list[Directive]:
    return [d for d in items if d.name == name and (not args or d.args[:len(args)] == list(args))]


def one(items: list[Directive], name: str, *args: str) -> Directive:
    found = find(items, name, *args)
    assert len(found) == 1, f"expected one `{name} {' '.join(args)}`, found {len(found)}"
    return found[0]


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", duration)
    assert m, duration
    return int(m.group(1)) * units[m.group(2) or "s"]


@pytest.fixture(scope="module")
def gateway(services) -> dict:
    svc = services["gateway"]
    mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in svc.get("volumes", [])]
    conf = [m for m in mounts if m.split(":")[1] == "/etc/nginx/nginx.conf"]
    assert len(conf) == 1, "the gateway mounts its nginx.conf over /etc/nginx/nginx.conf"
    path = ROOT / conf[0].split(":")[0]
    assert path.is_file() and path.resolve() == (ROOT / "deploy/gateway/nginx.conf").resolve()
    config = parse_nginx(path.read_text(encoding="utf-8"))
    http = one(config, "http").block
    return {"service": svc, "http": http, "server": one(http, "server").block}


def upstream_servers(http: list[Directive], proxy_pass: str) -> tuple[list[str], str]:
    """(the `server` addresses behind a proxy_pass URL, the URL's path)."""
    url = urlsplit(proxy_pass)
    assert url.scheme == "http", proxy_pass
    ups = find(http, "upstream", url.netloc)
    if ups:
        return [d.args[0] for d in find(ups[0].block, "server")], url.path
    return [url.netloc], url.path


def effective_headers(http, server, location) -> dict[str, str]:
    """proxy_set_header as nginx applies it: a level that declares any inherits none."""
    for level in (location, server, http):
        declared = find(level, "proxy_set_header")
        if declared:
            return {d.args[0].lower(): d.args[1] for d in declared}
    return {}


def test_gateway_listens_on_its_published_port(gateway):
    assert str(gateway["service"]["image"]).startswith("nginx:")
    listen = [d.args[0] for d in find(gateway["server"], "listen")]
    assert listen == [str(GATEWAY_PORT)]
    assert {p.target for p in published_ports(gateway["service"])} == {GATEWAY_PORT}


@pytest.mark.parametrize("name", SERVICES)
def test_gateway_routes_each_prefix_to_its_service(gateway, services, name):
    location = one(gateway["server"], "location", f"/{name}/")
    proxy_pass = one(location.block, "proxy_pass").args[0]
    targets, path = upstream_servers(gateway["http"], proxy_pass)
    assert targets == [f"{name}-web:{SERVICES[name]}"], f"/{name}/ goes to {targets}"
    assert f"{name}-web" in services
    assert path == "/", f"/{name}/ must strip its prefix: `proxy_pass {proxy_pass}` should end in `/`"


def test_gateway_routes_nothing_else_to_a_service(gateway):
    proxied = {tuple(d.args) for d in find(gateway["server"], "location") if find(d.block, "proxy_pass")}
    allowed = {(f"/{n}/",) for n in SERVICES} | {("/notify/v1/inbox/stream",)}
    assert proxied <= allowed, proxied - allowed


def test_gateway_passes_a_request_id(gateway):
    maps = {d.args[1]: d for d in find(gateway["http"], "map") if d.args[0] == "$http_x_request_id"}
    for location in find(gateway["server"], "location"):
        if not find(location.block, "proxy_pass"):
            continue
        headers = effective_headers(gateway["http"], gateway["server"], location.block)
        value = headers.get("x-request-id")
        assert value, f"location {location.args}: X-Request-ID is not passed on"
        # the caller's id when there is one (directly, or through a map that falls back to $request_id)
        assert value == "$http_x_request_id" or value in maps, value


def test_gateway_streams_server_sent_events(gateway):
    location = one(gateway["server"], "location", "/notify/v1/inbox/stream")
    assert one(location.block, "proxy_buffering").args == ["off"]
    targets, path = upstream_servers(gateway["http"], one(location.block, "proxy_pass").args[0])
    assert targets == [f"notify-web:{SERVICES['notify']}"] and path == "/v1/inbox/stream"
    read_timeout = find(location.block, "proxy_read_timeout") or find(gateway["server"], "proxy_read_timeout")
    assert read_timeout and seconds(read_timeout[0].args[0]) >= 300, "an event stream stays open: long read timeout"


def test_gateway_upstreams_that_resolve_need_a_resolver_and_nginx_1_27_3(gateway):
    resolving = [d for up in find(gateway["http"], "upstream") for d in find(up.block, "server") if "resolve" in d.args]
    if not resolving:
        return
    assert find(gateway["http"], "resolver"), "`server ... resolve` needs a `resolver`"
    for up in find(gateway["http"], "upstream"):
        assert find(up.block, "zone"), f"upstream {up.args[0]}: `resolve` needs a shared memory zone"
    m = re.fullmatch(r"nginx:(\d+)\.(\d+)(?:\.(\d+))?(-[a-z0-9.-]+)?(@sha256:[0-9a-f]{64})?", gateway["service"]["image"])
    assert m, f"pin the nginx version: {gateway['service']['image']}"
    # a tag without a patch number (nginx:1.28-alpine) follows that line's latest patch
    version = (int(m.group(1)), int(m.group(2)), int(m.group(3)) if m.group(3) else 99)
    assert version >= (1, 27, 3), "`resolve` in an upstream needs nginx 1.27.3 or later"


def _mount_source(svc: dict, target: str) -> Path:
    """The host path the gateway mounts at `target` (read-only)."""
    for v in svc.get("volumes", []):
        source, tgt, *mode = (v.split(":") if isinstance(v, str) else [v["source"], v["target"]] + (["ro"] if v.get("read_only") else []))
        if tgt.rstrip("/") == target.rstrip("/"):
            assert mode == ["ro"], f"{target} is mounted read-only"
            return (ROOT / source).resolve()
    raise AssertionError(f"the gateway mounts nothing at {target}")


CONSOLES = ("sales", "backoffice", "service", "managers")


def test_gateway_serves_the_consoles_from_the_mounted_frontends(gateway):
    location = one(gateway["server"], "location", "/app/")
    alias = one(location.block, "alias").args[0]
    assert alias.endswith("/"), "`location /app/` with `alias` needs the trailing slash on both"
    assert _mount_source(gateway["service"], alias) == (ROOT / "frontends").resolve()
    assert one(location.block, "index").args == ["index.html"]
    assert not find(location.block, "proxy_pass")
    # ES modules load only with a JavaScript MIME type: the stock mime.types must be included
    assert find(gateway["http"], "include", "/etc/nginx/mime.types")
    for name in CONSOLES:
        index = ROOT / "frontends" / name / "index.html"
        assert index.is_file() and (ROOT / "frontends" / name / "app.js").is_file(), name
        # the import map points into the shared library, which is under the same alias
        imports = json.loads(re.search(r'<script type="importmap">(.*?)</script>', index.read_text(encoding="utf-8"), re.S).group(1))
        for url in imports["imports"].values():
            assert (index.parent / url).resolve().is_file(), f"{name}: {url}"


def test_consoles_log_in_with_the_identity_provider_in_compose(gateway):
    location = one(gateway["server"], "location", "=", "/app/config.json")
    source = _mount_source(gateway["service"], one(location.block, "alias").args[0])
    assert source == (ROOT / "deploy/gateway/consoles.json").resolve()
    config = json.loads(source.read_text(encoding="utf-8"))
    # compose is production-like: never the development user picker (and no /auth/dev-token route)
    assert config["auth"] == "oidc"
    assert urlsplit(config["oidc"]["issuer"]).scheme == "https" and config["oidc"]["client_id"]
    assert not [d for d in find(gateway["server"], "location") if "/auth/" in " ".join(d.args)]


def test_consoles_get_the_security_headers_of_the_development_gateway(gateway):
    """Compose's nginx sends the consoles the same headers as `crm run`'s gateway (tested in the
    browser there): the CSP allows the consoles' import map by hash and the identity provider of
    consoles.json for fetches, nothing inline besides."""
    from crm_shared import gateway as dev
    location = one(gateway["server"], "location", "/app/")
    headers = {d.args[0]: d.args[1] for d in find(location.block, "add_header")}
    assert all(d.args[-1] == "always" for d in find(location.block, "add_header"))
    pages = {(ROOT / "frontends" / name / "index.html").read_bytes() for name in CONSOLES}
    assert len(pages) == 1, "the consoles' index.html differ: one static CSP cannot carry their hashes"
    oidc = json.loads((ROOT / "deploy/gateway/consoles.json").read_text(encoding="utf-8"))["oidc"]
    expected = dev.content_security_policy(pages.pop(), oidc)
    assert headers.get("Content-Security-Policy") == expected, (
        f"set in deploy/gateway/nginx.conf, location /app/:\n  add_header Content-Security-Policy \"{expected}\" always;")
    assert "'unsafe-inline'" not in expected and urlsplit(oidc["issuer"]).netloc in expected
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == dev.REFERRER_POLICY
    assert headers["X-Frame-Options"] == "DENY"


# ---- Dockerfiles ---------------------------------------------------------------------------------

class Instruction(NamedTuple):
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """Instructions grouped by stage (a stage starts at FROM). Comment lines, including those
    inside a continued instruction, are dropped as Docker drops them."""
    instructions, current = [], ""
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            keyword, _, args = current.strip().partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip()))
        current = ""
    stages: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            stages.append([])
        assert stages, f"{ins.keyword} before FROM"
        stages[-1].append(ins)
    return stages


def env_pairs(args: str) -> dict[str, str]:
    words = shlex.split(args)
    if words and "=" not in words[0]:  # legacy `ENV KEY value`
        return {words[0]: " ".join(words[1:])}
    return dict(w.split("=", 1) for w in words)


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), args
    return value


@pytest.fixture(scope="module", params=list(SERVICES))
def dockerfile(request):
    name = request.param
    path = ROOT / "services" / name / "Dockerfile"
    assert path.is_file(), f"{path} is missing"
    stages = parse_dockerfile(path.read_text(encoding="utf-8"))
    return {"name": name, "port": SERVICES[name], "stages": stages, "final": stages[-1]}


def test_dockerfile_base_image_is_python_3_11_slim(dockerfile):
    stage_names = set()
    for stage in dockerfile["stages"]:
        words = [w for w in stage[0].args.split() if not w.startswith("--platform")]
        image = words[0]
        if image in stage_names:  # FROM an earlier stage
            continue
        assert re.fullmatch(r"python:3\.11-slim(@sha256:[0-9a-f]{64})?", image), f"base image {image}"
        if len(words) == 3 and words[1].upper() == "AS":
            stage_names.add(words[2])


def test_dockerfile_runs_as_a_non_root_user(dockerfile):
    keywords = [i.keyword for i in dockerfile["final"]]
    assert "USER" in keywords, "the final stage must switch to an unprivileged USER"
    last = len(keywords) - 1 - keywords[::-1].index("USER")
    user = dockerfile["final"][last].args.split(":")[0]
    assert user not in ("root", "0"), f"USER {dockerfile['final'][last].args}"


def test_dockerfile_healthcheck_probes_healthz_with_python(dockerfile):
    checks = [i.args for i in dockerfile["final"] if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1 and checks[0].upper() != "NONE", "one HEALTHCHECK in the final stage"
    cmd = checks[0][checks[0].index("CMD") + 3:].strip()
    text = " ".join(exec_form(cmd)) if cmd.startswith("[") else cmd
    assert text.split()[0] in ("python", "python3", "/opt/venv/bin/python"), text
    assert re.search(rf"//(127\.0\.0\.1|localhost):{dockerfile['port']}/healthz\b", text), text
    assert "curl" not in text and "wget" not in text


def test_dockerfile_exposes_the_service_port(dockerfile):
    exposed = {p.split("/")[0] for i in dockerfile["final"] if i.keyword == "EXPOSE" for p in i.args.split()}
    assert exposed == {str(dockerfile["port"])}


def test_dockerfile_default_command_is_the_web_on_all_interfaces(dockerfile):
    cmds = [i.args for i in dockerfile["final"] if i.keyword == "CMD"]
    assert cmds and exec_form(cmds[-1]) == ["crm", "web", dockerfile["name"]], "exec form, so signals reach gunicorn"
    # no ENTRYPOINT, so `crm worker NAME` and `crm migrate NAME` replace the command as they are
    assert not [i for i in dockerfile["final"] if i.keyword == "ENTRYPOINT"]
    env = {}
    for i in dockerfile["final"]:
        if i.keyword == "ENV":
            env.update(env_pairs(i.args))
    assert env.get("BIND_HOST") == "0.0.0.0"


def test_dockerfile_bakes_in_no_secret(dockerfile):
    for stage in dockerfile["stages"]:
        for i in stage:
            if i.keyword == "ENV":
                pairs = env_pairs(i.args)
            elif i.keyword == "ARG":
                pairs = dict((w.split("=", 1) + [""])[:2] for w in shlex.split(i.args))
            else:
                continue
            for key, value in pairs.items():
                assert not SECRET_NAME.search(key), f"{i.keyword} {key}: secrets come from the environment at run time"
                assert key not in ("DATABASE_URL", "BUS_URL"), f"{i.keyword} {key}: set by the deployment"
                assert not re.search(r"://[^/\s]*:[^@/\s]+@", value), f"{i.keyword} {key} holds a password"
            assert DEV_JWT_SECRET not in i.args


def test_dockerfile_pip_installs_without_cache(dockerfile):
    for stage in dockerfile["stages"]:
        for i in stage:
            if i.keyword == "RUN" and "pip install" in i.args:
                assert "--no-cache-dir" in i.args, i.args


def test_dockerfile_copies_only_shared_and_its_own_service(dockerfile):
    name = dockerfile["name"]
    sources = []
    for stage in dockerfile["stages"]:
        for i in stage:
            if i.keyword in ("COPY", "ADD") and "--from=" not in i.args:
                words = [w for w in shlex.split(i.args) if not w.startswith("--")]
                sources += [w.rstrip("/") for w in words[:-1]]
    assert "shared" in sources and f"services/{name}" in sources, sources
    for src in sources:
        assert src in ("shared", f"services/{name}") or src.startswith((f"services/{name}/", "shared/")), (
            f"COPY {src}: an image holds shared/ and its own service, nothing else (no `COPY .`)")


def test_dockerfile_final_stage_has_no_build_tools(dockerfile):
    for i in dockerfile["final"]:
        if i.keyword == "RUN":
            assert not re.search(r"\b(build-essential|gcc|g\+\+|clang|make|python3?-dev|libpq-dev|curl|wget)\b", i.args), (
                f"the final stage installs a build tool or a downloader: RUN {i.args}")


def test_dockerfile_keeps_the_migrations_where_the_service_finds_them(dockerfile):
    """ServiceDefinition.migrations_dir is found from the package's __file__. When migrations/ sits
    beside the package (not inside it), a wheel install loses it: the service must be installed
    editable, and the final stage must hold the source at the path the build stage installed."""
    name = dockerfile["name"]
    definition = load_service(name)
    package = definition.wsgi.split(":")[0].split(".")[0]
    package_dir = Path(importlib.util.find_spec(package).submodule_search_locations[0])
    if definition.migrations_dir.resolve().is_relative_to(package_dir.resolve()):
        return  # migrations ship inside the package: any install keeps them
    installs = [i.args for stage in dockerfile["stages"] for i in stage
                if i.keyword == "RUN" and "pip install" in i.args and f"services/{name}" in i.args]
    assert installs, f"no `pip install` of services/{name}"
    m = re.search(rf"(?:-e|--editable)\s+(\S*services/{re.escape(name)})\b", installs[-1])
    assert m, f"install services/{name} editable, or move migrations/ into the package: {installs[-1]}"
    installed_at = m.group(1).rstrip("/")
    destinations = [shlex.split(i.args)[-1].rstrip("/") for i in dockerfile["final"] if i.keyword == "COPY"]
    assert installed_at in destinations, f"the final stage must put the service source at {installed_at}"


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_context():
    entries = set()
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entries.add(line.removeprefix("**/").rstrip("/"))
    for needed in (".git", ".venv", "var", "__pycache__", ".env"):
        assert needed in entries, f".dockerignore should exclude {needed}"
    assert "shared" not in entries and "services" not in entries, "the images need shared/ and services/"
