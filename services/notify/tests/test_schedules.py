"""Schedules on a controlled clock: follow-up and approval reminders, their cancellation when the
reason goes away, birthday and holiday greetings, digests and throttling."""
from datetime import date, datetime, timezone

from notify import care, digest
from notify.domain.rules import utc


def _customer(env, **kw):
    p = {"customer_id": "C1", "name": "王芳", "owner_id": "u1", "phone": "+8613900000001",
         "email": "wang@example.com", "birthday": "1990-03-12", "language": "zh-CN", "timezone": "Asia/Shanghai"}
    p.update(kw)
    return env.publish("customer.created", p)


def test_birthday_greeting_at_nine_in_the_customers_time_zone_once_a_year(env):
    _customer(env)
    # 11 March 2026, 23:00 UTC = 12 March 07:00 in Shanghai: the birthday, but before 09:00
    env.clock.set(datetime(2026, 3, 11, 23, 0, tzinfo=timezone.utc))
    care.run(env.rt)
    assert env.deliveries(kind="greeting") == []
    env.clock.set(datetime(2026, 3, 12, 0, 59, tzinfo=timezone.utc))  # 08:59
    care.run(env.rt)
    assert env.deliveries(kind="greeting") == []
    env.clock.set(datetime(2026, 3, 12, 1, 0, tzinfo=timezone.utc))  # 09:00
    care.run(env.rt)
    env.send_due()
    assert [s["to"] for s in env.sms()] == ["+8613900000001"] and "王芳" in env.sms()[0]["text"]
    assert "生日快乐" in env.sms()[0]["text"]
    # the job runs every minute: no second greeting that day, nor later that year
    for hours in (1, 5, 14):
        env.clock.set(datetime(2026, 3, 12, hours, 0, tzinfo=timezone.utc))
        care.run(env.rt)
    env.send_due()
    assert len(env.sms()) == 1
    assert {(r.channel, r.event_id) for r in env.deliveries(kind="greeting")} == {
        ("sms", "birthday:2026"), ("email", "birthday:2026")}
    # next year again
    env.clock.set(datetime(2027, 3, 12, 1, 30, tzinfo=timezone.utc))
    care.run(env.rt)
    env.send_due()
    assert len(env.sms()) == 2


def test_birthday_in_new_york_waits_for_new_yorks_morning_and_english(env):
    _customer(env, customer_id="C2", timezone="America/New_York", language="en", name="Ann", phone="+12125550100")
    env.clock.set(datetime(2026, 3, 12, 1, 0, tzinfo=timezone.utc))  # 11 March 21:00 in New York
    care.run(env.rt)
    assert env.deliveries(kind="greeting") == []
    env.clock.set(datetime(2026, 3, 12, 13, 0, tzinfo=timezone.utc))  # 09:00 EDT
    care.run(env.rt)
    env.send_due()
    assert env.sms()[0]["text"].startswith("Happy birthday, Ann")


def test_greetings_can_be_turned_off_per_customer(env):
    _customer(env)
    r = env.client.put("/v1/customers/C1/care", json={"birthday_greetings": False},
                       headers=env.headers("u1", ("sales_rep",)))
    assert r.status_code == 200 and r.json["birthday_greetings"] is False
    env.clock.set(datetime(2026, 3, 12, 2, 0, tzinfo=timezone.utc))
    care.run(env.rt)
    assert env.deliveries(kind="greeting") == []
    # another rep's customer does not exist for them
    assert env.client.put("/v1/customers/C1/care", json={"holiday_greetings": False},
                          headers=env.headers("u2", ("sales_rep",))).status_code == 404


def test_holiday_greeting_on_national_day(env):
    _customer(env, birthday=None)
    env.clock.set(datetime(2026, 10, 1, 1, 5, tzinfo=timezone.utc))  # 09:05 in Shanghai
    care.run(env.rt)
    care.run(env.rt)
    env.send_due()
    assert len(env.sms()) == 1 and "国庆节" in env.sms()[0]["text"]


