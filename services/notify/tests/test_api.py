"""The HTTP contract: recipients, preferences, subscriptions, the inbox and its stream, the delivery
log; privacy (your own inbox and deliveries only) and 422 field by field."""
import json
import threading

from sqlalchemy import func, select

from notify import dispatch, models

LEAD = {"lead_id": "L1", "owner_id": "u1", "name": "Bo", "reason": "auto"}


def test_recipients_put_and_get_with_validation(env):
    r = env.client.put("/v1/recipients/u1", headers=env.headers("u1"),
                       json={"email": "not-an-email", "mobile": "12ab", "language": "fr", "timezone": "Mars/Base"})
    assert r.status_code == 422 and set(r.json["errors"]) == {"email", "mobile", "language", "timezone"}
    r = env.client.put("/v1/recipients/u1", headers=env.headers("u1", team="east"),
                       json={"email": "u1@example.com", "language": "en", "roles": ["admin"]})
    assert r.status_code == 200
    assert r.json["roles"] == ["sales_rep"] and r.json["team_id"] == "east"  # nobody grants themselves roles
    assert env.client.put("/v1/recipients/u1", headers=env.headers("u2"), json={}).status_code == 404
    assert env.client.get("/v1/recipients/u1", headers=env.headers("u2")).status_code == 404
    assert env.client.get("/v1/recipients/u1", headers=env.admin()).json["email"] == "u1@example.com"
    assert env.client.put("/v1/recipients/u1", json={}).status_code == 401


def test_role_and_team_manager_subscriptions(env):
    env.recipient("ops1", roles=["ops"])
    env.recipient("ops2", roles=["ops", "finance"])
    env.recipient("mgr1", roles=["sales_manager"], team_id="east")
    env.recipient("mgr2", roles=["sales_manager"], team_id="west")
    env.publish("order.submitted", {"order_id": "O1", "contract_id": "K1", "customer_id": "C1"})
    env.publish("lead.recycled", {"lead_id": "L1", "previous_owner_id": "u1", "rule": "no_follow_up",
                                  "team_id": "east"})
    got = {(r.event_type, r.recipient) for r in env.deliveries(channel="inbox")}
    assert got == {("order.submitted", "ops1"), ("order.submitted", "ops2"), ("lead.recycled", "u1"),
                   ("lead.recycled", "mgr1")}


def test_subscriptions_list_defaults_and_add_custom(env):
    subs = env.client.get("/v1/subscriptions?event_type=ticket.sla_breached", headers=env.headers("u1")).json
    assert subs and all(s["default"] and s["critical"] for s in subs)
    bad = env.client.post("/v1/subscriptions", headers=env.admin(), json={
        "event_type": "lead.assigned", "recipient_kind": "field", "recipient_value": "no_such_field",
        "channels": ["fax"]})
    assert bad.status_code == 422 and "channels" in bad.json["errors"]
    bad = env.client.post("/v1/subscriptions", headers=env.admin(), json={
        "event_type": "lead.assigned", "recipient_kind": "field", "recipient_value": "no_such_field",
        "channels": ["inbox"]})
    assert bad.status_code == 422 and "recipient_value" in bad.json["errors"]
    r = env.client.post("/v1/subscriptions", headers=env.admin(), json={
        "event_type": "csat.submitted", "recipient_kind": "customer", "channels": ["email"],
        "condition": {"score": {"gte": 4}}})
    assert r.status_code == 201 and r.json["template"] == "csat.submitted"
    assert env.client.post("/v1/subscriptions", headers=env.headers("u1"), json={}).status_code == 403
    assert env.client.delete(f"/v1/subscriptions/{r.json['id']}", headers=env.admin()).status_code == 204


def test_preferences_mute_a_channel_but_not_critical(env):
    r = env.client.get("/v1/preferences", headers=env.headers("u1")).json
    assert r["quiet_hours"] == {"start": "22:00", "end": "08:00"} and r["critical"]
    r = env.client.put("/v1/preferences", headers=env.headers("u1"), json={
        "channels": {"lead.assigned": ["inbox"], "nope": ["x"]}, "quiet_hours": {"start": "25:00", "end": "8"}})
    assert r.status_code == 422
    r = env.client.put("/v1/preferences", headers=env.headers("u1"), json={
        "channels": {"lead.assigned": ["inbox"]}, "language": "en"})
    assert r.status_code == 200 and r.json["language"] == "en"
    env.recipient("u1")
    env.publish("lead.assigned", LEAD)
    assert [(r.channel, r.language) for r in env.deliveries()] == [("inbox", "en")]


