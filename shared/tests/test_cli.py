import json
import uuid

import jwt
from click.testing import CliRunner

from crm_shared.bus import Outcome, OutgoingMessage, connect
from crm_shared.cli import main
from crm_shared.config import DEV_JWT_SECRET


def test_token_prints_a_development_token():
    r = CliRunner().invoke(main, ["token", "--user", "u1", "--name", "Li Lei", "--role", "sales_rep",
                                  "--role", "sales_manager", "--team", "east"], env={"CRM_JWT_SECRET": DEV_JWT_SECRET})
    assert r.exit_code == 0, r.output
    claims = jwt.decode(r.output.strip(), DEV_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "u1" and claims["name"] == "Li Lei" and claims["team"] == "east"
    assert claims["roles"] == ["sales_rep", "sales_manager"] and claims["exp"] > claims["iat"]


def test_token_refuses_unknown_roles_and_production():
    r = CliRunner().invoke(main, ["token", "--user", "u1", "--name", "x", "--role", "pope"])
    assert r.exit_code != 0 and "pope" in r.output
    r = CliRunner().invoke(main, ["token", "--user", "u1", "--name", "x", "--role", "admin"],
                           env={"CRM_ENV": "production"})
    assert r.exit_code != 0 and "production" in r.output


def test_dead_letters_list_and_replay(tmp_path):
    env = {"BUS_URL": f"sqlite:///{tmp_path}/bus.db", "BUS_NAMESPACE": "cli"}
    bus = connect(env["BUS_URL"], "cli")
    bus.declare_consumer("sales", ["lead.converted"])
    ids = [str(uuid.uuid4()) for _ in range(2)]
    bus.publish([OutgoingMessage(i, "lead.converted", b'{"x": 1}') for i in ids])
    for i in ids:
        seq = bus._claim(bus.topology.queue("sales"), 1)[0][0]
        bus._settle(seq, (Outcome.DEAD, f"KeyError: boom {i}", 0))
    runner = CliRunner()
    r = runner.invoke(main, ["dead-letters", "list", "sales", "--json"], env=env)
    assert r.exit_code == 0
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert [x["message_id"] for x in rows] == ids and rows[0]["type"] == "lead.converted"
    assert rows[0]["error"].startswith("KeyError") and rows[0]["attempts"] == 1
    r = runner.invoke(main, ["dead-letters", "replay", "sales", "--id", ids[1]], env=env)
    assert r.exit_code == 0 and "replayed 1" in r.output
    assert [d.message_id for d in bus.dead_letters("sales")] == [ids[0]] and bus.queue_depth("sales") == 1
    r = runner.invoke(main, ["dead-letters", "replay", "sales"], env=env)
    assert "replayed 1" in r.output and bus.dead_letters("sales") == [] and bus.queue_depth("sales") == 2


# ---- which parts a worker process runs (`crm worker NAME --parts`, WORKER_PARTS) --------------------

def test_parse_parts_default_subset_and_errors():
    import pytest
    from crm_shared.worker import parse_parts
    everything = {"consume": True, "relay": True, "schedule": True}
    assert parse_parts(None) == everything and parse_parts("") == everything and parse_parts("  ") == everything
    assert parse_parts("schedule") == {"consume": False, "relay": False, "schedule": True}
    assert parse_parts(" Relay , consume") == {"consume": True, "relay": True, "schedule": False}
    for bad, says in (("jobs", "'jobs'"), ("consume,,relay", "empty item"), ("consume,consume", "twice")):
        with pytest.raises(ValueError) as e:
            parse_parts(bad)
        assert says in str(e.value) and "consume, relay, schedule" in str(e.value), str(e.value)


def _worker_run(monkeypatch, tmp_path, args, env):
    """`crm worker notify ARGS` with the Worker replaced by one that records its parts and stops at once."""
    import crm_shared.worker as worker_mod
    seen = {}

    class Recording(worker_mod.Worker):
        def start(self):
            seen.update(self.parts)
            self.stop.set()
            return self

    monkeypatch.setattr(worker_mod, "Worker", Recording)
    base = {"DATABASE_URL": f"sqlite:///{tmp_path}/notify.db", "BUS_URL": f"sqlite:///{tmp_path}/bus.db",
            "BUS_NAMESPACE": "cli", "WORKER_METRICS_PORT": ""}
    r = CliRunner().invoke(main, ["worker", "notify", *args], env={**base, **env})
    return r, seen


def test_worker_parts_from_the_option_or_the_environment(monkeypatch, tmp_path):
    r, seen = _worker_run(monkeypatch, tmp_path, [], {"WORKER_PARTS": None})
    assert r.exit_code == 0, r.output
    assert seen == {"consume": True, "relay": True, "schedule": True}
    r, seen = _worker_run(monkeypatch, tmp_path, [], {"WORKER_PARTS": "schedule"})
    assert r.exit_code == 0, r.output
    assert seen == {"consume": False, "relay": False, "schedule": True}
    # the option wins over the environment
    r, seen = _worker_run(monkeypatch, tmp_path, ["--parts", "consume,relay"], {"WORKER_PARTS": "schedule"})
    assert r.exit_code == 0, r.output
    assert seen == {"consume": True, "relay": True, "schedule": False}


def test_worker_refuses_unknown_parts_before_starting(monkeypatch, tmp_path):
    for args, env in ((["--parts", "consumer"], {}), ([], {"WORKER_PARTS": "consume,jobs"})):
        r, seen = _worker_run(monkeypatch, tmp_path, args, env)
        assert r.exit_code == 2, r.output  # a usage error, nothing started
        assert "expected a comma-separated list of consume, relay, schedule" in r.output
        assert seen == {}
