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