def test_inbox_newest_first_unread_filter_read_and_read_all(env):
    for n in range(3):
        env.publish("lead.assigned", dict(LEAD, lead_id=f"L{n}", name=f"Lead {n}"))
    env.publish("lead.assigned", dict(LEAD, owner_id="u2"))
    env.send_due()
    h = env.headers("u1")
    items = env.client.get("/v1/inbox", headers=h).json["items"]
    assert [i["refs"]["lead_id"] for i in items] == ["L2", "L1", "L0"]
    assert env.client.get("/v1/inbox/unread-count", headers=h).json == {"unread": 3}
    r = env.client.post(f"/v1/inbox/{items[1]['id']}/read", headers=h)
    assert r.status_code == 200 and r.json["read"] is True
    unread = env.client.get("/v1/inbox?unread=true", headers=h).json
    assert [i["refs"]["lead_id"] for i in unread["items"]] == ["L2", "L0"] and unread["unread"] == 2
    # another user's item is not there for you
    other = env.client.get("/v1/inbox", headers=env.headers("u2")).json["items"][0]
    assert env.client.post(f"/v1/inbox/{other['id']}/read", headers=h).status_code == 404
    assert env.client.post("/v1/inbox/read-all", headers=h).json == {"marked": 2}
    assert env.client.get("/v1/inbox/unread-count", headers=h).json == {"unread": 0}
    assert env.client.get("/v1/inbox/unread-count", headers=env.headers("u2")).json == {"unread": 1}
    page = env.client.get(f"/v1/inbox?limit=1&before_id={items[0]['id']}", headers=h).json["items"]
    assert [i["refs"]["lead_id"] for i in page] == ["L1"]


def test_inbox_stream_sends_new_items_as_server_sent_events(make_env):
    env = make_env(NOTIFY_SSE_POLL_SECONDS="0.05", NOTIFY_SSE_HEARTBEAT_SECONDS="0.1")
    env.publish("lead.assigned", LEAD)
    env.send_due()
    r = env.client.get("/v1/inbox/stream?after_id=0&max_seconds=0.5", headers=env.headers("u1"))
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    text = r.get_data(as_text=True)
    events = [b for b in text.split("\n\n") if b.startswith("id:")]
    assert len(events) == 1
    data = json.loads(events[0].split("data: ", 1)[1])
    assert data["event_type"] == "lead.assigned" and data["refs"]["lead_id"] == "L1"
    assert ": heartbeat" in text and text.rstrip().endswith("event: bye\ndata: {}")
    # by default only what arrives after connecting; Last-Event-ID resumes
    assert "id:" not in env.client.get("/v1/inbox/stream?max_seconds=0.2", headers=env.headers("u1")).get_data(
        as_text=True)
    # other users' items never appear
    assert "id:" not in env.client.get("/v1/inbox/stream?after_id=0&max_seconds=0.2",
                                       headers=env.headers("u2")).get_data(as_text=True)


def test_stream_picks_up_an_item_that_arrives_while_connected(make_env):
    env = make_env(NOTIFY_SSE_POLL_SECONDS="0.05")
    r = env.client.get("/v1/inbox/stream?max_seconds=3", headers=env.headers("u1"), buffered=False)
    chunks = iter(r.response)
    assert next(chunks).startswith(b"retry:")

    def later():
        env.publish("lead.assigned", LEAD)
        env.send_due()
    t = threading.Timer(0.3, later)
    t.start()
    got = b""
    for chunk in chunks:
        got += chunk if isinstance(chunk, bytes) else chunk.encode()
        if b"event: inbox" in got:
            break
    t.join()
    r.close()
    assert b"event: inbox" in got and b"L1" in got


def test_delivery_log_filters_and_privacy(env):
    env.recipient("u1")
    e = env.publish("lead.assigned", LEAD)
    env.send_due()
    log = env.client.get(f"/v1/deliveries?event_id={e.id}", headers=env.admin()).json
    assert {d["channel"]: d["status"] for d in log} == {"inbox": "sent", "email": "pending"}
    email = [d for d in log if d["channel"] == "email"][0]
    assert email["attempts"] == 1 and email["last_error"] and email["tries"][0]["ok"] is False
    assert [d["channel"] for d in env.client.get("/v1/deliveries?status=sent", headers=env.admin()).json] == ["inbox"]
    assert len(env.client.get("/v1/deliveries?recipient=u1&channel=email", headers=env.admin()).json) == 1
    assert len(env.client.get("/v1/deliveries", headers=env.headers("u1")).json) == 2
    assert env.client.get("/v1/deliveries", headers=env.headers("u2")).json == []
    assert env.client.get("/v1/deliveries?status=bogus", headers=env.admin()).status_code == 422


def test_two_dispatchers_at_once_send_each_message_once(make_env, pg_url):
    """On PostgreSQL, concurrent dispatch runs (two workers) claim disjoint rows."""
    env = make_env(pg_url)
    for n in range(40):
        env.publish("lead.assigned", dict(LEAD, lead_id=f"L{n}"))
    barrier = threading.Barrier(4)

    def run():
        barrier.wait()
        dispatch.run(env.rt)
    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    env.send_due()
    with env.rt.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(models.inbox_items)).scalar_one() == 40
        assert c.execute(select(func.count()).select_from(models.delivery_attempts)
                         .where(models.delivery_attempts.c.ok.is_(True))).scalar_one() == 40


def test_the_same_event_planned_concurrently_gives_one_row_per_recipient_and_channel(make_env, pg_url):
    """Even past the inbox (two consumers racing on one event id), the unique key settles it."""
    from notify import handlers
    env = make_env(pg_url)
    env.recipient("u1")
    e = env.envelope("lead.assigned", LEAD)
    barrier = threading.Barrier(4)
    errors = []

    def plan():
        try:
            with env.rt.uow() as uow:
                barrier.wait()
                handlers.handle(uow, e, dict(LEAD))
                uow.commit()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=plan) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted((r.recipient, r.channel) for r in env.deliveries(event_id=e.id)) == [("u1", "email"), ("u1", "inbox")]
