"""What other services' events must make notify do, found by the end-to-end flow (issue 7): role
approvers are found in the recipients directory, the customer gets the survey link, the churn-risk
flag and overdue payments reach owner and finance, lead events' team is the team code, and
customer events arriving out of order leave the recipient right."""
import re

import pytest
from sqlalchemy import select

from notify import models

REQUEST = {"approval_id": "A1", "step_id": "S1", "subject_type": "quote", "subject_id": "Q1", "requester_id": "rep1",
           "approver_ids": [], "approver_role": "sales_manager", "approver_team": "east", "step": 1,
           "amount": "110000.00", "currency": "CNY"}


def recipients_of(env, event_id, channel="inbox"):
    return sorted(r.recipient for r in env.deliveries(event_id=event_id, channel=channel))


def test_a_role_step_reaches_the_role_holders_of_the_team(env):
    env.recipient("mgr-east", roles=["sales_manager"], team_id="east")
    env.recipient("mgr-west", roles=["sales_manager"], team_id="west")
    env.recipient("rep1", roles=["sales_rep", "sales_manager"], team_id="east")  # the requester: never
    env.recipient("gm1", roles=["general_manager"])
    e = env.publish("approval.requested", REQUEST)
    assert recipients_of(env, e.id) == ["mgr-east"]
    e = env.publish("approval.requested", {**REQUEST, "approval_id": "A2", "approver_role": "general_manager",
                                           "approver_team": None, "step": 2})
    assert recipients_of(env, e.id) == ["gm1"]
    # named approvers win over the role; the business-day reminder follows the same people
    e = env.publish("approval.requested", {**REQUEST, "approval_id": "A3", "approver_ids": ["gm1"]})
    assert recipients_of(env, e.id) == ["gm1"]
    reminders = env.deliveries(event_type="reminder.approval", channel="inbox")
    assert sorted(r.recipient for r in reminders) == ["gm1", "gm1", "mgr-east"]


def test_the_customer_gets_the_survey_link_when_a_ticket_is_resolved(make_env, smtp):
    env = make_env(SMTP_URL=smtp.url, NOTIFY_CSAT_URL="https://crm.example.cn/survey/{token}")
    env.publish("customer.created", {"customer_id": "c1", "name": "Acme", "email": "boss@acme.example",
                                     "phone": None, "language": "en", "revision": 1})
    e = env.publish("ticket.resolved", {"ticket_id": "T7", "customer_id": "c1", "type": "complaint",
                                        "priority": "high", "queue": "complaints", "subject": "Login slow",
                                        "csat_token": "tok/1+2", "csat_expires_at": "2026-03-24T02:00:00+00:00"})
    # no mobile number: no SMS planned (nothing failed), just the email
    assert [(r.recipient, r.channel) for r in env.deliveries(event_id=e.id)] == [("customer:c1", "email")]
    env.send_due()
    [(rcpts, msg)] = smtp.messages
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert rcpts == ["boss@acme.example"] and "T7" in text
    assert re.search(r"https://crm\.example\.cn/survey/tok%2F1%2B2\b", text), text
    # a customer notify does not know, or a resolution without a survey: nothing for the customer
    e = env.publish("ticket.resolved", {"ticket_id": "T8", "customer_id": "c9", "type": "complaint",
                                        "priority": "high", "queue": "complaints", "csat_token": "t"})
    e2 = env.publish("ticket.resolved", {"ticket_id": "T9", "customer_id": "c1", "type": "complaint",
                                         "priority": "high", "queue": "complaints"})
    assert env.deliveries(event_id=e.id) == [] and env.deliveries(event_id=e2.id) == []


def test_the_owner_hears_of_the_churn_risk_flag_once(env):
    env.recipient("rep1")
    base = {"customer_id": "c1", "name": "Acme", "owner_id": "rep1", "churn_risk": True, "revision": 3,
            "churn_reason": "CSAT score 2 on ticket 7"}
    e = env.publish("customer.updated", {**base, "churn_risk_raised": True})
    later = env.publish("customer.updated", {**base, "revision": 4, "tier": "gold"})  # still at risk, not news
    [item] = env.deliveries(event_id=e.id, channel="inbox")
    assert item.recipient == "rep1" and "CSAT score 2" in item.body
    assert env.deliveries(event_id=later.id) == []


def test_an_overdue_payment_reaches_finance_and_the_owner(env):
    env.recipient("rep1", roles=["sales_rep"])
    env.recipient("fin1", roles=["finance"])
    env.recipient("fin2", roles=["finance", "admin"])
    e = env.publish("payment.overdue", {"installment_id": "I1", "contract_id": "K1", "customer_id": "c1",
                                        "owner_id": "rep1", "amount_due": "55000.00", "currency": "CNY",
                                        "due_date": "2026-03-01", "days_overdue": 1})
    assert recipients_of(env, e.id) == ["fin1", "fin2", "rep1"]
    assert recipients_of(env, e.id, "email") == ["fin1", "fin2", "rep1"]


def test_lead_events_name_the_team_by_its_code(env):
    env.recipient("mgr-east", roles=["sales_manager"], team_id="east")
    env.recipient("rep1")
    e = env.publish("lead.recycled", {"lead_id": "9", "team_id": "3", "team_code": "east", "owner_id": None,
                                      "previous_owner_id": "rep1", "rule": "no_follow_up"})
    assert recipients_of(env, e.id) == ["mgr-east", "rep1"]


def _customer_row(env):
    with env.rt.engine.connect() as c:
        return c.execute(select(models.recipients).where(models.recipients.c.id == "customer:c1")).first()


@pytest.mark.parametrize("order", [("customer.created", "customer.updated"), ("customer.updated", "customer.created")])
def test_the_customer_recipient_keeps_the_newest_revision(env, order):
    payloads = {"customer.created": {"customer_id": "c1", "name": "Old", "email": "old@acme.example",
                                     "owner_id": "rep1", "language": "zh-CN", "revision": 1},
                "customer.updated": {"customer_id": "c1", "name": "New", "email": "new@acme.example",
                                     "owner_id": "rep2", "language": "en", "revision": 2}}
    for event_type in order:
        env.publish(event_type, payloads[event_type])
    row = _customer_row(env)
    assert (row.name, row.email, row.owner_id, row.language, row.revision) == (
        "New", "new@acme.example", "rep2", "en", 2)


def test_one_reminder_per_waiting_step_whoever_reminds_first(env):
    env.recipient("gm1", roles=["general_manager"])
    req = {**REQUEST, "approval_id": "A9", "approver_role": "general_manager", "approver_team": None}
    env.publish("approval.requested", req)
    # sales' reminder comes before ours: it goes out, ours is cancelled, none is scheduled anew
    e = env.publish("approval.requested", {**req, "reminder": True})
    assert recipients_of(env, e.id) == ["gm1"]
    assert {r.status for r in env.deliveries(event_type="reminder.approval")} == {"cancelled"}
    # ours went out first (another step): sales' reminder is not sent to people again
    req2 = {**req, "step": 2}
    env.publish("approval.requested", req2)
    env.clock.advance(days=4)
    env.send_due()
    assert {r.status for r in env.deliveries(event_type="reminder.approval", channel="inbox")
            if r.reason_key == "approval:A9:2"} == {"sent"}
    e = env.publish("approval.requested", {**req2, "reminder": True})
    assert env.deliveries(event_id=e.id) == []
