"""The whole business flow across the four services, end to end (issue 7, "The flow"), on the real
processes (gunicorn web + worker per service) of the embedded default and of PostgreSQL + RabbitMQ.

The test drives the platform only through the services' HTTP APIs, as the department frontends
would, and checks each hand-over where the people involved see it: their in-app inbox and their
mail (a local SMTP catcher), the customer's mail (the satisfaction survey link), and the other
services' read models. Time-based steps (overdue payment, renewal window, lead recycling) move the
shared development clock (CRM_CLOCK_FILE); the workers run their jobs as soon as it moves.

At the end every event published is checked to have been consumed by every service bound to it,
and nothing was delivered twice. With CRM_RESULTS_DIR set, the counts go to flow.json there."""
from __future__ import annotations

import email
import json
import os
import re
import threading
import time
from collections import Counter, defaultdict
from datetime import date, timedelta
from email import policy

import pytest
from sqlalchemy import create_engine, select

from crm_shared import clock
from crm_shared.demo import Api, User, wait_for
from crm_shared.events.catalogue import CONSUMERS
from crm_shared.platform import free_port

pytestmark = [pytest.mark.slow, pytest.mark.reliability]  # its counts go into docs/RELIABILITY.md

ADMIN = User("admin", "系统管理员", ("admin",), email="admin@crm.example.cn")
MANAGER = User("m.zhang", "张伟", ("sales_manager",), "east", email="zhang.wei@crm.example.cn")
REP_A = User("r.li", "李娜", ("sales_rep",), "east", email="li.na@crm.example.cn")
REP_B = User("r.smith", "John Smith", ("sales_rep",), "east", "en", email="john.smith@crm.example.cn")
GM = User("gm.chen", "陈刚", ("general_manager",), email="chen.gang@crm.example.cn")
FINANCE = User("f.liu", "刘洋", ("finance",), email="liu.yang@crm.example.cn")
OPS = User("ops.zhao", "赵磊", ("ops",), email="zhao.lei@crm.example.cn")
AGENT = User("a.sun", "孙丽", ("service_agent",), email="sun.li@crm.example.cn")
SUPERVISOR = User("s.zhou", "周敏", ("service_supervisor",), email="zhou.min@crm.example.cn")
STAFF = (ADMIN, MANAGER, REP_A, REP_B, GM, FINANCE, OPS, AGENT, SUPERVISOR)
CUSTOMER_EMAIL = "wang.jianguo@mingyuan-trading.example.cn"
WAIT = 45  # seconds for one hand-over (events cross a relay, a bus and a consumer, then dispatch)


class MailCatcher:
    """A local SMTP server: what notify mails, as the recipients' mailboxes would get it."""

    def __init__(self):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.lock = threading.Lock()
        catcher = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                msg = email.message_from_bytes(envelope.content, policy=policy.default)
                with catcher.lock:
                    catcher.messages.append((list(envelope.rcpt_tos), msg))
                return "250 OK"

        from aiosmtpd.controller import Controller
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def to(self, address: str) -> list:
        with self.lock:
            return [m for rcpts, m in self.messages if address in rcpts]

    def text(self, msg) -> str:
        part = msg.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""


@pytest.fixture
def mail():
    m = MailCatcher()
    m.controller.start()
    yield m
    m.controller.stop()


class Flow:
    """What the steps share: the API client, the platform, and what was created so far."""

    def __init__(self, api: Api, platform, mail: MailCatcher):
        self.api, self.p, self.mail = api, platform, mail
        self.users = {u.id: u for u in STAFF}

    # -- reading what people see ----------------------------------------------------------------
    def inbox(self, user: User, event_type: str | None = None) -> list[dict]:
        items = self.api.get(user, "notify", "/v1/inbox")["items"]
        return [i for i in items if event_type is None or i["event_type"] == event_type]

    def told(self, user: User, event_type: str, what: str = "", **refs) -> dict:
        """Wait until `user` has an inbox item of `event_type` about `refs` (ids as strings)."""
        def found():
            for item in self.inbox(user, event_type):
                if all(str(item["refs"].get(k)) == str(v) for k, v in refs.items()):
                    return item
            return None
        return wait_for(found, WAIT, what=f"{user.id} told of {event_type} {refs} {what}")

    def mailed(self, address: str, pattern: str) -> str:
        """Wait for a mail to `address` whose subject or text matches; returns its text."""
        def found():
            for m in self.mail.to(address):
                text = f"{m['Subject']}\n{self.mail.text(m)}"
                if re.search(pattern, text):
                    return text
            return None
        return wait_for(found, WAIT, what=f"mail to {address} matching {pattern!r}")

    def today(self) -> date:
        return clock.FileClock(self.p.clock_file).now().date()

    def move_clock(self, **delta) -> None:
        clock.advance(self.p.clock_file, **delta)


