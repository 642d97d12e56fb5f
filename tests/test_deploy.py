"""The production deployment, checked without a cluster: deploy/k8s (kustomize), deploy/rabbitmq,
deploy/postgres and deploy/monitoring.

Each overlay (`deploy/k8s/<service>/overlays/{staging,production}`) is rendered with kustomize
(`kubectl kustomize`, or a standalone `kustomize` binary), every rendered object is validated
against the Kubernetes OpenAPI schemas with kubernetes-validate (strict: unknown fields fail), and
the properties the platform relies on are asserted: probes, draining, non-root and read-only
containers, Secret references only, resources, autoscalers, disruption budgets, the migrations
Job, one image per service. RabbitMQ's definitions must equal what deploy/rabbitmq/generate.py
makes from the event catalogue; the PostgreSQL script is applied to the local server under unique
names, and one service's role must not reach another's database."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from crm_shared.bus.amqp import AmqpBus
from crm_shared.bus.base import Topology
from crm_shared.events.catalogue import CONSUMERS, PRODUCERS, SERVICES, bindings_for
from crm_shared.service import load as load_service

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
ENVIRONMENTS = ("staging", "production")
K8S_VERSION = "1.33.0"  # validated against this Kubernetes version's schemas
SECRET_KEYS = {"DATABASE_URL", "BUS_URL", "CRM_JWT_SECRET"}
OPTIONAL_SECRET_KEYS = {"CRM_JWT_PREVIOUS_SECRET"}  # only during an HS256 rotation
WEB_PORT = 8080
WORKER_METRICS_PORT = 9100
IMAGE = re.compile(r"^registry\.example\.com/crm/(?P<service>[a-z-]+):(?P<tag>[0-9][A-Za-z0-9.+-]*)$")
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIAL", re.I)
NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
OVERLAYS = [(s, e) for s in SERVICES for e in ENVIRONMENTS]
# the services whose scheduled jobs run in a Deployment of their own, `<service>-jobs` (`crm worker
# --parts schedule`), beside a worker that consumes and relays; as `crm run` and docker-compose.yml
JOBS_APART = ("notify",)


# ---- rendering -------------------------------------------------------------------------------------

def _kustomize_argv(path: Path) -> list[str]:
    if shutil.which("kustomize"):
        return ["kustomize", "build", str(path)]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize", str(path)]
    pytest.fail("neither kustomize nor kubectl is installed (Debian: apt-get install kubectl)")


def render(path: Path) -> list[dict]:
    proc = subprocess.run(_kustomize_argv(path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"kustomize failed for {path}:\n{proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], list[dict]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        docs = list(pool.map(lambda se: render(K8S / se[0] / "overlays" / se[1]), OVERLAYS))
    return dict(zip(OVERLAYS, docs))


def one(docs, kind, component=None):
    found = [d for d in docs if d["kind"] == kind
             and (component is None or d["metadata"].get("labels", {}).get(COMPONENT_LABEL) == component)]
    assert len(found) == 1, f"expected one {kind} {component or ''}, found {len(found)}"
    return found[0]


def container(obj) -> dict:
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def workloads(docs):
    return [d for d in docs if d["kind"] in ("Deployment", "Job")]


# ---- Kubernetes objects ----------------------------------------------------------------------------

def test_every_overlay_exists_and_renders_alone(rendered):
    for (service, env), docs in rendered.items():
        kinds = sorted(d["kind"] for d in docs)
        assert kinds == sorted(["ServiceAccount", "ConfigMap", "Service", "Deployment", "Deployment", "Job",
                                "HorizontalPodAutoscaler", "HorizontalPodAutoscaler",
                                "PodDisruptionBudget", "PodDisruptionBudget"]
                               + ["Deployment"] * (service in JOBS_APART)), (service, env, kinds)
        # nothing of another service, every name prefixed with this one, one namespace
        for d in docs:
            md = d["metadata"]
            assert md["name"].startswith(f"{service}-"), md["name"]
            assert md["labels"][NAME_LABEL] == service
            assert md["labels"]["app.kubernetes.io/part-of"] == "crm"
            assert md["namespace"] == ("crm" if env == "production" else "crm-staging")
        assert "SERVICE" not in yaml.safe_dump_all(docs).replace("SERVICE_", ""), "a placeholder was not replaced"


@pytest.mark.parametrize("service,env", OVERLAYS)
def test_every_object_is_valid_kubernetes(rendered, service, env):
    for d in rendered[(service, env)]:
        try:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{service}/{env} {d['kind']} {d['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_validation_rejects_a_broken_object(rendered):
    web = json.loads(json.dumps(one(rendered[("leads", "production")], "Deployment", "web")))
    container(web)["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, K8S_VERSION, strict=True)


def test_web_probes_and_draining(rendered):
    for (service, env), docs in rendered.items():
        web = one(docs, "Deployment", "web")
        c = container(web)
        assert c["command"] == ["crm"] and c["args"] == ["web", service, "--port", str(WEB_PORT)]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"http": WEB_PORT}
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")):
            get = c[probe]["httpGet"]
            assert (get["path"], get["port"]) == (path, "http"), (service, env, probe)
        assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] >= 30
        # preStop sleep, then gunicorn's 20 s graceful timeout, all inside the grace period
        pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep" and int(pre_stop[1]) >= 5
        grace = web["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= int(pre_stop[1]) + 20 + 5, (service, env, grace)
        assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        svc = one(docs, "Service")
        assert svc["spec"]["ports"][0]["targetPort"] == "http"
        assert svc["spec"]["selector"] == web["spec"]["template"]["metadata"]["labels"] | svc["spec"]["selector"]
        assert svc["spec"]["selector"][COMPONENT_LABEL] == "web" and svc["spec"]["selector"][NAME_LABEL] == service


def test_worker_liveness_and_graceful_stop(rendered):
    for (service, env), docs in rendered.items():
        worker = one(docs, "Deployment", "worker")
        c = container(worker)
        parts = ["--parts", "consume,relay"] if service in JOBS_APART else []
        assert c["command"] == ["crm"] and c["args"] == ["worker", service] + parts
        processes = [worker]
        if service in JOBS_APART:
            jobs = one(docs, "Deployment", "jobs")
            assert container(jobs)["command"] == ["crm"]
            assert container(jobs)["args"] == ["worker", service, "--parts", "schedule"]
            # one is enough (a job runs in one process at a time); no autoscaler moves it
            assert jobs["spec"]["replicas"] == 1
            assert not [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"
                        and d["spec"]["scaleTargetRef"]["name"] == jobs["metadata"]["name"]]
            # its own pods: the worker's selectors (autoscaler's queue, budget) do not take them in
            assert jobs["spec"]["selector"]["matchLabels"] == {NAME_LABEL: service, COMPONENT_LABEL: "jobs"}
            processes.append(jobs)
        else:
            assert not [d for d in docs if d["metadata"]["labels"].get(COMPONENT_LABEL) == "jobs"]
        for w in processes:
            c = container(w)
            assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": WORKER_METRICS_PORT}
            get = c["livenessProbe"]["httpGet"]
            assert get["path"] == "/metrics" and get["port"] in ("metrics", WORKER_METRICS_PORT)
            assert "readinessProbe" not in c  # nothing routes traffic to a worker
            assert w["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 40


def test_the_jobs_apart_are_those_crm_run_and_compose_start():
    from crm_shared.platform import JOBS_APART as platform_jobs_apart
    assert JOBS_APART == platform_jobs_apart


def test_migrations_job_runs_before_the_rollout(rendered):
    for (service, env), docs in rendered.items():
        job = one(docs, "Job", "migrate")
        c = container(job)
        assert c["command"] == ["crm"] and c["args"] == ["migrate", service]
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
        assert [e["name"] for e in c["env"]] == ["DATABASE_URL"]  # needs nothing but its database
        assert "ports" not in c


def test_configuration_is_secret_free(rendered):
    for (service, env), docs in rendered.items():
        assert not [d for d in docs if d["kind"] == "Secret"], "a Secret object is in the manifests"
        config = one(docs, "ConfigMap")
        for key, value in config["data"].items():
            assert not SECRET_NAME.search(key), f"{service}/{env}: secret-like key {key} in the ConfigMap"
            assert key not in SECRET_KEYS | OPTIONAL_SECRET_KEYS
            assert "://" not in value or "@" not in value, f"{key} looks like a URL with credentials"
        assert config["data"]["CRM_ENV"] == env
        assert config["data"]["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/crm-metrics"
        assert config["data"]["WORKER_METRICS_PORT"] == str(WORKER_METRICS_PORT)
        assert config["data"]["BIND_HOST"] == "0.0.0.0"
        # the inbox (dedupe memory) must outlive the outbox window events can be re-published from
        assert float(config["data"]["INBOX_RETENTION_DAYS"]) > float(config["data"]["OUTBOX_RETENTION_DAYS"]) > 0
        for w in workloads(docs):
            c = container(w)
            assert [f["configMapRef"]["name"] for f in c["envFrom"]] == [config["metadata"]["name"]]
            for e in c.get("env", []):
                assert "value" not in e, f"{service}: plain value for {e['name']}"
                ref = e["valueFrom"]["secretKeyRef"]
                assert ref["name"] == f"{service}-secrets" and ref["key"] == e["name"]
                assert ref.get("optional", False) == (e["name"] in OPTIONAL_SECRET_KEYS), e["name"]
            names = {e["name"] for e in c.get("env", [])}
            assert names == (SECRET_KEYS | OPTIONAL_SECRET_KEYS if w["kind"] == "Deployment" else {"DATABASE_URL"})


def test_containers_run_unprivileged_and_read_only(rendered):
    for (service, env), docs in rendered.items():
        for w in workloads(docs):
            pod = w["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] == 10001  # the image's crm user
            assert pod["automountServiceAccountToken"] is False
            c = container(w)
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]]
            if w["kind"] == "Deployment":  # gunicorn / worker metrics files
                assert "emptyDir" in volumes[mounts["/tmp/crm-metrics"]]


def test_resources_and_images(rendered):
    def quantity(q: str) -> float:
        units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
        for suffix, factor in units.items():
            if str(q).endswith(suffix):
                return float(str(q)[: -len(suffix)]) * factor
        return float(q)

    for (service, env), docs in rendered.items():
        tags = set()
        for w in workloads(docs):
            c = container(w)
            for res in ("cpu", "memory"):
                request, limit = c["resources"]["requests"][res], c["resources"]["limits"][res]
                assert quantity(request) <= quantity(limit), (service, env, w["metadata"]["name"], res)
            m = IMAGE.match(c["image"])
            assert m, f"{c['image']}: not the service's image with a pinned tag"
            assert m["service"] == service
            tags.add(m["tag"])
        assert len(tags) == 1, f"{service}/{env}: web, worker and migrations run different releases {tags}"


def test_autoscalers(rendered):
    for (service, env), docs in rendered.items():
        for component in ("web", "worker"):
            hpa = one(docs, "HorizontalPodAutoscaler", component)
            deployment = one(docs, "Deployment", component)
            assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                     "name": deployment["metadata"]["name"]}
            assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
            # the manifests' replicas are the floor the autoscaler keeps
            assert deployment["spec"]["replicas"] == hpa["spec"]["minReplicas"]
            [metric] = hpa["spec"]["metrics"]
            if component == "web":
                assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
                assert 0 < metric["resource"]["target"]["averageUtilization"] <= 90
                # utilisation is relative to requests: the web container must request CPU
                assert container(deployment)["resources"]["requests"]["cpu"]
            else:
                assert metric["type"] == "External"
                assert metric["external"]["metric"]["name"] == "crm_queue_messages_ready"
                assert metric["external"]["metric"]["selector"]["matchLabels"] == {"queue": Topology().queue(service)}
                assert metric["external"]["target"]["type"] == "AverageValue"
        if env == "production":
            assert one(docs, "HorizontalPodAutoscaler", "web")["spec"]["minReplicas"] >= 2


def test_disruption_budgets_select_the_pods(rendered):
    for (service, env), docs in rendered.items():
        for component in ("web", "worker"):
            pdb = one(docs, "PodDisruptionBudget", component)
            deployment = one(docs, "Deployment", component)
            pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
            selector = pdb["spec"]["selector"]["matchLabels"]
            assert selector.items() <= pod_labels.items()
            assert selector == deployment["spec"]["selector"]["matchLabels"]
            assert selector[NAME_LABEL] == service  # never another service's pods
            # a budget that allows no eviction at the minimum size blocks node drains
            replicas = one(docs, "HorizontalPodAutoscaler", component)["spec"]["minReplicas"]
            if "minAvailable" in pdb["spec"]:
                assert pdb["spec"]["minAvailable"] < replicas, (service, env, component)
            else:
                assert pdb["spec"]["maxUnavailable"] >= 1
        # selectors of one component never match the other's pods
        web = one(docs, "Deployment", "web")["spec"]["template"]["metadata"]["labels"]
        worker_sel = one(docs, "PodDisruptionBudget", "worker")["spec"]["selector"]["matchLabels"]
        assert not worker_sel.items() <= web.items()


def test_every_service_has_a_deployment():
    """Every service of the catalogue has its base and overlays (and no other folder poses as one)."""
    assert sorted(p.name for p in K8S.iterdir() if (p / "base").is_dir()) == sorted(SERVICES)
    for service in SERVICES:
        assert load_service(service).name == service


# ---- RabbitMQ ----------------------------------------------------------------------------------------

RABBIT = ROOT / "deploy" / "rabbitmq"


def _generator():
    sys.path.insert(0, str(RABBIT))
    try:
        import importlib
        return importlib.import_module("generate")
    finally:
        sys.path.remove(str(RABBIT))


@pytest.fixture(scope="module")
def definitions():
    return json.loads((RABBIT / "definitions.json").read_text())


def test_rabbitmq_definitions_are_generated_from_the_catalogue(definitions):
    gen = _generator()
    assert (RABBIT / "definitions.json").read_text() == gen.render(), \
        "deploy/rabbitmq/definitions.json is stale: run .venv/bin/python deploy/rabbitmq/generate.py"


def test_rabbitmq_topology_matches_what_the_code_declares(definitions):
    t = Topology()
    bus = AmqpBus("amqp://localhost//", t, delivery_limit=20)
    queues = {q["name"]: q for q in definitions["queues"]}
    [vhost] = [v["name"] for v in definitions["vhosts"]]
    assert [(e["name"], e["type"], e["durable"]) for e in definitions["exchanges"]] == [(t.exchange, "topic", True)]
    for service in SERVICES:
        main = queues[t.queue(service)]
        assert main["arguments"] == bus._queue(service).queue_arguments
        assert main["arguments"]["x-queue-type"] == "quorum"
        assert main["arguments"]["x-dead-letter-routing-key"] == t.dlq(service)
        assert queues[t.dlq(service)]["arguments"] == {"x-queue-type": "quorum"}
        for delay in (1000, 5000, 30000):
            retry = queues[t.retry_queue(service, delay)]["arguments"]
            assert retry == {"x-queue-type": "classic", "x-message-ttl": delay, "x-dead-letter-exchange": "",
                             "x-dead-letter-routing-key": t.queue(service)}
        bound = sorted(b["routing_key"] for b in definitions["bindings"]
                       if b["destination"] == t.queue(service) and b["source"] == t.exchange)
        assert bound == bindings_for(service)
        [policy] = [p for p in definitions["policies"] if re.fullmatch(p["pattern"], t.queue(service))]
        assert policy["definition"]["dead-letter-routing-key"] == t.dlq(service)
        assert policy["definition"]["delivery-limit"] == main["arguments"]["x-delivery-limit"]
    assert all(q["vhost"] == vhost and q["durable"] for q in definitions["queues"])
    assert len(definitions["bindings"]) == sum(len(c) for c in CONSUMERS.values())


def test_rabbitmq_users_hold_no_password_and_only_their_rights(definitions):
    t = Topology()
    users = {u["name"]: u for u in definitions["users"]}
    assert sorted(users) == sorted(f"crm-{s}" for s in SERVICES)
    for user in users.values():
        assert user["password_hash"] == "" and user["tags"] == []  # no secret, no management access
    perms = {p["user"]: p for p in definitions["permissions"]}
    topics = {p["user"]: p for p in definitions["topic_permissions"]}
    for service in SERVICES:
        p = perms[f"crm-{service}"]

        def can(kind, resource, p=p):  # the patterns are anchored (^...$), as RabbitMQ needs
            assert p[kind].startswith("^") and p[kind].endswith("$")
            return re.search(p[kind], resource) is not None

        # consume: its own queue and dead-letter queue only
        assert can("read", t.queue(service)) and can("read", t.dlq(service))
        for other in SERVICES:
            if other != service:
                assert not can("read", t.queue(other)) and not can("read", t.dlq(other))
        assert not can("read", t.retry_queue(service, 1000))
        # publish: the events exchange and the default exchange (retries, dead letters, replays)
        assert can("write", t.exchange) and can("write", "amq.default")
        for exchange in ("amq.topic", "amq.direct", "amq.fanout", "amq.headers", "crm.other"):
            assert not can("write", exchange) and not can("configure", exchange)
        assert not can("configure", "amq.default")
        # topic authorisation: only the event types it produces
        produced = {e for e, s in PRODUCERS.items() if s == service}
        for event_type in CONSUMERS:
            assert (re.search(topics[f"crm-{service}"]["write"], event_type) is not None) == (event_type in produced)


# ---- PostgreSQL --------------------------------------------------------------------------------------

PG = ("127.0.0.1", 5432)
DB_NAMES = ("leads", "sales", "service_desk", "notify")


def _need_postgres():
    try:
        socket.create_connection(PG, timeout=1).close()
    except OSError:
        if os.environ.get("CRM_REQUIRE_SERVERS") == "1":
            pytest.fail("postgres is not reachable on 127.0.0.1:5432 (CRM_REQUIRE_SERVERS=1)")
        pytest.skip("postgres is not reachable on 127.0.0.1:5432")
    if not shutil.which("psql"):
        pytest.fail("psql is not installed (Debian: postgresql-client)")


def _psql(sql: str | None = None, *, user="postgres", db="postgres", file=None, variables=()):
    argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", f"host={PG[0]} port={PG[1]} user={user} dbname={db}"]
    for k, v in variables:
        argv += ["-v", f"{k}={v}"]
    argv += ["-f", str(file)] if file else ["-Atc", sql]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.mark.postgres
def test_postgres_roles_reach_only_their_own_database(tmp_path):
    _need_postgres()
    prefix = "t" + uuid.uuid4().hex[:8] + "_"
    names = {n: prefix + n for n in DB_NAMES}
    script = (ROOT / "deploy" / "postgres" / "init.sql").read_text()
    # the shared test server's own `postgres` database is left as it is
    script = re.sub(r"(?m)^REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;$", "", script)
    script = re.sub(r"\b(" + "|".join(DB_NAMES) + r")\b", lambda m: names[m.group(1)], script)
    path = tmp_path / "init.sql"
    path.write_text(script)
    try:
        variables = [("leads_password", "not-a-real-secret")]
        for attempt in range(2):  # idempotent: a second run changes nothing and does not fail
            proc = _psql(file=path, variables=variables)
            assert proc.returncode == 0, proc.stderr
        for own in DB_NAMES:
            ok = _psql("select current_user, current_database()", user=names[own], db=names[own])
            assert ok.returncode == 0, ok.stderr
            assert ok.stdout.strip() == f"{names[own]}|{names[own]}"
            created = _psql("create table t (id int); drop table t", user=names[own], db=names[own])
            assert created.returncode == 0, created.stderr  # migrations can create tables
            for other in DB_NAMES:
                if other != own:
                    refused = _psql("select 1", user=names[own], db=names[other])
                    assert refused.returncode != 0 and "permission denied" in refused.stderr, (own, other)
        roles = _psql(f"select rolname, rolsuper, rolcreatedb, rolcreaterole, rolpassword is not null "
                      f"from pg_authid where rolname like '{prefix}%' order by 1")
        rows = [r.split("|") for r in roles.stdout.split()]
        assert {r[0] for r in rows} == set(names.values())
        assert all(r[1:4] == ["f", "f", "f"] for r in rows)
        assert {r[0]: r[4] for r in rows}[names["leads"]] == "t"  # the password variable was used
    finally:
        for n in names.values():
            _psql(f'drop database if exists "{n}" with (force)')
        for n in names.values():
            _psql(f'drop role if exists "{n}"')


# ---- monitoring -------------------------------------------------------------------------------------

MONITORING = ROOT / "deploy" / "monitoring"


def _metric_names() -> set[str]:
    from crm_shared import metrics
    from prometheus_client import Counter, Histogram
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, (Counter, Histogram)):
            names.add(value._name + ("_total" if isinstance(value, Counter) else ""))
    return names | {"crm_outbox_backlog"}


def test_alerts_and_dashboard_use_real_metrics():
    known = _metric_names()
    histogram_series = {n + s for n in known for s in ("_bucket", "_sum", "_count")}
    rule = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    for r in (r for g in rule["spec"]["groups"] for r in g["rules"]):
        assert r["alert"] and r["labels"]["severity"] in ("warning", "critical")
        assert "runbook_url" in r["annotations"] and "OPERATIONS.md" in r["annotations"]["runbook_url"]
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = set()
    for expr in exprs:
        for name in re.findall(r"\b(crm_[a-z_]+|rabbitmq_[a-z_]+)\b", expr):
            if name.startswith("crm_"):
                assert name in known | histogram_series, f"unknown metric {name} in {expr}"
                used.add(re.sub(r"_(bucket|sum|count)$", "", name))
    assert known <= used, f"metrics with no alert or panel: {known - used}"
    assert any("rabbitmq_queue_messages_ready" in e for e in exprs)


def test_the_unavailable_alert_covers_every_deployment(rendered):
    rule = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    [expr] = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"] if r["alert"] == "CrmDeploymentUnavailable"]
    pattern = re.search(r'deployment=~"([^"]+)"', expr)[1]
    for docs in rendered.values():
        for d in docs:
            if d["kind"] == "Deployment":
                assert re.fullmatch(pattern, d["metadata"]["name"]), d["metadata"]["name"]


# ---- RabbitMQ permissions, live -------------------------------------------------------------------

def _rabbitmqctl(*args):
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)


def _password_hash(password: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    import base64
    import hashlib
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


@pytest.mark.rabbitmq
def test_rabbitmq_definitions_load_and_permissions_let_each_service_work_and_nothing_more():
    """On the local broker: the generated definitions, in a vhost and with users of their own (and a
    test password), are imported with `rabbitmqctl import_definitions` (the broker accepts the
    file: queues, arguments, policies, permissions, topic permissions). Then each service's user
    runs a worker's declarations, publishes its own events (and not another's), consumes,
    dead-letters, retries and replays on its own queues, and cannot read another's."""
    import threading

    from crm_shared.bus.base import BusError, Outcome, OutgoingMessage

    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        if os.environ.get("CRM_REQUIRE_SERVERS") == "1":
            pytest.fail("rabbitmq is not reachable on 127.0.0.1:5672 (CRM_REQUIRE_SERVERS=1)")
        pytest.skip("rabbitmq is not reachable")
    if not shutil.which("rabbitmqctl"):
        pytest.skip("rabbitmqctl is not installed")
    vhost = "tdeploy" + uuid.uuid4().hex[:8]
    defs = _generator().build(vhost=vhost)
    for u in defs["users"]:
        u["name"] = f"{u['name']}-{vhost}"
        u["password_hash"] = _password_hash("not-a-secret")
    for p in defs["permissions"] + defs["topic_permissions"]:
        p["user"] = f"{p['user']}-{vhost}"
    delays = (1000, 5000, 30000)
    t = Topology()

    def bus(service):
        return AmqpBus(f"amqp://crm-{service}-{vhost}:not-a-secret@127.0.0.1:5672/{vhost}", t)

    try:
        # the broker's node (another user) reads the file: a readable one in /tmp, no secret in it
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir="/tmp") as f:
            json.dump(defs, f)
            f.flush()
            os.chmod(f.name, 0o644)
            proc = _rabbitmqctl("import_definitions", f.name)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        for service in SERVICES:  # what every worker does when it starts
            b = bus(service)
            b.declare_platform(delays)
            assert b.queue_depth(service) == 0
        leads = bus("leads")
        assert leads.publish([OutgoingMessage("m1", "lead.created", b"{}")]) == set()
        leads.close()
        with pytest.raises(BusError, match="ACCESS_REFUSED"):
            bus("leads").publish([OutgoingMessage("m2", "customer.created", b"{}")])  # sales' event

        notify = bus("notify")

        def handle_once(decision):
            stop, seen = threading.Event(), []

            def callback(delivery):
                seen.append(delivery.message_id)
                stop.set()
                return decision
            th = threading.Thread(target=notify.consume, args=("notify", callback, stop))
            th.start()
            th.join(20)
            stop.set()
            return seen

        assert handle_once((Outcome.DEAD, "boom", 0)) == ["m1"]
        assert [d.message_id for d in notify.dead_letters("notify")] == ["m1"]
        assert notify.replay("notify") == 1
        assert handle_once((Outcome.RETRY, "again", 1000)) == ["m1"]  # to crm.notify.retry.1000
        with pytest.raises(Exception, match="ACCESS_REFUSED"):
            bus("leads").dead_letters("notify")
        # `crm outbox republish leads --to notify` runs with leads' user: straight into notify's queue
        assert bus("leads").send_to_queue("notify", [OutgoingMessage("m3", "lead.created", b"{}")]) == 1
    finally:
        for u in defs["users"]:
            _rabbitmqctl("delete_user", u["name"])
        _rabbitmqctl("delete_vhost", vhost)
