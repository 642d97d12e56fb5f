"""Hostile request bodies and parameters on every operation of every service (enumerated from the
OpenAPI documents): SQL metacharacters, 1 MB strings, deeply nested JSON, invalid UTF-8, a body
larger than the limit. Never a 5xx; refusals are problem+json 4xx; what is accepted is stored
verbatim."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _hostile as h  # noqa: E402

ADMIN = ("admin1", ("admin",), "east")
REP = ("rep1", ("sales_rep",), "east")
SQL = ["' OR '1'='1", "'; DROP TABLE leads; --", "\" OR \"\"=\"", "1; SELECT pg_sleep(5)--", "%", "_", "\\",
       "' UNION SELECT sqlite_version(), NULL --", "Robert'); DELETE FROM customers;--"]


@pytest.fixture(scope="module", params=h.NAMES)
def service(request, tmp_path_factory):
    app = h.make_app(request.param, tmp_path_factory.mktemp(request.param))
    yield request.param, h.Client(app)
    h.close(app)


def _schema(spec: dict, node: dict) -> dict:
    while "$ref" in node:
        node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _body_ops(name):
    spec = h.spec(name)
    for method, path, op in h.operations(name):
        content = op.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            yield method, path, _schema(spec, content["application/json"]["schema"])


def _string_fields(schema: dict) -> list[str]:
    return [k for k, v in schema.get("properties", {}).items() if v.get("type") == "string"]


def _problem(r) -> bool:
    body = r.get_json(silent=True) or {}
    return r.mimetype == "application/problem+json" and body.get("status") == r.status_code


def test_sql_metacharacters_in_every_query_parameter(service):
    name, c = service
    wrong, sent = [], 0
    for method, path, op in h.operations(name):
        params = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
        if method != "GET" or not params or path.endswith("/stream"):
            continue
        for payload in SQL:
            sent += 1
            r = c.get(h.fill(path), ADMIN, query_string={p: payload for p in params})
            if r.status_code >= 500 or (r.status_code >= 400 and not _problem(r)):
                wrong.append(f"GET {path} {payload!r}: {r.status_code} {r.get_data(as_text=True)[:200]}")
    assert sent > 0
    assert not wrong, "\n".join(wrong)


def test_sql_metacharacters_in_every_string_field(service):
    name, c = service
    wrong, sent = [], 0
    for method, path, schema in _body_ops(name):
        fields = _string_fields(schema)
        for payload in SQL[:4]:
            sent += 1
            r = c.call(method, h.fill(path), ADMIN, {f: payload for f in fields})
            if r.status_code >= 500 or (r.status_code >= 400 and not _problem(r)):
                wrong.append(f"{method} {path} {payload!r}: {r.status_code} {r.get_data(as_text=True)[:200]}")
    assert sent > 0
    assert not wrong, "\n".join(wrong)


def test_one_megabyte_strings_are_refused(service):
    name, c = service
    big = "长" * 350_000  # 1 MB of UTF-8
    wrong = []
    for method, path, schema in _body_ops(name):
        fields = _string_fields(schema)
        if not fields:
            continue
        r = c.call(method, h.fill(path), ADMIN, {f: big for f in fields[:1]})
        if r.status_code not in (400, 404, 409, 413, 422) or not _problem(r):
            wrong.append(f"{method} {path}: {r.status_code} {r.get_data(as_text=True)[:200]}")
    assert not wrong, "\n".join(wrong)


def test_a_body_over_the_limit_is_413(service):
    name, c = service
    for method, path, _ in list(_body_ops(name))[:5]:
        r = c.client.open(h.fill(path), method=method, data=b'{"a": "' + b"x" * 3_000_000 + b'"}',
                          content_type="application/json", headers=h.auth(*ADMIN))
        assert r.status_code == 413 and _problem(r), (method, path, r.status_code)


@pytest.mark.parametrize("doc", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
                                 b"[" * 100_000])
def test_deeply_nested_json_is_400(service, doc):
    name, c = service
    wrong = []
    for method, path, _ in _body_ops(name):
        r = c.client.open(h.fill(path), method=method, data=doc, content_type="application/json",
                          headers=h.auth(*ADMIN))
        if r.status_code not in (400, 422) or not _problem(r):
            wrong.append(f"{method} {path}: {r.status_code} {r.get_data(as_text=True)[:200]}")
    assert not wrong, "\n".join(wrong)


def test_invalid_utf8_in_bodies_queries_and_paths(service):
    name, c = service
    wrong = []
    for method, path, schema in _body_ops(name):
        field = (_string_fields(schema) or ["x"])[0]
        body = b'{"' + field.encode() + b'": "caf\xe9 \xff\xfe \xed\xa0\x80"}'
        r = c.client.open(h.fill(path), method=method, data=body, content_type="application/json",
                          headers=h.auth(*ADMIN))
        if r.status_code not in (400, 422) or not _problem(r):
            wrong.append(f"{method} {path} body: {r.status_code} {r.get_data(as_text=True)[:200]}")
    for method, path, op in h.operations(name):
        if method != "GET" or path.endswith("/stream"):
            continue
        for url in (h.fill(path, "%FF%FE") + "?q=%ED%A0%80&status=%C0%AF", h.fill(path) + "?q=%00%01"):
            r = c.client.get(url, headers=h.auth(*ADMIN))
            if r.status_code >= 500 or (r.status_code >= 400 and not _problem(r)):
                wrong.append(f"GET {url}: {r.status_code} {r.get_data(as_text=True)[:200]}")
    assert not wrong, "\n".join(wrong)


# -- stored verbatim ---------------------------------------------------------------------------------

def test_sql_metacharacters_are_stored_verbatim_and_searched_literally(tmp_path):
    app = h.make_app("leads", tmp_path)
    try:
        c = h.Client(app)
        made = []
        for i, payload in enumerate(SQL):
            r = c.post("/v1/leads", REP, {"name": payload, "company": payload + " Ltd", "note": payload,
                                          "city": payload[:50], "phone": f"1391234{i:04d}"})
            assert r.status_code == 201, r.get_json()
            made.append((r.get_json()["id"], payload))
        for lead_id, payload in made:
            got = c.get(f"/v1/leads/{lead_id}", REP).get_json()
            assert (got["name"], got["company"], got["note"], got["city"]) == (
                payload, payload + " Ltd", payload, payload[:50])
        everyone = c.get("/v1/leads", REP, query_string={"per_page": 100}).get_json()["total"]
        assert everyone == len(SQL)  # no table was dropped, no row deleted
        # a search for a LIKE wildcard finds that character, not every lead
        for wildcard in ("%", "_"):
            found = c.get("/v1/leads", REP, query_string={"q": wildcard}).get_json()["items"]
            assert found and all(wildcard in (x["name"] + x["company"]) for x in found)
            assert len(found) < everyone
    finally:
        h.close(app)
