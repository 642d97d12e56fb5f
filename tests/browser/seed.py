"""Data the browser tests start from, written through the gateway's public APIs as the people who
would enter it (an admin, a rep, a supervisor), never into a database."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import requests

from crm_shared.config import DEV_JWT_SECRET
from crm_shared.testing import wait_until
from crm_shared.web.auth import dev_token

USERS = {u["id"]: u for u in json.loads((Path(__file__).resolve().parents[2] / "frontends/common/dev-users.json")
                                        .read_text(encoding="utf-8"))}


class Client:
    def __init__(self, base: str, user_id: str):
        u = USERS[user_id]
        self.base, self.user = base, u
        token = dev_token(DEV_JWT_SECRET, u["id"], u["name"], u["roles"], u.get("team"), u.get("lang", "zh-CN"))
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, expect=(200, 201), **kw):
        r = self.s.request(method, self.base + path, timeout=15, **kw)
        assert r.status_code in expect, f"{method} {path}: {r.status_code} {r.text[:500]}"
        return r.json() if r.content and "json" in r.headers.get("Content-Type", "") else None

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, json=body if body is not None else {}, **kw)


def seed(base: str) -> dict:
    admin, rep, sup = Client(base, "admin"), Client(base, "rep-li"), Client(base, "sup-zhao")
    today = date.today()
    out: dict = {}

    # the staff directory (notify's recipients): the consoles show these names instead of user ids
    for u in USERS.values():
        admin.call("PUT", f"/notify/v1/recipients/{u['id']}", json={
            "name": u["name"], "roles": u["roles"], "team_id": u.get("team"), "language": u.get("lang", "zh-CN")})

    # leads: a team for the reps, a pool without the new-entry embargo, a pooled lead and a rep's own
    admin.post("/leads/v1/teams", {"name": "华东销售", "code": "east", "strategy": "round_robin", "members": [
        {"user_id": "rep-li", "name": "李雷"}, {"user_id": "rep-han", "name": "韩梅梅"}]})
    admin.call("PUT", "/leads/v1/pool-policy", json={"new_entry_embargo_hours": 0})
    campaign = admin.post("/leads/v1/campaigns", {"name": "2026 秋季工业展", "source": "exhibition", "currency": "CNY",
                                                  "budget": 20000})
    admin.post(f"/leads/v1/campaigns/{campaign['id']}/costs", {"amount": 15000, "incurred_on": today.isoformat(),
                                                                "note": "展位"})
    out["campaign"] = campaign
    pooled = admin.post("/leads/v1/leads", {"name": "赵六", "company": "苏州精密机械有限公司", "phone": "13912345678",
                                           "city": "苏州", "province": "江苏", "source": "exhibition",
                                           "campaign_id": int(campaign["id"])})
    assert pooled["status"] == "pooled", pooled
    out["pooled_lead"] = pooled
    own = rep.post("/leads/v1/leads", {"name": "钱七", "company": "杭州云帆科技", "phone": "13800001111", "city": "杭州",
                                      "source": "phone_in"})
    # due within the hour, but today in the machine's zone, which the browsers use: the today board
    # counts follow-ups up to the end of the browser's day, and an hour later failed after 23:00
    now = datetime.now().astimezone()
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    soon = min(now + timedelta(hours=1), midnight - timedelta(minutes=2)).isoformat()
    rep.post(f"/leads/v1/leads/{own['id']}/follow-ups", {"channel": "call", "note": "约了下周演示",
                                                          "next_follow_up_at": soon})
    out["own_lead"] = own

    # sales: products, a customer of the rep with an opportunity and a quote waiting for the manager
    admin.post("/sales/v1/products", {"sku": "CRM-STD", "name": "CRM 标准版", "list_price": "12000.00", "currency": "CNY"})
    admin.post("/sales/v1/products", {"sku": "CRM-PRO", "name": "CRM 专业版", "list_price": "30000.00", "currency": "CNY"})
    cust = rep.post("/sales/v1/customers", {"name": "宁波海港物流", "company": "宁波海港物流", "city": "宁波",
                                           "phone": "13700002222"})
    opp = rep.post("/sales/v1/opportunities", {"customer_id": cust["id"], "name": "海港物流 CRM 项目",
                                               "expected_amount": "60000.00", "currency": "CNY",
                                               "expected_close": (today + timedelta(days=30)).isoformat()})
    quote = rep.post("/sales/v1/quotes", {"opportunity_id": opp["id"], "currency": "CNY", "lines": [
        {"sku": "CRM-PRO", "quantity": "2", "discount_pct": "15"}]})
    rep.post(f"/sales/v1/quotes/{quote['id']}/submit")
    out.update(customer=cust, opportunity=opp, quote=quote)

    # a signed contract (from a quote without a discount): an order for back office, a payment plan
    opp2 = rep.post("/sales/v1/opportunities", {"customer_id": cust["id"], "name": "海港物流 续费",
                                                "expected_amount": "12000.00", "currency": "CNY"})
    q2 = rep.post("/sales/v1/quotes", {"opportunity_id": opp2["id"], "currency": "CNY",
                                       "lines": [{"sku": "CRM-STD", "quantity": "1"}]})
    q2 = rep.post(f"/sales/v1/quotes/{q2['id']}/submit")
    contract = rep.post("/sales/v1/contracts", {"quote_id": q2["id"], "start_date": today.isoformat(),
                                                "end_date": (today + timedelta(days=45)).isoformat(),
                                                "payment_plan": [
                                                    {"due_date": (today - timedelta(days=10)).isoformat(), "amount": "6000.00"},
                                                    {"due_date": (today + timedelta(days=20)).isoformat(), "amount": "6000.00"}]})
    rep.post(f"/sales/v1/contracts/{contract['id']}/submit")
    contract = rep.post(f"/sales/v1/contracts/{contract['id']}/sign", {"signed_on": (today - timedelta(days=12)).isoformat()})
    out["contract"] = contract
    ops = Client(base, "ops-zhang")
    out["order"] = wait_until(lambda: next(iter(ops.get("/sales/v1/orders", params={"status": "submitted"})), None),
                              timeout=20, message="the order of the signed contract")

    # service desk: an agent on the complaints queue and a ticket of the customer (waits for the read model)
    sup.post("/service-desk/v1/agents", {"user_id": "agent-liu", "name": "刘洋", "skills": ["complaints", "inquiries"],
                                         "max_open": 10})
    # the complaints queue's supervisor: tickets escalate to them (by hand, or on an SLA breach)
    sup.call("PUT", "/service-desk/v1/queues/complaints", json={"supervisor_id": "sup-zhao"})
    sup.post("/service-desk/v1/agents", {"user_id": "agent-sun", "name": "孙丽", "skills": ["complaints"], "max_open": 10})
    wait_until(lambda: sup.get(f"/service-desk/v1/customers/{cust['id']}").get("known"), timeout=20,
               message="service-desk knows the customer")
    ticket = sup.post("/service-desk/v1/tickets", {"customer_id": str(cust["id"]), "type": "complaint", "channel": "phone",
                                                  "priority": "high", "subject": "系统登录缓慢",
                                                  "description": "客户反映早上登录需要一分钟。"})
    out["ticket"] = ticket
    return out
