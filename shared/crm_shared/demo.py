"""`crm demo`: realistic sample data walked through the whole flow of a RUNNING platform, through
the services' HTTP APIs only (as the department frontends would). Also the small HTTP client the
end-to-end tests use."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import date, timedelta

import requests

from .config import Settings


class ApiError(AssertionError):
    def __init__(self, method, url, status, body):
        super().__init__(f"{method} {url} -> {status}: {body}")
        self.status, self.body = status, body


@dataclass(frozen=True)
class User:
    id: str
    name: str
    roles: tuple[str, ...]
    team: str | None = None
    lang: str = "zh-CN"
    email: str | None = None
    mobile: str | None = None


class Api:
    """Calls the services as a given user (a development token per user, signed with the
    platform's CRM_JWT_SECRET)."""

    def __init__(self, urls: dict[str, str], secret: str | None = None, timeout: float = 15):
        self.urls = urls
        self.secret = secret or Settings.from_env("cli").jwt_secret
        self.timeout = timeout
        self.http = requests.Session()
        self._tokens: dict[str, str] = {}

    def token(self, user: User) -> str:
        if user.id not in self._tokens:
            from .web.auth import dev_token
            self._tokens[user.id] = dev_token(self.secret, user.id, user.name, list(user.roles), user.team, user.lang,
                                              timedelta(hours=12))
        return self._tokens[user.id]

    def call(self, user: User | None, method: str, service: str, path: str, *, json=None, params=None,
             expect=(200, 201, 202, 204)):
        url = self.urls[service] + path
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user is not None else {}
        r = self.http.request(method, url, json=json, params=params, headers=headers, timeout=self.timeout)
        body = r.json() if r.content and "json" in r.headers.get("Content-Type", "") else r.text
        if expect is not None and r.status_code not in ((expect,) if isinstance(expect, int) else expect):
            raise ApiError(method, url, r.status_code, body)
        return body

    def get(self, user, service, path, **kw):
        return self.call(user, "GET", service, path, **kw)

    def post(self, user, service, path, json=None, **kw):
        return self.call(user, "POST", service, path, json=json if json is not None else {}, **kw)

    def put(self, user, service, path, json=None, **kw):
        return self.call(user, "PUT", service, path, json=json, **kw)

    def patch(self, user, service, path, json=None, **kw):
        return self.call(user, "PATCH", service, path, json=json, **kw)


def wait_for(fetch, timeout: float = 30.0, interval: float = 0.2, what: str = "it"):
    """Poll `fetch()` until it returns something truthy; its last value otherwise, in the error."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fetch()
        except ApiError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


# -- the demo ------------------------------------------------------------------------------------

# The cast: the same ids and names as the consoles' development user picker
# (frontends/common/dev-users.json), so picking 李雷 at http://127.0.0.1:8080/app/ shows his demo
# leads, customers and inbox; plus an English-speaking rep and a second team in the north.
ADMIN = User("admin", "Admin", ("admin",), lang="en", email="admin@demo.crm.local")
STAFF = (
    ADMIN,
    User("mgr-wang", "王强", ("sales_manager",), "east", email="wang.qiang@demo.crm.local", mobile="+8613700000001"),
    User("rep-li", "李雷", ("sales_rep",), "east", email="li.lei@demo.crm.local", mobile="+8613700000002"),
    User("rep-han", "韩梅梅", ("sales_rep",), "east", email="han.meimei@demo.crm.local", mobile="+8613700000003"),
    User("rep-smith", "John Smith", ("sales_rep",), "east", "en", email="john.smith@demo.crm.local"),
    User("mgr-brown", "Emma Brown", ("sales_manager",), "north", "en", email="emma.brown@demo.crm.local"),
    User("rep-gao", "高峰", ("sales_rep",), "north", email="gao.feng@demo.crm.local"),
    User("rep-garcia", "Maria Garcia", ("sales_rep",), "north", "en", email="maria.garcia@demo.crm.local"),
    User("gm-zhou", "周敏", ("general_manager", "service_supervisor"), email="zhou.min@demo.crm.local"),
    User("fin-chen", "陈静", ("finance",), email="chen.jing@demo.crm.local"),
    User("ops-zhang", "张伟", ("ops",), email="zhang.wei@demo.crm.local"),
    User("agent-sun", "孙丽", ("service_agent",), email="sun.li@demo.crm.local"),
    User("agent-liu", "刘洋", ("service_agent",), email="liu.yang@demo.crm.local"),
    User("sup-zhao", "赵军", ("service_supervisor",), email="zhao.jun@demo.crm.local"),
)
PEOPLE = {u.id: u for u in STAFF}

TEAMS = [
    {"name": "华东销售一组", "code": "east", "strategy": "round_robin", "provinces": ["上海", "江苏", "浙江"],
     "members": ["rep-li", "rep-han", "rep-smith"]},
    {"name": "North China Sales", "code": "north", "strategy": "least_loaded", "provinces": ["北京", "天津", "河北"],
     "members": ["rep-gao", "rep-garcia"]},
]

PRODUCTS = [("CRM-PRO", "CRM 专业版（年）/ CRM Professional (year)", "60000.00"),
            ("CRM-ENT", "CRM 企业版（年）/ CRM Enterprise (year)", "150000.00"),
            ("ONBOARD", "上线培训服务 / Onboarding training", "20000.00"),
            ("MIGRATE", "数据迁移服务 / Data migration", "30000.00")]

# web-form leads: name, company, phone, email, province, city, industry
LEADS = [
    ("王建国", "上海明远贸易有限公司", "13812345678", "wang.jianguo@mingyuan.example.cn", "上海", "上海", "贸易"),
    ("Emily Clark", "Northwind Traders (Shanghai) Co., Ltd.", "+86 21 6288 0134", "emily.clark@northwind.example.com",
     "上海", "上海", "Retail"),
    ("陈晓燕", "杭州云帆科技有限公司", "13957112233", "chenxy@yunfan.example.cn", "浙江", "杭州", "软件"),
    ("李海峰", "苏州精工机械制造有限公司", "0512-6523 8899", "lihf@jinggong.example.cn", "江苏", "苏州", "制造"),
    ("Michael Chen", "Blue Harbor Logistics Ltd.", "+86 10 8457 2210", "m.chen@blueharbor.example.com",
     "北京", "北京", "Logistics"),
    ("张丽", "北京华信医疗器械有限公司", "13601234567", "zhangli@huaxin-med.example.cn", "北京", "北京", "医疗"),
    ("Sarah Johnson", "Greenfield Foods (Tianjin)", "+86 22 2335 7788", "sarah.j@greenfield.example.com",
     "天津", "天津", "Food"),
    ("赵明", "南京博远教育咨询有限公司", "18905178866", "zhaoming@boyuan.example.cn", "江苏", "南京", "教育"),
    ("孙伟", "深圳星河电子有限公司", "13723456789", "sunwei@xinghe.example.cn", "广东", "深圳", "电子"),
]


def urls_from_base(base: str) -> dict[str, str]:
    """`http://127.0.0.1` -> each service on its `make run` port; a base with a path (a gateway,
    `https://crm.example.cn`) -> one prefix per service, as the gateway routes them."""
    from . import service as services
    from urllib.parse import urlparse
    base = base.rstrip("/")
    parsed = urlparse(base)
    if parsed.port is None and parsed.path in ("", "/") and parsed.hostname in ("127.0.0.1", "localhost"):
        return {n: f"{base}:{services.load(n).port}" for n in services.installed()}
    return {n: f"{base}/{n}" for n in services.installed()}


class Demo:
    def __init__(self, api: Api, echo, clock_file: str | None = None, timeout: float = 30):
        self.api, self.echo, self.clock_file, self.timeout = api, echo, clock_file, timeout
        self.made: dict[str, list] = {}

    def note(self, kind: str, value) -> None:
        self.made.setdefault(kind, []).append(value)

    def wait(self, fetch, what: str):
        return wait_for(fetch, self.timeout, what=what)

    # ---------------------------------------------------------------------------------------------
    def people_and_teams(self) -> None:
        api = self.api
        for u in STAFF:
            api.put(ADMIN, "notify", f"/v1/recipients/{u.id}", {
                "name": u.name, "email": u.email, "mobile": u.mobile, "language": u.lang, "roles": list(u.roles),
                "team_id": u.team})
        for i, t in enumerate(TEAMS):
            manager = next(u for u in STAFF if u.team == t["code"] and "sales_manager" in u.roles)
            team = api.post(manager, "leads", "/v1/teams", {
                "name": t["name"], "code": t["code"], "strategy": t["strategy"],
                "members": [{"user_id": m, "name": PEOPLE[m].name} for m in t["members"]]}, expect=201)
            api.post(manager, "leads", "/v1/routing-rules", {"priority": 10 + i, "conditions": {"province": t["provinces"]},
                                                             "team_id": int(team["id"])}, expect=201)
            self.note("teams", team["name"])
        self.source_key = api.post(ADMIN, "leads", "/v1/sources", {"name": "官网表单 / website form",
                                                                   "source": "website"}, expect=201)["key"]
        for sku, name, price in PRODUCTS:
            api.post(ADMIN, "sales", "/v1/products", {"sku": sku, "name": name, "list_price": price, "currency": "CNY"},
                     expect=201)
        api.post(ADMIN, "service-desk", "/v1/agents", {"user_id": "agent-sun", "name": "孙丽",
                                                       "skills": ["complaints", "onboarding", "inquiries"]}, expect=201)
        api.post(ADMIN, "service-desk", "/v1/agents", {"user_id": "agent-liu", "name": "刘洋",
                                                       "skills": ["incidents", "inquiries", "onboarding"]}, expect=201)
        for queue in ("complaints", "incidents", "onboarding"):
            api.put(ADMIN, "service-desk", f"/v1/queues/{queue}", {"supervisor_id": "sup-zhao"})

    def leads(self) -> dict[str, dict]:
        api = self.api
        for name, company, phone, mail, province, city, industry in LEADS:
            api.post(None, "leads", f"/v1/intake/{self.source_key}", {
                "name": name, "company": company, "phone": phone, "email": mail, "province": province, "city": city,
                "industry": industry}, expect=202)
        # a rep's own contact from an exhibition, and a campaign lead entered by hand
        api.post(PEOPLE["rep-li"], "leads", "/v1/leads", {
            "name": "吴磊", "company": "宁波海天物流有限公司", "phone": "13586661234", "province": "浙江",
            "city": "宁波", "industry": "物流", "source": "exhibition", "note": "上海物流展现场交换名片"}, expect=201)

        def all_in():
            items = api.get(ADMIN, "leads", "/v1/leads", params={"per_page": 100})["items"]
            return {x["name"]: x for x in items} if len(items) >= len(LEADS) + 1 else None
        leads = self.wait(all_in, "the leads to be routed")
        self.made["leads"] = sorted(leads)
        # the customer calls again, the number written differently: the rep sees whose lead it is
        other = api.post(PEOPLE["rep-smith"], "leads", "/v1/leads", {
            "name": "王先生", "phone": "+86 138-1234-5678", "source": "phone_in"}, expect=409)
        self.note("duplicates", f"{other['matched_on']} -> lead {other['duplicate_of']} ({other['owner_name']})")
        return leads

    def follow_up_and_convert(self, lead: dict, deal: str, amount: str) -> dict:
        api, owner = self.api, PEOPLE[lead["owner_id"]]
        api.post(owner, "leads", f"/v1/leads/{lead['id']}/follow-ups", {
            "channel": "call", "note": "电话沟通需求 / first call about their needs", "outcome": "interested"}, expect=201)
        api.post(owner, "leads", f"/v1/leads/{lead['id']}/follow-ups", {
            "channel": "visit", "note": "上门演示 / on-site demo"}, expect=201)
        api.post(owner, "leads", f"/v1/leads/{lead['id']}/status", {"status": "qualified"})
        api.post(owner, "leads", f"/v1/leads/{lead['id']}/convert", {
            "opportunity_name": deal, "expected_amount": amount, "currency": "CNY"})
        customer = self.wait(lambda: [c for c in api.get(owner, "sales", "/v1/customers") if c["lead_id"] == lead["id"]],
                             f"the customer of lead {lead['id']}")[0]
        opp = [o for o in api.get(owner, "sales", "/v1/opportunities") if o["lead_id"] == lead["id"]][0]
        self.note("customers", customer["name"])
        return {"owner": owner, "customer": customer, "opportunity": opp}

    def quote(self, deal: dict, lines: list[dict]) -> dict:
        api = self.api
        q = api.post(deal["owner"], "sales", "/v1/quotes", {"opportunity_id": deal["opportunity"]["id"],
                                                            "currency": "CNY", "lines": lines}, expect=201)
        return api.post(deal["owner"], "sales", f"/v1/quotes/{q['id']}/submit")

    def approve_all(self, quote: dict, owner: User) -> None:
        api = self.api
        approval_id = quote["approvals"][-1]["id"]
        for step, who in enumerate((PEOPLE["mgr-wang" if owner.team == "east" else "mgr-brown"],
                                    PEOPLE["gm-zhou"], PEOPLE["fin-chen"]), 1):
            api.post(who, "sales", f"/v1/approvals/{approval_id}/decision", {
                "decision": "approve", "step": step, "comment": "同意 / approved"})

    def contract(self, deal: dict, quote: dict, start: date, end: date, plan: list[tuple[date, str]]) -> dict:
        api, owner = self.api, deal["owner"]
        c = api.post(owner, "sales", "/v1/contracts", {
            "quote_id": quote["id"], "start_date": str(start), "end_date": str(end),
            "payment_plan": [{"due_date": str(d), "amount": a} for d, a in plan]}, expect=201)
        api.post(owner, "sales", f"/v1/contracts/{c['id']}/submit")
        api.post(owner, "sales", f"/v1/contracts/{c['id']}/sign", {"signed_on": str(start)})
        return c

    def order_of(self, contract: dict) -> dict:
        ops = PEOPLE["ops-zhang"]
        return self.wait(lambda: [o for o in self.api.get(ops, "sales", "/v1/orders")
                                  if str(o["contract_id"]) == str(contract["id"])], "the order")[0]

    def run(self) -> dict:
        from .clock import Clock, FileClock
        started = time.monotonic()
        api = self.api
        if any(t["code"] == "east" for t in api.get(ADMIN, "leads", "/v1/teams")["items"]):
            self.echo("the demo data is already loaded (team 'east' exists); `make clean` starts over")
            return self.made
        self.echo("people, teams, routing rules, products, agents ...")
        self.people_and_teams()
        self.echo("leads from the website form, routed to the teams ...")
        leads = self.leads()
        self.echo("follow-ups, conversions, quotes in approval ...")
        today = (FileClock(self.clock_file) if self.clock_file else Clock()).now().date()
        mingyuan = self.follow_up_and_convert(leads["王建国"], "明远贸易 CRM 专业版年度订阅", "120000.00")
        northwind = self.follow_up_and_convert(leads["Emily Clark"], "Northwind CRM rollout", "260000.00")
        blue = self.follow_up_and_convert(leads["Michael Chen"], "Blue Harbor CRM renewal", "80000.00")
        q1 = self.quote(mingyuan, [{"sku": "CRM-PRO", "quantity": "2", "discount_pct": "25"},
                                   {"sku": "ONBOARD", "quantity": "1"}])
        self.approve_all(q1, mingyuan["owner"])
        self.quote(northwind, [{"sku": "CRM-ENT", "quantity": "1", "discount_pct": "15"},
                               {"sku": "MIGRATE", "quantity": "1"}])  # waits for the sales manager
        q3 = self.quote(blue, [{"sku": "CRM-PRO", "quantity": "1", "discount_pct": "5"},
                               {"sku": "ONBOARD", "quantity": "1"}])  # small discount: approved at once
        self.echo("contracts, orders, onboarding ...")
        k1 = self.contract(mingyuan, api.get(mingyuan["owner"], "sales", f"/v1/quotes/{q1['id']}"), today,
                           today + timedelta(days=364), [(today + timedelta(days=10), "55000.00"),
                                                         (today + timedelta(days=180), "55000.00")])
        order = self.order_of(k1)
        ops = PEOPLE["ops-zhang"]
        api.post(ops, "sales", f"/v1/orders/{order['id']}/start")
        api.post(ops, "sales", f"/v1/orders/{order['id']}/fulfil", {"note": "已开通 2 个专业版租户，已录入 ERP"})
        self.note("orders", f"{order['id']} fulfilled")
        # a customer signed eleven months ago: one installment paid, one overdue, the end near
        start = today - timedelta(days=345)
        k3 = self.contract(blue, q3, start, today + timedelta(days=19),
                           [(start + timedelta(days=30), "37000.00"), (today - timedelta(days=12), "40000.00")])
        api.post(PEOPLE["fin-chen"], "sales", f"/v1/contracts/{k3['id']}/payments", {
            "amount": "37000.00", "paid_on": str(start + timedelta(days=28)), "reference": "DEMO-BANK-0001"}, expect=201)
        self.note("orders", f"{self.order_of(k3)['id']} waiting for back office")
        self.echo("tickets ...")
        desk = PEOPLE["agent-sun"]
        cust = str(mingyuan["customer"]["id"])
        onboarding = self.wait(lambda: api.get(PEOPLE["sup-zhao"], "service-desk", "/v1/tickets",
                                               params={"customer_id": cust, "type": "onboarding"}), "the onboarding ticket")
        self.note("tickets", f"{onboarding[0]['id']} onboarding ({onboarding[0]['status']})")
        complaint = api.post(desk, "service-desk", "/v1/tickets", {
            "customer_id": cust, "type": "complaint", "priority": "high", "subject": "系统登录频繁超时",
            "description": "客户反映本周多次无法登录，影响开单", "channel": "phone"}, expect=201)
        api.post(desk, "service-desk", f"/v1/tickets/{complaint['id']}/comments", {
            "body": "已定位为单点登录配置问题，正在修复。", "public": True}, expect=201)
        self.note("tickets", f"{complaint['id']} complaint (open)")
        inquiry = api.post(PEOPLE["agent-liu"], "service-desk", "/v1/tickets", {
            "customer_id": str(blue["customer"]["id"]), "type": "inquiry", "priority": "normal",
            "subject": "How do we export the monthly report?", "channel": "email"}, expect=201)
        api.post(PEOPLE["agent-liu"], "service-desk", f"/v1/tickets/{inquiry['id']}/comments", {
            "body": "Reports > Monthly > Export (CSV or Excel).", "public": True}, expect=201)
        api.post(PEOPLE["agent-liu"], "service-desk", f"/v1/tickets/{inquiry['id']}/status", {"status": "resolved"})
        self.note("tickets", f"{inquiry['id']} inquiry (resolved; the survey goes to the customer)")
        if self.clock_file and os.path.isdir(os.path.dirname(os.path.abspath(self.clock_file))):
            from .clock import nudge
            nudge(self.clock_file)  # the workers run their jobs now: the overdue payment, the renewal window
            self.wait(lambda: {"payment.overdue", "contract.expiring"} <= {
                i["event_type"] for i in self.api.get(blue["owner"], "notify", "/v1/inbox")["items"]},
                "the overdue payment and the renewal prompt")
        for q in api.get(ADMIN, "sales", "/v1/quotes"):
            self.note("quotes", f"{q['id']} {q['status']} ({q['max_discount_pct']}% off, {q['total']} CNY)")
        for c in api.get(ADMIN, "sales", "/v1/contracts"):
            self.note("contracts", f"{c['id']} {c['status']} ({c['amount']} CNY, {c['start_date']} to {c['end_date']}, "
                                   f"{c['outstanding']} outstanding)")
        inbox = {u.id: self.api.get(u, "notify", "/v1/inbox")["unread"] for u in STAFF}
        self.made["inbox_unread"] = {k: v for k, v in inbox.items() if v}
        self.made["seconds"] = round(time.monotonic() - started, 1)
        return self.made


def run_demo(urls: dict[str, str], echo=print, clock_file: str | None = None, timeout: float = 30) -> dict:
    """Load the sample data into the running platform at `urls`; returns what was made."""
    if clock_file is None:
        clock_file = os.environ.get("CRM_CLOCK_FILE") or os.path.join(os.environ.get("CRM_DATA_DIR", "var"),
                                                                      "clock.json")
    made = Demo(Api(urls), echo, clock_file, timeout).run()
    for kind, values in made.items():
        if isinstance(values, list):
            echo(f"{kind:>10}: " + "; ".join(map(str, values)))
    if "inbox_unread" in made:
        echo(f"{'inboxes':>10}: " + ", ".join(f"{PEOPLE[k].name} {v}" for k, v in made["inbox_unread"].items()))
        echo(f"done in {made['seconds']} s. Look around as someone, e.g. the rep 李雷 (or pick him in the consoles, http://127.0.0.1:8080/app/):\n"
             f"  TOKEN=$(.venv/bin/crm token --user rep-li --name 李雷 --role sales_rep --team east)\n"
             f"  curl -H \"Authorization: Bearer $TOKEN\" {urls['notify']}/v1/inbox")
    return made
