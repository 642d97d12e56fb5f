"""The per-process cache of configuration the consumer reads for every event (notify/cache.py):
custom subscriptions, custom templates, enabled webhooks. A change through this process's API is
planned with at once; another process (the worker, when the change came through the web process)
plans with it once the cache's TTL has passed, never later. And what a `lead.assigned` costs the
consumer in statements."""
import pytest
from sqlalchemy import event

from notify import cache, models

LEAD = {"lead_id": "L1", "owner_id": "u1", "team_id": "1", "team_code": "east", "name": "张三", "company": "ACME",
        "source": "web", "reason": "auto", "previous_owner_id": None}
CREATED = {"lead_id": "L1", "status": "new", "name": "张三", "company": "ACME", "source": "web"}


@pytest.fixture
def clock(monkeypatch):
    """The cache's clock, stepped by hand (no test waits for the TTL)."""
    now = [1000.0]
    monkeypatch.setattr(cache, "_clock", lambda: now[0])
    return now


@pytest.fixture
def two(make_env, database_url, clock):
    """Two processes' worth of notify on one database: `a` takes the API calls, `b` only consumes."""
    return make_env(database_url), make_env(database_url)


def inbox(env, user):
    return env.client.get("/v1/inbox", headers=env.headers(user)).json["items"]


def test_a_subscription_is_planned_with_at_once_here_and_within_the_ttl_elsewhere(two, clock):
    a, b = two
    for env in (a, b):  # both have read (and cached) the subscriptions
        env.publish("lead.created", {**CREATED, "lead_id": "L0"})
    r = a.client.post("/v1/subscriptions", headers=a.admin(), json={
        "event_type": "lead.created", "recipient_kind": "user", "recipient_value": "u2", "channels": ["inbox"]})
    assert r.status_code == 201, r.json
    a.publish("lead.created", {**CREATED, "lead_id": "L1"})
    assert [i["refs"]["lead_id"] for i in inbox(a, "u2")] == ["L1"]       # this process: at once
    b.publish("lead.created", {**CREATED, "lead_id": "L2"})
    assert [i["refs"]["lead_id"] for i in inbox(a, "u2")] == ["L1"]       # b: not yet, within the TTL
    clock[0] += cache.TTL
    b.publish("lead.created", {**CREATED, "lead_id": "L3"})
    assert [i["refs"]["lead_id"] for i in inbox(a, "u2")] == ["L3", "L1"]  # b: once the TTL has passed
    # removed through a: a stops at once
    a.client.delete(f"/v1/subscriptions/{r.json['id']}", headers=a.admin())
    a.publish("lead.created", {**CREATED, "lead_id": "L4"})
    assert len(inbox(a, "u2")) == 2


def test_a_custom_template_is_used_at_once_here_and_within_the_ttl_elsewhere(two, clock):
    a, b = two
    a.recipient("u1")
    b.publish("lead.assigned", {**LEAD, "lead_id": "L0"})
    a.publish("lead.assigned", {**LEAD, "lead_id": "L00"})
    r = a.client.post("/v1/templates", headers=a.admin(), json={
        "event_type": "lead.assigned", "channel": "inbox", "language": "zh-CN",
        "subject": "Custom {{ name }}", "body": "Lead {{ lead_id }}"})
    assert r.status_code == 201, r.json
    a.publish("lead.assigned", {**LEAD, "lead_id": "L1"})
    b.publish("lead.assigned", {**LEAD, "lead_id": "L2"})
    clock[0] += cache.TTL
    b.publish("lead.assigned", {**LEAD, "lead_id": "L3"})
    titles = {i["refs"]["lead_id"]: i["title"] for i in inbox(a, "u1")}
    assert titles["L1"] == titles["L3"] == "Custom 张三"
    assert titles["L0"] == titles["L2"] != "Custom 张三"           # the shipped one
    # the email has no custom template of its own and no "*" one: still the shipped one
    e = a.publish("lead.assigned", {**LEAD, "lead_id": "L4"})
    [mail] = a.deliveries(event_id=e.id, channel="email")
    assert mail.subject == titles["L0"]
    # a "*" template serves the email; the inbox keeps its own
    a.client.post("/v1/templates", headers=a.admin(), json={
        "event_type": "lead.assigned", "channel": "*", "language": "zh-CN", "subject": "Any {{ name }}",
        "body": "x"})
    e = a.publish("lead.assigned", {**LEAD, "lead_id": "L5"})
    assert [d.subject for d in a.deliveries(event_id=e.id)] == ["Custom 张三", "Any 张三"]  # inbox, email
    a.client.delete(f"/v1/templates/{r.json['id']}", headers=a.admin())
    e = a.publish("lead.assigned", {**LEAD, "lead_id": "L6"})
    assert [d.subject for d in a.deliveries(event_id=e.id)] == ["Any 张三", "Any 张三"]


