"""`customers.email_domain` (migrations 0003/0004): written on create and on an email change,
filtered on in the list, with a fallback for customers an older release wrote without it."""
from sqlalchemy import select, update

from sales.models import customers
from sales.testing import REP


def ids(r):
    assert r.status_code == 200, r.json
    return sorted(x["id"] for x in r.json)


def test_customers_by_email_domain_including_rows_of_the_previous_release(api):
    made = []
    for i, email in enumerate(["li@BlueSky.example", "wang@bluesky.example", "zhao@other.example"]):
        r = api.post("/v1/customers", REP, {"name": f"c{i}", "phone": f"1391111000{i}", "email": email})
        assert r.status_code == 201, r.json
        made.append(r.json["id"])
    engine = api.runtime.engine
    with engine.connect() as c:
        assert c.execute(select(customers.c.email_domain).where(customers.c.id == made[0])).scalar() == "bluesky.example"
    with engine.begin() as c:  # as the previous release inserted it
        c.execute(update(customers).where(customers.c.id == made[1]).values(email_domain=None))
    assert ids(api.get("/v1/customers?email_domain=BlueSky.example", REP)) == made[:2]
    r = api.patch(f"/v1/customers/{made[2]}", REP, {"email": "zhao@bluesky.example"})
    assert r.status_code == 200, r.json
    assert ids(api.get("/v1/customers?email_domain=bluesky.example", REP)) == made
    assert ids(api.get("/v1/customers?email_domain=other.example", REP)) == []
