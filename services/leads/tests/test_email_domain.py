"""`email_domain` (migration 0003/0004): written at intake and on edit, filtered on in the list,
with a fallback for leads an older release wrote without it."""
from sqlalchemy import select, update

from leads.models import leads


def ids(r):
    assert r.status_code == 200, r.json
    return sorted(int(i["id"]) for i in r.json["items"])


def test_list_by_email_domain_including_rows_of_the_previous_release(env):
    made = {}
    for i, email in enumerate(["li@Acme.com", "wang@acme.com", "zhao@other.cn", None]):
        body = {"name": f"n{i}", "phone": f"1380013800{i}", "email": email, "source": "visit"}
        r = env.post("/v1/leads", body, env.rep("rep1"))
        assert r.status_code == 201, r.json
        made[email] = int(r.json["id"])
    with env.rt.engine.connect() as c:
        stored = dict(c.execute(select(leads.c.id, leads.c.email_domain)).all())
    assert stored[made["li@Acme.com"]] == "acme.com" and stored[made[None]] is None
    # a lead the previous release inserted (it does not know the column)
    with env.rt.engine.begin() as c:
        c.execute(update(leads).where(leads.c.id == made["wang@acme.com"]).values(email_domain=None))
    got = ids(env.client.get("/v1/leads?email_domain=ACME.com", headers=env.rep("rep1")))
    assert got == sorted([made["li@Acme.com"], made["wang@acme.com"]])
    assert ids(env.client.get("/v1/leads?email_domain=acme_com", headers=env.rep("rep1"))) == []  # _ is no wildcard
    # an edit of the address moves the lead to the new domain
    r = env.client.patch(f"/v1/leads/{made['zhao@other.cn']}", json={"email": "zhao@acme.com"}, headers=env.rep("rep1"))
    assert r.status_code == 200, r.json
    assert len(ids(env.client.get("/v1/leads?email_domain=acme.com", headers=env.rep("rep1")))) == 3
