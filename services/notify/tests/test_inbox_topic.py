"""`inbox_items.topic` (migrations 0003/0004): written with each item, filtered on in the inbox,
with a fallback for items an older release wrote without it."""
from sqlalchemy import update

from notify import models

LEAD = {"lead_id": "L1", "owner_id": "u1", "name": "Bo", "reason": "auto"}


def test_inbox_by_topic_including_items_of_the_previous_release(env):
    env.publish("lead.assigned", LEAD)
    env.publish("lead.assigned", dict(LEAD, lead_id="L2"))
    env.send_due()
    h = env.headers("u1")
    items = env.client.get("/v1/inbox", headers=h).json["items"]
    assert len(items) >= 2 and {i["topic"] for i in items} == {"lead"}
    first = min(int(i["id"]) for i in items)
    with env.rt.engine.begin() as c:  # as the previous release wrote it
        c.execute(update(models.inbox_items).where(models.inbox_items.c.id == first).values(topic=None))
    got = env.client.get("/v1/inbox?topic=lead", headers=h).json["items"]
    assert sorted(int(i["id"]) for i in got) == sorted(int(i["id"]) for i in items)
    assert {i["topic"] for i in got} == {"lead"}                         # computed for the old row
    assert env.client.get("/v1/inbox?topic=ticket", headers=h).json["items"] == []
    r = env.client.get("/v1/inbox?topic=le%25", headers=h)
    assert r.status_code == 422 and "topic" in r.json["errors"]