def test_follow_up_reminder_at_next_follow_up_and_cancelled_when_the_follow_up_is_logged(env):
    env.recipient("u1")
    due = datetime(2026, 3, 11, 2, 0, tzinfo=timezone.utc)
    first = env.publish("lead.followed_up", {"lead_id": "L1", "owner_id": "u1", "follow_up_id": "F1",
                                             "channel": "phone", "next_follow_up_at": due.isoformat(),
                                             "name": "Acme lead"})
    env.send_due()
    assert env.client.get("/v1/inbox", headers=env.headers("u1")).json["items"] == []
    env.clock.set(due)
    env.send_due()
    items = env.client.get("/v1/inbox", headers=env.headers("u1")).json["items"]
    assert len(items) == 1 and items[0]["event_type"] == "reminder.follow_up" and "Acme lead" in items[0]["title"]
    # next time the rep logs the follow-up before it is due: the reminder goes away
    due2 = datetime(2026, 3, 13, 2, 0, tzinfo=timezone.utc)
    env.publish("lead.followed_up", {"lead_id": "L1", "owner_id": "u1", "follow_up_id": "F2", "channel": "phone",
                                     "next_follow_up_at": due2.isoformat()})
    env.clock.set(datetime(2026, 3, 12, 2, 0, tzinfo=timezone.utc))
    env.publish("lead.followed_up", {"lead_id": "L1", "owner_id": "u1", "follow_up_id": "F3", "channel": "visit",
                                     "next_follow_up_at": None})
    env.clock.set(due2)
    env.send_due()
    assert len(env.client.get("/v1/inbox", headers=env.headers("u1")).json["items"]) == 1
    cancelled = env.deliveries(status="cancelled")
    assert cancelled and all(r.event_type == "reminder.follow_up" for r in cancelled)
    assert all(r.status == "sent" for r in env.deliveries(event_id=f"{first.id}:remind", channel="inbox"))


def test_approval_reminder_after_a_business_day_unless_decided(env):
    env.recipient("gm1")
    # Friday 13 March 2026 10:00 Shanghai: the reminder is due Monday 10:00, not Saturday
    env.clock.set(datetime(2026, 3, 13, 2, 0, tzinfo=timezone.utc))
    req = {"approval_id": "A1", "subject_type": "quote", "subject_id": "Q1", "requester_id": "u1",
           "approver_ids": ["gm1"], "step": 1, "amount": "120000.00", "currency": "CNY"}
    env.publish("approval.requested", req)
    env.send_due()
    assert [i["event_type"] for i in env.client.get("/v1/inbox", headers=env.headers("gm1")).json["items"]] == [
        "approval.requested"]
    reminder = env.deliveries(event_type="reminder.approval", channel="inbox")[0]
    assert utc(reminder.due_at) == datetime(2026, 3, 16, 2, 0, tzinfo=timezone.utc)
    env.clock.set(datetime(2026, 3, 16, 2, 0, tzinfo=timezone.utc))
    env.send_due()
    kinds = [i["event_type"] for i in env.client.get("/v1/inbox", headers=env.headers("gm1")).json["items"]]
    assert kinds == ["reminder.approval", "approval.requested"]
    # a second approval decided before its reminder: the reminder is cancelled
    env.publish("approval.requested", dict(req, approval_id="A2"))
    env.publish("approval.decided", {"approval_id": "A2", "subject_type": "quote", "subject_id": "Q1",
                                     "requester_id": "u1", "approver_id": "gm1", "step": 1, "decision": "approve",
                                     "final": True})
    env.clock.advance(days=5)
    env.send_due()
    assert {r.status for r in env.deliveries(event_type="reminder.approval") if r.reason_key == "approval:A2:1"} == {
        "cancelled"}
    # step 2 of A1 requested after step 1 was approved: step 1's pending reminder (if any) goes,
    # step 2's stays even if step 1's decision arrives late
    env.publish("approval.requested", dict(req, approval_id="A3", step=2))
    env.publish("approval.decided", {"approval_id": "A3", "subject_type": "quote", "subject_id": "Q1",
                                     "requester_id": "u1", "approver_id": "gm1", "step": 1, "decision": "approve",
                                     "final": False})
    assert {r.status for r in env.deliveries(event_type="reminder.approval") if r.reason_key == "approval:A3:2"} == {
        "pending"}


def test_payment_received_cancels_an_overdue_notice_still_waiting(env):
    env.recipient("u1", mobile="+8613800000009")
    env.client.put("/v1/preferences", headers=env.headers("u1"), json={"digest": {"payment.overdue": "daily"}})
    env.publish("payment.overdue", {"installment_id": "I1", "contract_id": "K1", "customer_id": "C1",
                                    "owner_id": "u1", "amount_due": "5000.00", "currency": "CNY",
                                    "due_date": "2026-03-01", "days_overdue": 9})
    assert env.deliveries(channel="email")[0].status == "digest"
    env.publish("payment.received", {"payment_id": "P1", "contract_id": "K1", "customer_id": "C1", "owner_id": "u1",
                                     "amount": "5000.00", "currency": "CNY", "paid_on": "2026-03-10",
                                     "installment_ids": ["I1"]})
    assert env.deliveries(event_type="payment.overdue", channel="email")[0].status == "cancelled"