def test_a_webhook_is_planned_for_at_once_here_and_within_the_ttl_elsewhere(make_env, database_url, clock):
    a = make_env(database_url, NOTIFY_WEBHOOK_ALLOW_PRIVATE="1")
    b = make_env(database_url, NOTIFY_WEBHOOK_ALLOW_PRIVATE="1")
    for env in (a, b):  # both have read (and cached) the webhooks
        env.publish("lead.created", {**CREATED, "lead_id": "L0"})
    hook = a.client.post("/v1/webhooks", headers=a.admin(), json={
        "url": "http://127.0.0.1:9/hook", "event_types": ["lead.created"], "secret": "0123456789abcdef"}).json
    planned = {}
    for env, lead in ((a, "L1"), (b, "L2")):
        planned[lead] = bool(env.deliveries(event_id=env.publish("lead.created", {**CREATED, "lead_id": lead}).id))
    clock[0] += cache.TTL
    planned["L3"] = bool(b.deliveries(event_id=b.publish("lead.created", {**CREATED, "lead_id": "L3"}).id))
    assert planned == {"L1": True, "L2": False, "L3": True}
    a.client.delete(f"/v1/webhooks/{hook['id']}", headers=a.admin())
    assert not a.deliveries(event_id=a.publish("lead.created", {**CREATED, "lead_id": "L4"}).id)


def test_what_was_read_while_a_change_was_committed_is_not_kept(env, clock):
    """A clear that lands while a value is being read (another thread committed a change) means the
    value may be old: it is returned but not cached."""
    with env.rt.engine.connect() as conn:
        def load(_):
            cache.clear(env.rt.engine)
            return "old"
        assert cache.get(conn, "k", load) == "old"
        assert cache.get(conn, "k", lambda _: "new") == "new"
        assert cache.get(conn, "k", lambda _: "newer") == "new"   # kept now, until the TTL
        clock[0] += cache.TTL
        assert cache.get(conn, "k", lambda _: "newer") == "newer"


def test_each_database_has_its_own_entries(make_env, clock):
    a, b = make_env(), make_env()
    with a.rt.engine.connect() as ca, b.rt.engine.connect() as cb:
        assert cache.get(ca, "k", lambda _: "a") == "a"
        assert cache.get(cb, "k", lambda _: "b") == "b"
        cache.clear(a.rt.engine)
        assert cache.get(cb, "k", lambda _: "b2") == "b"


def _statements(env, event_type, payload):
    seen = []

    def record(conn, cursor, statement, params, context, many):
        if statement.split()[0].upper() != "BEGIN":  # SQLite's BEGIN IMMEDIATE is a statement too
            words = set(statement.replace("(", " ").replace(",", " ").split())
            seen.append(f"{statement.split()[0]} " + ",".join(sorted(t for t in models.metadata.tables if t in words)))

    event.listen(env.rt.engine, "before_cursor_execute", record)
    try:
        env.publish(event_type, payload)
    finally:
        event.remove(env.rt.engine, "before_cursor_execute", record)
    return seen


def test_statements_the_consumer_runs_for_a_lead_assigned(env_db):
    """Fails if what notify does per `lead.assigned` grows again (it was 11 statements): one SELECT
    of the recipient with their preferences, the two deliveries (inbox, email) in one INSERT, the
    inbox item and its try; the configuration comes from the cache. Plus the processed event."""
    env = env_db
    env.recipient("u1")
    env.publish("lead.assigned", {**LEAD, "lead_id": "L0"})    # the cache is warm
    seen = _statements(env, "lead.assigned", {**LEAD, "lead_id": "L1"})
    assert sorted(seen) == sorted(["INSERT processed_events", "SELECT preferences,recipients", "INSERT deliveries",
                                   "INSERT inbox_items", "INSERT delivery_attempts"]), seen
    [item] = [i for i in inbox(env, "u1") if i["refs"]["lead_id"] == "L1"]
    assert "张三" in item["title"]
    assert [d.channel for d in env.deliveries(channel="email") if d.payload["lead_id"] == "L1"] == ["email"]


def test_an_event_nobody_is_subscribed_to_costs_only_its_processed_row(env_db):
    env = env_db
    env.publish("lead.created", {**CREATED, "lead_id": "L0"})
    assert _statements(env, "lead.created", {**CREATED, "lead_id": "L1"}) == ["INSERT processed_events"]


def test_a_message_planned_twice_in_one_event_is_written_once(env_db):
    """The event's deliveries go in one INSERT: a custom subscription that repeats the shipped one
    (same recipient and channel) still makes one delivery and one inbox item, and the other
    channels are kept."""
    env = env_db
    env.recipient("u1")
    r = env.client.post("/v1/subscriptions", headers=env.admin(), json={
        "event_type": "lead.assigned", "recipient_kind": "field", "recipient_value": "owner_id",
        "channels": ["inbox", "sms"]})
    assert r.status_code == 201, r.json
    e = env.publish("lead.assigned", LEAD)
    assert sorted(d.channel for d in env.deliveries(event_id=e.id)) == ["email", "inbox", "sms"]
    assert len(inbox(env, "u1")) == 1
    env.deliver(e, attempts=1)  # redelivered: nothing more
    assert len(env.deliveries(event_id=e.id)) == 3 and len(inbox(env, "u1")) == 1
