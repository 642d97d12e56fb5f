"""In-app items due now are written to the inbox in the transaction that consumes the event, not
by the dispatch job's next tick; whatever a rule defers (a scheduled reminder, a digest, quiet
hours, a muted channel) still waits for the job. And secrets of the payload (the customer's survey
token) never leave through a webhook."""
import json
from datetime import datetime, timezone

from notify import jobs

LEAD = {"lead_id": "L1", "owner_id": "u1", "name": "张三", "company": "ACME", "source": "web", "reason": "auto"}


def inbox(env, user="u1"):
    return env.client.get("/v1/inbox", headers=env.headers(user)).json["items"]


def test_the_in_app_item_is_there_when_the_event_is_consumed_without_a_dispatch_run(env_db):
    env = env_db
    env.recipient("u1", email="u1@example.com")
    e = env.publish("lead.assigned", LEAD)
    # no send_due: the consumer's commit alone made the item
    [item] = inbox(env)
    assert item["event_type"] == "lead.assigned" and item["refs"]["lead_id"] == "L1" and "张三" in item["title"]
    [row] = env.deliveries(event_id=e.id, channel="inbox")
    assert row.status == "sent" and row.attempts == 1 and row.sent_at is not None
    # one try recorded, as the dispatch job records it
    [logged] = env.client.get(f"/v1/deliveries?event_id={e.id}&channel=inbox", headers=env.admin()).json
    assert [t["ok"] for t in logged["tries"]] == [True]
    # the email is the dispatch job's, untouched by the consumer
    [mail] = env.deliveries(event_id=e.id, channel="email")
    assert mail.status == "pending" and mail.attempts == 0
    # redelivered, and a dispatch run: still exactly one item
    env.deliver(e, attempts=1)
    env.send_due()
    assert len(inbox(env)) == 1


def test_a_live_stream_sees_the_item_without_a_dispatch_run(make_env):
    env = make_env(NOTIFY_SSE_POLL_SECONDS="0.05")
    env.recipient("u1")
    env.publish("lead.assigned", LEAD)
    r = env.client.get("/v1/inbox/stream?after_id=0&max_seconds=0.2", headers=env.headers("u1"))
    events = [json.loads(line[len("data: "):]) for line in r.get_data(as_text=True).splitlines()
              if line.startswith("data: ") and line != "data: {}"]
    assert [e["refs"]["lead_id"] for e in events] == ["L1"]


def test_a_scheduled_reminder_still_waits_for_its_time(env):
    env.recipient("u1")
    due = datetime(2026, 3, 11, 2, 0, tzinfo=timezone.utc)
    e = env.publish("lead.followed_up", {"lead_id": "L1", "owner_id": "u1", "follow_up_id": "F1", "channel": "phone",
                                         "next_follow_up_at": due.isoformat(), "name": "Acme lead"})
    assert inbox(env) == []
    [row] = env.deliveries(event_id=f"{e.id}:remind", channel="inbox")
    assert row.status == "pending"
    env.send_due()
    assert inbox(env) == []
    env.clock.set(due)
    env.send_due()
    assert [i["event_type"] for i in inbox(env)] == ["reminder.follow_up"]


def test_a_muted_inbox_gets_nothing_and_a_digest_or_quiet_hours_defer_only_the_other_channels(env):
    env.recipient("u1", mobile="+8613800000002", timezone="Asia/Shanghai")
    env.recipient("u2")
    env.client.put("/v1/preferences", headers=env.headers("u2"), json={"channels": {"lead.assigned": ["email"]}})
    e = env.publish("lead.assigned", dict(LEAD, owner_id="u2"))
    assert inbox(env, "u2") == [] and env.deliveries(event_id=e.id, channel="inbox") == []
    assert [r.status for r in env.deliveries(event_id=e.id, channel="email")] == ["pending"]

    env.client.put("/v1/preferences", headers=env.headers("u1"), json={"digest": {"contract.expiring": "daily"}})
    env.client.post("/v1/subscriptions", headers=env.admin(), json={
        "event_type": "contract.expiring", "recipient_kind": "field", "recipient_value": "owner_id",
        "channels": ["inbox", "sms", "email"]})
    env.clock.set(env.clock.now().replace(hour=15, minute=30))  # 23:30 in Shanghai: quiet hours
    e = env.publish("contract.expiring", {"contract_id": "K1", "customer_id": "C1", "owner_id": "u1",
                                          "end_date": "2026-04-01"})
    by = {}
    for r in env.deliveries(event_id=e.id):
        by.setdefault(r.channel, []).append(r.status)
    # the default subscription and the custom one name the same (event, recipient, channel): one row each
    assert by["inbox"] == ["sent"] and set(by["email"]) == {"digest"} and set(by["sms"]) == {"digest"}
    assert [i["refs"]["contract_id"] for i in inbox(env)] == ["K1"]
    jobs.send_due(env.rt)
    assert env.sms() == []


def test_quiet_hours_hold_the_sms_but_not_the_in_app_item(env):
    env.recipient("u1", mobile="+8613800000002", timezone="Asia/Shanghai")
    env.client.post("/v1/subscriptions", headers=env.admin(), json={
        "event_type": "contract.expiring", "recipient_kind": "field", "recipient_value": "owner_id",
        "channels": ["sms", "inbox"]})
    env.clock.set(env.clock.now().replace(hour=15, minute=30))  # 23:30 in Shanghai
    e = env.publish("contract.expiring", {"contract_id": "K1", "customer_id": "C1", "owner_id": "u1",
                                          "end_date": "2026-04-01"})
    assert [i["refs"]["contract_id"] for i in inbox(env)] == ["K1"]
    env.send_due()
    assert env.sms() == []
    [sms] = env.deliveries(event_id=e.id, channel="sms")
    assert sms.status == "pending" and "quiet hours" in sms.note


def test_the_survey_token_never_reaches_a_webhook(make_env, smtp, receiver):
    env = make_env(SMTP_URL=smtp.url, NOTIFY_WEBHOOK_ALLOW_PRIVATE="1",
                   NOTIFY_CSAT_URL="https://crm.example.cn/survey/{token}")
    r = env.client.post("/v1/webhooks", headers=env.headers("s1", ("service_supervisor",)),
                        json={"url": receiver.url, "event_types": ["ticket.resolved"], "secret": "0123456789abcdef"})
    assert r.status_code == 201, r.json
    env.publish("customer.created", {"customer_id": "c1", "name": "Acme", "email": "boss@acme.example",
                                     "phone": None, "language": "en", "revision": 1})
    token = "SECRET-tok-4711"
    env.publish("ticket.resolved", {"ticket_id": "T7", "customer_id": "c1", "type": "complaint", "priority": "high",
                                    "queue": "complaints", "subject": "Login slow", "csat_token": token,
                                    "csat_expires_at": "2026-03-24T02:00:00+00:00"})
    env.send_due()
    [req] = receiver.requests
    body = json.loads(req["body"])
    assert body["type"] == "ticket.resolved" and body["payload"]["ticket_id"] == "T7"
    assert "csat_token" not in body["payload"] and token not in req["body"].decode()
    # the customer still gets their link, by email
    [(_, msg)] = smtp.messages
    assert f"https://crm.example.cn/survey/{token}" in msg.get_body(preferencelist=("plain",)).get_content()