def test_critical_overdue_payment_ignores_preferences_and_quiet_hours(env):
    env.recipient("u1", mobile="+8613800000010")
    r = env.client.put("/v1/preferences", headers=env.headers("u1"),
                       json={"channels": {"payment.overdue": []}, "quiet_hours": {"start": "00:00", "end": "23:59"}})
    assert r.status_code == 200
    assert any(c["event_type"] == "payment.overdue" for c in r.json["critical"])
    p = {"installment_id": "I1", "contract_id": "K1", "customer_id": "C1", "owner_id": "u1",
         "amount_due": "5000.00", "currency": "CNY", "due_date": "2026-02-01", "days_overdue": 10}
    env.publish("payment.overdue", p)
    assert env.deliveries() == []  # muted: not critical at 10 days
    env.publish("payment.overdue", dict(p, days_overdue=37))
    env.send_due()
    assert {r.channel for r in env.deliveries()} == {"inbox", "email", "sms"}
    assert len(env.sms()) == 1 and "37" in env.sms()[0]["text"]


def test_hourly_digest_folds_messages_into_one(make_env, smtp):
    env = make_env(SMTP_URL=smtp.url)
    env.recipient("u1", language="en")
    env.client.put("/v1/preferences", headers=env.headers("u1"), json={"digest": {"lead.assigned": "hourly"}})
    for n in range(3):
        env.publish("lead.assigned", {"lead_id": f"L{n}", "owner_id": "u1", "name": f"Lead {n}", "reason": "auto"})
    env.send_due()
    assert smtp.messages == []
    assert len(env.client.get("/v1/inbox", headers=env.headers("u1")).json["items"]) == 3  # the inbox is immediate
    env.clock.set(datetime(2026, 3, 10, 3, 0, tzinfo=timezone.utc))
    digest.run(env.rt)
    digest.run(env.rt)  # idempotent
    env.send_due()
    assert len(smtp.messages) == 1
    _, msg = smtp.messages[0]
    assert msg["Subject"] == "Digest (3 messages)"
    text = msg.get_body(("plain",)).get_content()
    assert all(f"Lead {n}" in text for n in range(3))
    assert {r.status for r in env.deliveries(event_type="lead.assigned", channel="email")} == {"digested"}


def test_throttle_folds_the_excess_into_the_next_digest(make_env, smtp):
    env = make_env(SMTP_URL=smtp.url, NOTIFY_THROTTLE_MAX=2, NOTIFY_THROTTLE_WINDOW_SECONDS=600)
    env.recipient("u1", language="en")
    for n in range(5):
        env.publish("lead.assigned", {"lead_id": f"L{n}", "owner_id": "u1", "name": f"Lead {n}", "reason": "auto"})
    env.send_due()
    assert len(smtp.messages) == 2
    held = env.deliveries(status="digest", channel="email")
    assert len(held) == 3 and all(r.digest_mode == "throttle" for r in held)
    env.clock.advance(seconds=601)
    digest.run(env.rt)
    env.send_due()
    assert len(smtp.messages) == 3 and smtp.messages[-1][1]["Subject"] == "Digest (3 messages)"


def test_daily_digest_waits_for_nine_in_the_morning_local(env):
    env.recipient("u1", timezone="Asia/Shanghai")
    env.client.put("/v1/preferences", headers=env.headers("u1"), json={"digest": {"contract.expiring": "daily"}})
    env.publish("contract.expiring", {"contract_id": "K1", "customer_id": "C1", "owner_id": "u1"})
    row = env.deliveries(channel="email")[0]
    assert row.status == "digest" and utc(row.due_at) == datetime(2026, 3, 11, 1, 0, tzinfo=timezone.utc)


def test_nobody_is_told_of_their_own_action(env):
    env.publish("lead.assigned", {"lead_id": "L1", "owner_id": "u1", "reason": "claim", "by_user_id": "u1"})
    env.publish("lead.assigned", {"lead_id": "L2", "owner_id": "u1", "reason": "transfer", "by_user_id": "m1"})
    assert {r.payload["lead_id"] for r in env.deliveries(channel="inbox")} == {"L2"}


def test_customer_read_model_ignores_stale_revisions(env):
    _customer(env, revision=3, email="new@example.com")
    _customer(env, revision=2, email="old@example.com")
    r = env.client.get("/v1/customers/C1", headers=env.headers("u1"))
    assert r.json["email"] == "new@example.com" and r.json["birthday"] == date(1990, 3, 12).isoformat()