# -- the eight steps of the issue -------------------------------------------------------------------

def step1_team_rule_and_a_web_lead(f: Flow) -> dict:
    api = f.api
    for u in STAFF:  # the identity sync: who can be reached, with which roles and team
        api.put(ADMIN, "notify", f"/v1/recipients/{u.id}", {
            "name": u.name, "email": u.email, "language": u.lang, "roles": list(u.roles), "team_id": u.team})
    team = api.post(MANAGER, "leads", "/v1/teams", {
        "name": "华东销售一组", "code": "east", "strategy": "round_robin",
        "members": [{"user_id": REP_A.id, "name": REP_A.name}, {"user_id": REP_B.id, "name": REP_B.name}]}, expect=201)
    api.post(MANAGER, "leads", "/v1/routing-rules", {"priority": 10, "conditions": {"province": ["上海"]},
                                                     "team_id": int(team["id"])}, expect=201)
    source = api.post(MANAGER, "leads", "/v1/sources", {"name": "官网表单", "source": "website"}, expect=201)
    f.source_key = source["key"]
    answer = api.post(None, "leads", f"/v1/intake/{f.source_key}", {
        "name": "王建国", "company": "上海明远贸易有限公司", "phone": "13812345678", "email": CUSTOMER_EMAIL,
        "province": "上海", "city": "上海", "industry": "贸易", "note": "想了解 CRM 专业版报价"}, expect=202)
    assert answer == {"status": "received"}
    lead = wait_for(lambda: [x for x in api.get(MANAGER, "leads", "/v1/leads")["items"] if x["name"] == "王建国"],
                    WAIT, what="the web lead")[0]
    assert lead["source"] == "website" and lead["team_id"] == team["id"] and lead["status"] == "new"
    assert lead["owner_id"] in (REP_A.id, REP_B.id)
    f.rep = f.users[lead["owner_id"]]
    f.other_rep = REP_B if f.rep is REP_A else REP_A
    f.lead = lead
    item = f.told(f.rep, "lead.assigned", lead_id=lead["id"])
    assert "王建国" in item["title"]
    f.mailed(f.rep.email, "王建国|New lead")
    return lead


def step2_the_customer_calls_again(f: Flow) -> None:
    # the other rep takes the call and types the number the way the caller says it
    dup = f.api.post(f.other_rep, "leads", "/v1/leads", {
        "name": "王先生", "phone": "+86 138-1234-5678", "source": "phone_in"}, expect=409)
    assert dup["duplicate_of"] == f.lead["id"] and dup["matched_on"] == "phone"
    assert dup["owner_name"] == f.rep.name
    f.told(f.rep, "lead.duplicate_hit", lead_id=f.lead["id"])
    assert f.api.get(f.rep, "leads", f"/v1/leads/{f.lead['id']}")["duplicate_hits"] == 1
    # nobody else's leads grew: the other rep has none
    assert f.api.get(f.other_rep, "leads", "/v1/leads")["total"] == 0


