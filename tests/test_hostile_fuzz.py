"""Every service's OpenAPI document fuzzed with schemathesis, in process against its real Flask app
on SQLite, holding a few objects of each kind (the worlds of test_hostile_objects), with an admin
token so requests get past authentication: no 5xx, and every response is
documented (status, content type, headers, body schema). Valid and invalid data are both generated;
invalid data must be refused with a 4xx.

FUZZ_REQUESTS is the budget per service (default 2,000: the examples per operation and generation
mode are this divided by twice the number of operations, at least 10; the same examples every run);
FUZZ_EXAMPLES sets the examples per operation directly. `make fuzz` runs the nightly setting
(FUZZ_REQUESTS=20000 with FUZZ_RANDOM=1: new random examples each night).
FUZZ_ONLY="POST /v1/leads"
fuzzes only the operations whose "METHOD path" contains it. With CRM_RESULTS_DIR set, the requests
sent and failures found per service go to $CRM_RESULTS_DIR/hostile.json under "fuzz"."""
from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as oa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _hostile as h  # noqa: E402

pytestmark = pytest.mark.reliability  # figures for docs/RELIABILITY.md (make reliability)
import test_hostile_objects as objects  # noqa: E402

REQUESTS = int(os.environ.get("FUZZ_REQUESTS", "2000"))
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))  # 0: from REQUESTS
RANDOM = os.environ.get("FUZZ_RANDOM") == "1"
ONLY = os.environ.get("FUZZ_ONLY", "")  # e.g. "POST /v1/leads": fuzz only the operations that contain it
CHECKS = [schemathesis.checks.not_a_server_error, oa.status_code_conformance, oa.content_type_conformance,
          oa.response_headers_conformance, oa.response_schema_conformance]
NEGATIVE_CHECKS = CHECKS + [oa.negative_data_rejection]
# Server-sent events never end: the stream is fuzzed with a bounded `timeout` by notify's own tests
SKIP = {("notify", "GET", "/v1/inbox/stream")}


def use_token(schema, token: str) -> None:
    """Every generated request carries the token, except those that test a missing one (401)."""
    @schema.auth()
    class Bearer:
        def get(self, case, ctx):
            return token

        def set(self, case, data, ctx):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def fuzz_operation(app, op, mode, counter, examples: int) -> None:
    checks = NEGATIVE_CHECKS if mode is GenerationMode.NEGATIVE else CHECKS

    @settings(max_examples=examples, deadline=None, database=None, derandomize=not RANDOM, print_blob=False,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case):
        resp = case.call(app=app)
        counter[0] += 1
        case.validate_response(resp, checks=checks)

    run()


@pytest.mark.slow
@pytest.mark.parametrize("name", h.NAMES)
def test_fuzz_openapi(name, tmp_path):
    app = h.make_app(name, tmp_path, extra={"NOTIFY_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32"})
    try:
        objects.WORLDS[name](h.Client(app))  # objects with small ids, so generated ids find some
        schema = schemathesis.openapi.from_dict(h.spec(name))
        use_token(schema, h.token("fuzz-admin", ("admin",), "east"))
        counter, failures = [0], {}
        ops = [r.ok() for r in schema.get_all_operations()]
        ops = [op for op in ops if (name, op.method.upper(), op.path) not in SKIP
               and ONLY in f"{op.method.upper()} {op.path}"]
        examples = EXAMPLES or max(10, -(-REQUESTS // (2 * len(ops))))
        for op in ops:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    fuzz_operation(app, op, mode, counter, examples)
                except Unsatisfiable:  # nothing in this operation can be made invalid (e.g. one free string)
                    assert mode is GenerationMode.NEGATIVE
                except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect all, then report
                    detail = str(exc) if isinstance(exc, BaseExceptionGroup) else traceback.format_exc()
                    failures[f"{op.method.upper()} {op.path} ({mode.value})"] = detail[-3000:]
        h.record("fuzz", name, {"requests": counter[0], "failures": len(failures), "operations": len(ops),
                                "examples_per_operation": 2 * examples})
        assert counter[0] > 0
        assert not failures, "\n\n".join(f"== {k}\n{v}" for k, v in failures.items())
    finally:
        h.close(app)
