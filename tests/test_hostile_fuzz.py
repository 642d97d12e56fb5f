"""Every service's OpenAPI document fuzzed with schemathesis, in process against its real Flask app
on SQLite, with an admin token so requests get past authentication: no 5xx, and every response is
documented (status, content type, headers, body schema). Valid and invalid data are both generated;
invalid data must be refused with a 4xx.

FUZZ_EXAMPLES sets the examples per operation and generation mode (default 40: a few thousand
requests per service, the same ones every run); `make fuzz` runs the nightly setting (400, with
FUZZ_RANDOM=1: new random examples each night). With CRM_RESULTS_DIR set, the requests
sent and failures found per service go to $CRM_RESULTS_DIR/hostile.json under "fuzz"."""
from __future__ import annotations

import os
import traceback
import sys
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as oa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _hostile as h  # noqa: E402

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
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


def fuzz_operation(app, op, mode, counter) -> None:
    checks = NEGATIVE_CHECKS if mode is GenerationMode.NEGATIVE else CHECKS

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=os.environ.get("FUZZ_RANDOM") != "1", print_blob=False,
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
    app = h.make_app(name, tmp_path)
    try:
        schema = schemathesis.openapi.from_dict(h.spec(name))
        use_token(schema, h.token("fuzz-admin", ("admin",), "east"))
        counter, failures = [0], {}
        for result in schema.get_all_operations():
            op = result.ok()
            if (name, op.method.upper(), op.path) in SKIP or ONLY not in f"{op.method.upper()} {op.path}":
                continue
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    fuzz_operation(app, op, mode, counter)
                except Unsatisfiable:  # nothing in this operation can be made invalid (e.g. one free string)
                    assert mode is GenerationMode.NEGATIVE
                except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect all, then report
                    detail = str(exc) if isinstance(exc, BaseExceptionGroup) else traceback.format_exc()
                    failures[f"{op.method.upper()} {op.path} ({mode.value})"] = detail[-3000:]
        h.record("fuzz", name, {"requests": counter[0], "failures": len(failures), "examples": EXAMPLES})
        assert counter[0] > 0
        assert not failures, "\n\n".join(f"== {k}\n{v}" for k, v in failures.items())
    finally:
        h.close(app)