def step3_follow_ups_and_conversion(f: Flow) -> None:
    api, lid = f.api, f.lead["id"]
    api.post(f.rep, "leads", f"/v1/leads/{lid}/follow-ups", {
        "channel": "call", "note": "客户有意向，约周四上门演示", "outcome": "interested",
        "next_follow_up_at": (clock.FileClock(f.p.clock_file).now() + timedelta(days=2)).isoformat()}, expect=201)
    api.post(f.rep, "leads", f"/v1/leads/{lid}/follow-ups", {"channel": "visit", "note": "上门演示，客户认可"}, expect=201)
    api.post(f.rep, "leads", f"/v1/leads/{lid}/status", {"status": "qualified"})
    converted = api.post(f.rep, "leads", f"/v1/leads/{lid}/convert", {
        "opportunity_name": "明远贸易 CRM 专业版年度订阅", "expected_amount": "120000.00", "currency": "CNY"})
    assert converted["status"] == "converted"

    def customer_of(user):
        rows = api.get(user, "sales", "/v1/customers")
        return [c for c in rows if c["lead_id"] == lid]
    customer = wait_for(lambda: customer_of(f.rep), WAIT, what="the customer in sales")[0]
    assert customer["owner_id"] == f.rep.id and customer["phone"] == "+8613812345678"
    assert customer["team_id"] == "east", "the customer belongs to the team as the tokens name it"
    assert customer_of(MANAGER), "the team's manager sees the customer converted from the team's lead"
    opps = [o for o in api.get(f.rep, "sales", "/v1/opportunities") if o["lead_id"] == lid]
    assert len(opps) == 1 and opps[0]["customer_id"] == customer["id"] and opps[0]["stage"] == "qualification"
    assert opps[0]["expected_amount"] == "120000.00" and opps[0]["team_id"] == "east"
    f.customer, f.opportunity = customer, opps[0]
    # leads learns the customer back (customer.created): the lead points at it
    wait_for(lambda: api.get(f.rep, "leads", f"/v1/leads/{lid}")["customer_id"] == str(customer["id"]), WAIT,
             what="the lead linked to its customer")


def step4_quote_through_three_approvals(f: Flow) -> None:
    api = f.api
    api.post(ADMIN, "sales", "/v1/products", {"sku": "CRM-PRO", "name": "CRM 专业版（年）",
                                              "list_price": "60000.00", "currency": "CNY"}, expect=201)
    api.post(ADMIN, "sales", "/v1/products", {"sku": "ONBOARD", "name": "上线培训服务",
                                              "list_price": "20000.00", "currency": "CNY"}, expect=201)
    quote = api.post(f.rep, "sales", "/v1/quotes", {"opportunity_id": f.opportunity["id"], "currency": "CNY", "lines": [
        {"sku": "CRM-PRO", "quantity": "2", "discount_pct": "25"}, {"sku": "ONBOARD", "quantity": "1"}]}, expect=201)
    assert quote["max_discount_pct"] == "25" and quote["total"] == "110000.00"
    quote = api.post(f.rep, "sales", f"/v1/quotes/{quote['id']}/submit")
    assert quote["status"] == "pending_approval"
    approval_id = quote["approvals"][-1]["id"]
    for step, approver in enumerate((MANAGER, GM, FINANCE), 1):
        item = f.told(approver, "approval.requested", approval_id=approval_id)
        assert f"{step}" in item["body"]
        f.mailed(approver.email, f"quote {quote['id']}")
        pending = api.get(approver, "sales", "/v1/approvals")
        assert [a["id"] for a in pending] == [approval_id]
        decided = api.post(approver, "sales", f"/v1/approvals/{approval_id}/decision",
                           {"decision": "approve", "step": step, "comment": "同意，注意回款节奏"})
        assert decided["final"] is (step == 3)
    # nobody else was asked: the other rep and ops got no approval request
    assert f.inbox(f.other_rep, "approval.requested") == [] and f.inbox(OPS, "approval.requested") == []
    assert api.get(f.rep, "sales", f"/v1/quotes/{quote['id']}")["status"] == "approved"
    wait_for(lambda: len(f.inbox(f.rep, "approval.decided")) == 3, WAIT, what="three decisions told to the rep")
    f.quote = quote


