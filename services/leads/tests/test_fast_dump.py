"""The leads API's response schemas answer through crm_shared.web.fastdump's compiled dump: for the
leads the API presents, it gives exactly what marshmallow's `LeadOut.dump` gives."""
import random
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from crm_shared.web.fastdump import compile_dump
from leads import schemas as s
from leads.api.common import present
from leads.domain.actor import Actor
from leads.models import leads

from .test_intake import LEAD


def _varied_rows(n=300, seed=11):
    rng = random.Random(seed)
    t = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
    for k in range(n):
        row = {c.name: None for c in leads.c}
        row.update(id=rng.choice([k + 1, 2 ** 62 + k]), source=rng.choice(["website", "import"]),
                   status=rng.choice(["new", "pooled", "contacted", "won"]), stage="new", score=rng.randint(0, 100),
                   tier=rng.choice("ABCD"), locked=rng.choice([True, False, 0, 1]), duplicate_hits=rng.randint(0, 3),
                   created_at=t, updated_at=rng.choice([t, t.replace(tzinfo=None)]))
        for c in ("name", "company", "phone", "email", "province", "city", "industry", "note", "tags", "owner_id",
                  "owner_name", "customer_id", "referrer_customer_id", "disqualify_reason"):
            if rng.random() < 0.6:
                row[c] = rng.choice(["客户", "x", "", "+8613800138000", "a@b.c"])
        for c in ("assigned_at", "last_follow_up_at", "next_follow_up_at", "pooled_at", "converted_at", "won_at"):
            if rng.random() < 0.5:
                v = t + timedelta(minutes=rng.randint(0, 10 ** 5), microseconds=rng.randint(0, 999999))
                row[c] = rng.choice([v, v.replace(tzinfo=None), v.astimezone(timezone(timedelta(hours=8)))])
        for c in ("campaign_id", "team_id"):
            row[c] = rng.choice([None, rng.randint(1, 99)])
        row["masked"] = rng.choice([True, False])
        row["recycle_at"] = rng.choice([None, t + timedelta(days=7)])
        if rng.random() < 0.2:
            del row[rng.choice(list(row))]  # a key missing: marshmallow leaves it out
        yield row


def test_leadout_compiled_dump_equals_marshmallow_on_varied_leads():
    schema = s.LeadOut()
    fast = compile_dump(schema)
    assert fast is not None
    for row in _varied_rows():
        expected = schema.dump(row)
        got = fast(row)
        assert got == expected and list(got) == list(expected)


def test_the_api_answers_leads_as_marshmallow_dumps_them(env):
    env.team([{"user_id": "rep1", "name": "Rep One"}, {"user_id": "rep2", "name": "Rep Two"}])
    answers = [env.post("/v1/leads", {**LEAD, "phone": f"1380013{k:04d}", "email": f"c{k}@example.com",
                                      "company": f"公司{k}"}, env.manager()) for k in range(3)]
    answers.append(env.post("/v1/leads", {**LEAD, "phone": "13900139000", "email": None, "company": None},
                            env.rep("rep1")))
    assert all(r.status_code == 201 for r in answers), [r.json for r in answers]
    mgr = Actor(id="mgr1", name="MGR1", roles=("sales_manager",), team="east")
    rep = Actor(id="rep1", name="REP1", roles=("sales_rep",), team="east")
    with env.app.test_request_context(), env.rt.engine.connect() as c:
        for r, a in zip(answers, [mgr, mgr, mgr, rep]):
            row = c.execute(select(leads).where(leads.c.id == int(r.json["id"]))).mappings().one()
            shown = present(dict(row), a)
            assert r.json == s.LeadOut().dump(shown)  # what marshmallow gives, as JSON
            assert compile_dump(s.LeadOut())(shown) == s.LeadOut().dump(shown)


def test_the_body_is_parsed_once_and_answers_as_before(env, monkeypatch):
    """The request hook's parse of a JSON body is what webargs gets (one `json.loads` per request);
    another JSON media type is still parsed by webargs itself; invalid bodies and fields answer as
    before (400 from the hook, 422 field by field)."""
    import json as json_module
    calls = []
    real = json_module.loads

    def counting(s, *a, **kw):
        calls.append(s)
        return real(s, *a, **kw)

    monkeypatch.setattr(json_module, "loads", counting)
    env.team([{"user_id": "rep1", "name": "Rep One"}])
    body = {**LEAD, "phone": "13800138077", "email": "once@example.com", "company": "Once"}
    r = env.post("/v1/leads", body, env.manager())
    assert r.status_code == 201, r.json
    assert len([c for c in calls if "once@example.com" in (c if isinstance(c, str) else c.decode())]) == 1
    calls.clear()
    r = env.client.post("/v1/leads", data=json_module.dumps({**body, "phone": "13800138078", "email": "x@example.com",
                                                             "company": "Other"}),
                        content_type="application/merge-patch+json", headers=env.manager())
    assert r.status_code == 201 and r.json["email"] == "x***@example.com"
    r = env.client.post("/v1/leads", data=b'{"name": ', content_type="application/json", headers=env.manager())
    assert r.status_code == 400 and r.mimetype == "application/problem+json"
    r = env.post("/v1/leads", {**body, "name": "x" * 201, "campaign_id": "7", "source": "fax"}, env.manager())
    assert r.status_code == 422 and r.mimetype == "application/problem+json"
    assert set(r.json["errors"]) == {"name", "campaign_id", "source"}, r.json