def step5_contract_order_onboarding(f: Flow) -> None:
    api, today = f.api, f.today()
    f.first_due = today + timedelta(days=10)
    f.end_date = today + timedelta(days=364)
    contract = api.post(f.rep, "sales", "/v1/contracts", {
        "quote_id": f.quote["id"], "start_date": str(today), "end_date": str(f.end_date),
        "payment_plan": [{"due_date": str(f.first_due), "amount": "55000.00"},
                         {"due_date": str(today + timedelta(days=180)), "amount": "55000.00"}]}, expect=201)
    assert api.post(f.rep, "sales", f"/v1/contracts/{contract['id']}/submit")["status"] == "approved"
    api.post(f.rep, "sales", f"/v1/contracts/{contract['id']}/sign", {"signed_on": str(today)})
    f.contract = api.get(f.rep, "sales", f"/v1/contracts/{contract['id']}")
    assert f.contract["status"] == "active" and len(f.contract["payment_plan"]) == 2
    f.told(f.rep, "contract.signed", contract_id=contract["id"])
    # back office hears of the order and fulfils it
    f.told(OPS, "order.submitted", contract_id=contract["id"])
    orders = [o for o in api.get(OPS, "sales", "/v1/orders") if str(o["contract_id"]) == str(contract["id"])]
    assert len(orders) == 1 and orders[0]["status"] == "submitted"
    order_id = orders[0]["id"]
    api.post(OPS, "sales", f"/v1/orders/{order_id}/start")
    api.post(OPS, "sales", f"/v1/orders/{order_id}/fulfil", {"note": "已开通 2 个专业版租户，已录入 ERP"})
    f.told(f.rep, "order.fulfilled", order_id=order_id)
    # the service desk opens the onboarding ticket for the customer by itself
    cid = str(f.customer["id"])
    tickets = wait_for(lambda: api.get(SUPERVISOR, "service-desk", "/v1/tickets",
                                       params={"customer_id": cid, "type": "onboarding"}), WAIT,
                       what="the onboarding ticket")
    assert len(tickets) == 1 and tickets[0]["queue"] == "onboarding" and tickets[0]["order_id"] == str(order_id)
    f.onboarding = tickets[0]
    # and knows the customer and the contract from sales' events
    seen = wait_for(lambda: (c := api.get(SUPERVISOR, "service-desk", f"/v1/customers/{cid}")).get("known")
                    and c["active_contracts"] and c, WAIT, what="the service desk's customer read model")
    assert seen["owner_id"] == f.rep.id and seen["team_id"] == "east"
    assert [c["contract_id"] for c in seen["active_contracts"]] == [str(contract["id"])]


def step6_complaint_csat_churn_risk(f: Flow) -> None:
    api, cid = f.api, str(f.customer["id"])
    api.post(SUPERVISOR, "service-desk", "/v1/agents", {"user_id": AGENT.id, "name": AGENT.name,
                                                        "skills": ["complaints", "onboarding"], "max_open": 10},
             expect=201)
    api.put(SUPERVISOR, "service-desk", "/v1/queues/complaints", {"supervisor_id": SUPERVISOR.id})
    ticket = api.post(AGENT, "service-desk", "/v1/tickets", {
        "customer_id": cid, "type": "complaint", "priority": "high", "subject": "系统登录频繁超时",
        "description": "客户反映本周多次无法登录，影响开单", "channel": "phone"}, expect=201)
    assert ticket["queue"] == "complaints" and ticket["assignee_id"] == AGENT.id
    f.told(AGENT, "ticket.assigned", ticket_id=ticket["id"])
    wait_for(lambda: [c for c in api.get(f.rep, "sales", "/v1/customers") if c["id"] == f.customer["id"]
                      and c["open_complaints"] == 1], WAIT, what="sales seeing the open complaint")
    api.post(AGENT, "service-desk", f"/v1/tickets/{ticket['id']}/comments",
             {"body": "已定位为单点登录配置问题，已修复，请再试。", "public": True}, expect=201)
    resolved = api.post(AGENT, "service-desk", f"/v1/tickets/{ticket['id']}/status",
                        {"status": "resolved", "note": "配置已修复"})
    assert resolved["status"] == "resolved"
    f.told(f.rep, "ticket.resolved", ticket_id=ticket["id"])
    # the customer's mail carries the survey link; the link takes the score
    text = f.mailed(CUSTOMER_EMAIL, str(ticket["id"]))
    link = re.search(r"https?://\S+/v1/csat/[\w\-]+", text)
    assert link, text
    survey = f.api.http.get(link.group(0), timeout=10)
    assert survey.status_code == 200, survey.text
    answer = f.api.http.post(link.group(0), json={"score": 2, "comment": "问题解决太慢"}, timeout=10)
    assert answer.status_code in (200, 201), answer.text
    # sales flags the churn risk; the owner hears of the low score and of the flag
    flagged = wait_for(lambda: [c for c in api.get(f.rep, "sales", "/v1/customers", params={"churn_risk": "true"})
                                if c["id"] == f.customer["id"]], WAIT, what="the churn-risk flag")[0]
    assert "CSAT" in flagged["churn_reason"] and flagged["open_complaints"] == 0
    f.told(f.rep, "csat.submitted", ticket_id=ticket["id"])
    f.told(f.rep, "customer.updated", customer_id=cid)
    f.mailed(f.rep.email, "流失风险|Churn risk")
    f.complaint = ticket
    # on the phone the customer mentioned a new need: the agent passes it on, the owner gets a lead
    api.post(AGENT, "service-desk", f"/v1/tickets/{ticket['id']}/referral",
             {"note": "想增加 10 个坐席并开通数据分析模块", "customer_name": "王建国"}, expect=(201, 202))
    referral = wait_for(lambda: [x for x in api.get(f.rep, "leads", "/v1/leads")["items"] if x["source"] == "referral"],
                        WAIT, what="the referral lead")[0]
    assert referral["owner_id"] == f.rep.id and referral["referrer_customer_id"] == cid
    f.told(f.rep, "lead.assigned", lead_id=referral["id"])


def step7_overdue_payment_and_renewal(f: Flow) -> None:
    api, contract_id = f.api, f.contract["id"]
    installment = f.contract["payment_plan"][0]
    f.move_clock(days=(f.first_due - f.today()).days + 1)  # a day after the first installment was due
    for who in (FINANCE, f.rep):
        item = f.told(who, "payment.overdue", installment_id=installment["id"])
        assert "55000.00" in item["body"]
    f.mailed(FINANCE.email, f"contract {contract_id}|合同 {contract_id}")
    aging = api.get(FINANCE, "sales", "/v1/reports/receivables-aging")
    assert aging["total"]["1_30"] == "55000.00"
    # finance books the money: both installments, so the later jumps raise no new alarm
    paid = api.post(FINANCE, "sales", f"/v1/contracts/{contract_id}/payments", {
        "amount": "110000.00", "paid_on": str(f.today()), "reference": "BANK-2026-0001"}, expect=201)
    assert len(paid["allocations"]) == 2
    f.told(f.rep, "payment.received", contract_id=contract_id)
    # the contract enters its renewal window (30 days before its end)
    f.move_clock(days=(f.end_date - f.today()).days - 20)
    item = f.told(f.rep, "contract.expiring", contract_id=contract_id)
    assert str(f.end_date) in item["body"]
    f.mailed(f.rep.email, "即将到期|expiring")
    assert api.get(f.rep, "sales", f"/v1/contracts/{contract_id}")["status"] == "expiring"
    cid = str(f.customer["id"])
    wait_for(lambda: [c for c in api.get(SUPERVISOR, "service-desk", f"/v1/customers/{cid}")["active_contracts"]
                      if c["status"] == "expiring"], WAIT, what="the service desk seeing the contract expiring")


def step8_a_lead_left_alone_returns_to_the_pool(f: Flow) -> None:
    api = f.api
    api.post(None, "leads", f"/v1/intake/{f.source_key}", {
        "name": "Emily Clark", "company": "Northwind Traders (Shanghai)", "email": "emily.clark@northwind.example.com",
        "phone": "+1 415 555 0134", "province": "上海", "city": "上海", "industry": "Retail"}, expect=202)
    lead = wait_for(lambda: [x for x in api.get(MANAGER, "leads", "/v1/leads")["items"] if x["name"] == "Emily Clark"],
                    WAIT, what="the second web lead")[0]
    owner = f.users[lead["owner_id"]]
    f.told(owner, "lead.assigned", lead_id=lead["id"])
    f.move_clock(days=5, hours=12)  # inside the warning window (7 days without follow-up, warned 2 before)
    f.told(owner, "lead.recycle_warning", lead_id=lead["id"])
    still = api.get(owner, "leads", f"/v1/leads/{lead['id']}")
    assert still["status"] == "new" and still["owner_id"] == owner.id
    f.move_clock(days=2)
    f.told(owner, "lead.recycled", lead_id=lead["id"])
    f.told(MANAGER, "lead.recycled", lead_id=lead["id"])  # the team's manager, by the team's code
    pooled = wait_for(lambda: [x for x in api.get(f.other_rep, "leads", "/v1/pool")["items"] if x["id"] == lead["id"]],
                      WAIT, what="the lead in the pool")
    assert pooled[0]["owner_id"] is None and pooled[0]["masked"]
    kinds = [h["kind"] for h in api.get(MANAGER, "leads", f"/v1/leads/{lead['id']}/history")["items"]]
    assert kinds.index("recycle_warning") < kinds.index("recycled")


STEPS = (step1_team_rule_and_a_web_lead, step2_the_customer_calls_again, step3_follow_ups_and_conversion,
         step4_quote_through_three_approvals, step5_contract_order_onboarding, step6_complaint_csat_churn_risk,
         step7_overdue_payment_and_renewal, step8_a_lead_left_alone_returns_to_the_pool)


# -- the accounts --------------------------------------------------------------------------------------

def _rows(url: str, query) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return c.execute(query).all()
    finally:
        engine.dispose()


def account(f: Flow) -> dict:
    """Every event published reached every service bound to it, once; count what people got."""
    from crm_shared import service as services
    tables = {n: services.load(n).metadata.tables for n in f.p.services}
    urls = {n: s.database_url for n, s in f.p.services.items()}

    def published():
        out = {}
        for n in f.p.services:
            ob = tables[n]["outbox"]
            rows = _rows(urls[n], select(ob.c.event_id, ob.c.event_type, ob.c.published_at))
            if any(r.published_at is None for r in rows):
                return None
            out.update({r.event_id: r.event_type for r in rows})
        return out

    events = wait_for(published, WAIT, what="every outbox row published")

    def missing():
        gaps = {}
        for n in f.p.services:
            done = {r.event_id for r in _rows(urls[n], select(tables[n]["processed_events"].c.event_id))}
            want = {e for e, t in events.items() if n in CONSUMERS.get(t, ())}
            if want - done:
                gaps[n] = sorted(want - done)
        return gaps

    try:
        wait_for(lambda: not missing(), WAIT, what="every event consumed by each of its consumers")
    except AssertionError:
        pass  # counted below, and the test fails on it
    gaps = missing()
    inbox = {u.id: f.inbox(u) for u in STAFF}
    inbox_dupes = sum(n - 1 for items in inbox.values()
                      for n in Counter(i["event_id"] for i in items).values())
    deliveries_seen = Counter(m["X-CRM-Delivery"] for _, m in f.mail.messages)
    mails = defaultdict(int)
    for rcpts, _ in f.mail.messages:
        for r in rcpts:
            mails[r] += 1
    consumed = {n: len(_rows(urls[n], select(tables[n]["processed_events"].c.event_id))) for n in f.p.services}
    return {
        "backend": f.backend,
        "events_published": dict(sorted(Counter(events.values()).items())),
        "events_published_total": len(events),
        "events_consumed_per_service": consumed,
        "events_not_consumed": sum(len(v) for v in gaps.values()),
        "not_consumed": {n: [events[e] for e in ids] for n, ids in gaps.items()},
        "inbox_items_per_recipient": {k: len(v) for k, v in sorted(inbox.items()) if v},
        "emails_per_recipient": dict(sorted(mails.items())),
        "duplicates": inbox_dupes + sum(n - 1 for n in deliveries_seen.values()),
    }


def test_the_whole_flow_through_the_http_apis(platform_factory, mail):
    # the accounts read every outbox and inbox row at the end: the clock moves a year, so the
    # retention jobs (7 and 30 days by default) would have removed the early ones
    p = platform_factory(env={"SMTP_URL": mail.url, "NOTIFY_RETRY_BASE_SECONDS": "2",
                              "OUTBOX_RETENTION_DAYS": "0", "INBOX_RETENTION_DAYS": "0"})
    f = Flow(Api({n: p.url(n) for n in p.services}), p, mail)
    f.backend = platform_factory.backend
    took = {}
    for step in STEPS:
        started = time.monotonic()
        step(f)
        took[step.__name__] = round(time.monotonic() - started, 1)
    counts = account(f)
    counts["seconds_per_step"] = took
    assert counts["events_not_consumed"] == 0, counts["not_consumed"]
    assert counts["duplicates"] == 0, counts
    assert p.exited() == [], p.exited()
    for t in ("lead.assigned", "lead.converted", "customer.created", "approval.requested", "contract.signed",
              "order.fulfilled", "ticket.resolved", "csat.submitted", "payment.overdue", "contract.expiring",
              "lead.recycle_warning", "lead.recycled"):
        assert counts["events_published"].get(t), (t, counts["events_published"])
    print(json.dumps(counts, ensure_ascii=False, indent=1))
    results = os.environ.get("CRM_RESULTS_DIR")
    if results:
        os.makedirs(results, exist_ok=True)
        path = os.path.join(results, "flow.json")
        data = json.load(open(path, encoding="utf-8")) if os.path.exists(path) else {}
        data[f.backend] = counts
        with open(path, "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False, indent=2, sort_keys=True)
