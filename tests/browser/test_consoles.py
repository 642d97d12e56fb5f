"""The department consoles in headless Chromium against the running platform: what people do in
them reaches the services (checked through the APIs), and the pages show what the APIs hold.
One platform for the module; the tests run in order (the rep's conversion feeds the pipeline)."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import pytest
from playwright.sync_api import expect

from crm_shared.testing import wait_until

from .conftest import LAPTOP, PHONE, audit, screenshot
from .seed import Client

pytestmark = pytest.mark.slow


def test_login_page_lists_the_consoles_users_and_passes_the_audit(console):
    c = console("sales")
    page = c.open()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_role("button", name="Log in as 李雷")).to_be_visible()
    # the picker offers the people of this console only
    expect(page.get_by_role("button", name="Log in as 刘洋")).to_have_count(0)
    audit(page, "the sales login page")


def test_today_board_counts_what_the_apis_hold(console, platform):
    rep = Client(platform.url, "rep-li")
    c = console("sales")
    page = c.login("李雷")
    approvals = len(rep.get("/sales/v1/approvals"))
    unread = rep.get("/notify/v1/inbox/unread-count")["unread"]
    week = (date.today() + timedelta(days=7)).isoformat()
    contracts = rep.get("/sales/v1/contracts")
    due = sum(1 for k in contracts for i in k["payment_plan"] if float(i["outstanding"]) > 0 and i["due_date"] <= week)
    expiring = sum(1 for k in contracts if k["end_date"] <= (date.today() + timedelta(days=60)).isoformat())
    board = page.locator(".stats")

    def count(label):
        return board.get_by_role("link", name=re.compile(label)).locator(".count")

    expect(count("Leads to contact today")).to_have_text("1")
    expect(count("Approvals waiting")).to_have_text(str(approvals))
    expect(count("Payments due")).to_have_text(str(due))
    expect(count("Contracts expiring")).to_have_text(str(expiring))
    expect(count("Unread messages")).to_have_text(str(unread))
    assert (due, expiring) == (1, 1)  # the seeded contract: one installment overdue, ends in 45 days
    audit(page, "the sales today board")
    screenshot(page, "sales-laptop")
    # each count opens its list
    board.get_by_role("link", name=re.compile("Leads to contact today")).click()
    expect(page.get_by_role("heading", name="To contact today")).to_be_visible()
    expect(page.get_by_role("link", name="钱七")).to_be_visible()
    days = page.get_by_role("row", name=re.compile("钱七")).locator("td").last
    # the days before recycling are the leads API's recycle_at (the recycle scan's own rule)
    own = rep.get(f"/leads/v1/leads/{platform.data['own_lead']['id']}")
    left = (datetime.fromisoformat(own["recycle_at"]) - datetime.now(timezone.utc)).total_seconds() // 86400
    expect(days).to_have_text(f"{int(left)} days")


def test_rep_claims_a_lead_logs_a_follow_up_and_converts_it(console, platform):
    rep = Client(platform.url, "rep-li")
    lead_id = platform.data["pooled_lead"]["id"]
    c = console("sales")
    page = c.login("李雷", "#/pool")
    row = page.get_by_role("row", name=re.compile("赵六"))
    expect(row).to_contain_text("139****5678")  # masked in the pool
    audit(page, "the pool")
    row.get_by_role("button", name="Claim 赵六").click()
    expect(page.get_by_role("heading", name=re.compile("赵六"))).to_be_visible()
    lead = rep.get(f"/leads/v1/leads/{lead_id}")
    assert lead["owner_id"] == "rep-li" and lead["status"] == "new"
    expect(page.get_by_text("+8613912345678")).to_be_visible()  # the owner sees the contact data

    form = page.get_by_role("region", name="Log a follow-up")
    form.get_by_label("Channel").select_option("visit")
    form.get_by_label("Note").fill("现场演示，客户有兴趣")
    form.get_by_label("Next follow-up at").fill("2030-01-15T10:30")
    form.get_by_role("button", name="Save follow-up").click()
    expect(page.get_by_role("table", name="Follow-ups")).to_contain_text("现场演示，客户有兴趣")
    fus = rep.get(f"/leads/v1/leads/{lead_id}/follow-ups")["items"]
    assert [f["channel"] for f in fus] == ["visit"] and fus[0]["next_follow_up_at"].startswith("2030-01-15")
    audit(page, "the lead page")

    page.get_by_role("button", name=re.compile("Mark as")).click()  # contacted -> qualified
    expect(page.get_by_role("heading", name=re.compile("赵六"))).to_contain_text("qualified")
    cv = page.get_by_role("region", name="Convert to an opportunity")
    cv.get_by_label("Opportunity name").fill("精密机械 CRM")
    cv.get_by_label("Expected amount").fill("88000")
    cv.get_by_role("button", name="Convert").click()
    expect(page.get_by_role("heading", name=re.compile("赵六"))).to_contain_text("converted")
    assert rep.get(f"/leads/v1/leads/{lead_id}")["status"] == "converted"
    # sales creates the customer and the opportunity from lead.converted; the pipeline shows it
    wait_until(lambda: rep.get("/sales/v1/opportunities", params={"lead_id": lead_id}), timeout=30,
               message="the opportunity of the converted lead")
    c.go("#/pipeline")
    column = page.get_by_role("region", name=re.compile("^Qualification"))
    expect(column).to_contain_text("精密机械 CRM")
    expect(column).to_contain_text("CNY 88,000.00")
    audit(page, "the pipeline")


def test_quote_totals_are_live_and_the_quote_goes_to_approval(console, platform):
    rep = Client(platform.url, "rep-li")
    opp = platform.data["opportunity"]
    c = console("sales")
    page = c.login("李雷", f"#/quotes/new?opportunity={opp['id']}")
    line = page.get_by_role("group", name="Line 1")
    line.get_by_label("Product").select_option("CRM-STD")
    line.get_by_label("Quantity").fill("3")
    line.get_by_label("Discount %").fill("5")
    totals = page.get_by_test_id("quote-totals")
    expect(totals).to_contain_text("CNY 36,000.00")   # 3 × 12,000
    expect(totals).to_contain_text("CNY 1,800.00")    # 5 %
    expect(totals).to_contain_text("CNY 34,200.00")
    audit(page, "the quote editor")
    page.get_by_role("button", name="Save and submit for approval").click()
    expect(page.get_by_role("heading", name=re.compile(r"Quote #\d+"))).to_be_visible()
    qid = int(re.search(r"#(\d+)", page.get_by_role("heading", name=re.compile("Quote #")).inner_text()).group(1))
    q = rep.get(f"/sales/v1/quotes/{qid}")
    assert q["total"] == "34200.00" and q["status"] in ("approved", "pending_approval")


def test_manager_approves_a_quote(console, platform):
    mgr = Client(platform.url, "mgr-wang")
    quote = platform.data["quote"]
    pending = [a for a in mgr.get("/sales/v1/approvals") if a["subject_type"] == "quote" and a["subject_id"] == quote["id"]]
    assert pending, "the seeded quote waits for the manager"
    c = console("sales")
    page = c.login("王强", "#/approvals")
    row = page.get_by_role("row", name=re.compile(f"Quote #{quote['id']}"))
    expect(row).to_contain_text("CNY 51,000.00")
    expect(row).to_contain_text("15.0%")
    expect(row).to_contain_text("李雷")  # the requester, rep-li, by name
    audit(page, "the approvals")
    row.get_by_label(re.compile("Comment on approval")).fill("同意，注意回款")
    row.get_by_role("button", name=f"Approve approval #{pending[0]['id']}").click()
    expect(page.get_by_role("row", name=re.compile(f"Quote #{quote['id']}"))).to_have_count(0)
    assert mgr.get(f"/sales/v1/quotes/{quote['id']}")["status"] == "approved"
    trail = mgr.get(f"/sales/v1/approvals/{pending[0]['id']}")["trail"]
    assert any(e["action"] == "approve" and e["comment"] == "同意，注意回款" for e in trail)
    # the manager's leads are the team's, with their owners
    page.get_by_role("link", name="Team leads").click()
    team = [l for l in mgr.get("/leads/v1/leads")["items"] if l["owner_id"] and l["status"] in ("new", "contacted", "qualified")]
    rows = page.get_by_role("table", name="Team leads").locator("tbody tr")
    expect(rows).to_have_count(len(team))
    expect(page.get_by_role("row", name=re.compile("钱七"))).to_contain_text("李雷")


def test_inbox_updates_live(console, platform):
    admin = Client(platform.url, "admin")
    c = console("sales")
    page = c.login("李雷", "#/inbox")
    items = Client(platform.url, "rep-li").get("/notify/v1/inbox")["items"]
    expect(page.locator("ul.inbox > li")).to_have_count(len(items))
    expect(page.locator("ul.inbox > li").first).to_contain_text(items[0]["title"])
    page.evaluate("window.__same_page = true")
    lead = admin.post("/leads/v1/leads", {"name": "孙八", "company": "无锡新材料", "phone": "13600003333"})
    admin.post(f"/leads/v1/leads/{lead['id']}/assign", {"user_id": "rep-li", "reason": "客户指定"})
    # the item arrives over the notify stream through the gateway, without a reload
    expect(page.locator("ul.inbox > li").filter(has_text="孙八")).to_have_count(1, timeout=30000)
    assert page.evaluate("window.__same_page") is True
    expect(page.get_by_role("link", name=re.compile("^Inbox"))).to_contain_text(
        str(Client(platform.url, "rep-li").get("/notify/v1/inbox/unread-count")["unread"]))
    audit(page, "the inbox")


def test_agent_replies_and_resolves_a_ticket(console, platform):
    sup = Client(platform.url, "sup-zhao")
    ticket = platform.data["ticket"]
    c = console("service")
    page = c.login("刘洋")
    row = page.get_by_role("row", name=re.compile(f"#{ticket['id']} 系统登录缓慢"))
    expect(row.locator(".badge.ok")).to_have_count(2)  # both SLA timers running, on time
    # people by name (notify's staff directory), not by user id
    expect(row.locator("td").nth(4)).to_have_text("刘洋")
    audit(page, "the service queue")
    screenshot(page, "service-laptop")
    row.get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile("系统登录缓慢"))).to_be_visible()
    customer = page.get_by_role("region", name=re.compile("Customer: 宁波海港物流"))
    expect(customer).to_contain_text("gold")
    expect(customer).to_contain_text("李雷")  # the account owner, rep-li
    expect(customer).not_to_contain_text("rep-li")
    expect(page.get_by_role("region", name="Ticket", exact=True)).to_contain_text("刘洋")
    expect(customer).to_contain_text("CNY 12,000.00")
    page.get_by_label("Reply").fill("已定位为网络问题，正在处理。")
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_role("region", name="Conversation")).to_contain_text("已定位为网络问题")
    page.get_by_label("Reply").fill("客户是金牌客户，优先处理")
    page.get_by_label(re.compile("Internal note")).check()
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("ol.thread li.internal")).to_contain_text("优先处理")
    audit(page, "the ticket page")
    page.get_by_role("button", name="Resolve").click()
    expect(page.get_by_role("heading", name=re.compile("系统登录缓慢"))).to_contain_text("resolved")
    t = sup.get(f"/service-desk/v1/tickets/{ticket['id']}")
    assert t["status"] == "resolved" and t["first_response_at"]
    assert [(x["body"], x["public"]) for x in t["comments"] if not x["automatic"]] == [
        ("已定位为网络问题，正在处理。", True), ("客户是金牌客户，优先处理", False)]


def test_agent_escalates_a_ticket_to_the_supervisor(console, platform):
    sup = Client(platform.url, "sup-zhao")
    ticket = sup.post("/service-desk/v1/tickets", {"customer_id": str(platform.data["customer"]["id"]), "type": "complaint",
                                                  "channel": "wechat", "priority": "normal", "subject": "发票抬头错误"})
    c = console("service")
    page = c.login("刘洋", f"#/tickets/{ticket['id']}")
    expect(page.get_by_role("heading", name=re.compile("发票抬头错误"))).to_be_visible()
    card = page.get_by_role("region", name="Escalate", exact=True)
    expect(card).to_contain_text("supervisor")
    # the dialog: opened and dismissed with Escape, the focus back on its button, nothing sent
    card.get_by_role("button", name="Escalate to the supervisor").click()
    dialog = page.get_by_role("dialog", name=f"Escalate ticket #{ticket['id']}")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Reason (optional)")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(card.get_by_role("button", name="Escalate to the supervisor")).to_be_focused()
    assert sup.get(f"/service-desk/v1/tickets/{ticket['id']}")["escalated_to"] is None
    # again, with a reason
    card.get_by_role("button", name="Escalate to the supervisor").click()
    dialog.get_by_label("Reason (optional)").fill("客户要求主管回电")
    audit(page, "the escalation dialog")
    dialog.get_by_role("button", name="Escalate", exact=True).click()
    expect(dialog).to_be_hidden()
    facts = page.get_by_role("region", name="Ticket", exact=True)
    expect(facts).to_contain_text("Escalated to")
    expect(facts).to_contain_text("赵军")  # sup-zhao, by name
    expect(facts).not_to_contain_text("sup-zhao")
    expect(page.get_by_role("status")).to_contain_text(f"Ticket #{ticket['id']} escalated to sup-zhao")
    expect(page.get_by_role("region", name="Escalate", exact=True)).to_have_count(0)  # once only
    t = sup.get(f"/service-desk/v1/tickets/{ticket['id']}")
    assert t["escalated_to"] == "sup-zhao"
    [step] = [x for x in t["timeline"] if x["kind"] == "escalated"]
    assert step["actor_id"] == "agent-liu" and step["data"]["reason"] == "客户要求主管回电"
    sup.post(f"/service-desk/v1/tickets/{ticket['id']}/escalate", expect=(409,))
    audit(page, "the escalated ticket")


@pytest.mark.parametrize("name,user", [("sales", "李雷"), ("backoffice", "张伟"), ("service", "赵军"), ("managers", "周敏")])
def test_log_out_of_each_console(console, name, user):
    c = console(name)
    page = c.login(user)
    assert page.evaluate("localStorage.getItem('crm.token')")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_role("button", name=f"Log in as {user}")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    expect(page.locator("nav.tabs")).to_have_count(0)
    assert page.evaluate("localStorage.getItem('crm.token')") is None
    page.reload()  # still out: the token is gone, not just hidden
    expect(page.get_by_role("button", name=f"Log in as {user}")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    audit(page, f"the {name} console after logging out")


def test_security_headers_and_the_policy_holds_in_the_browser(console, platform):
    """Every page under /app/ carries the headers; the consoles run under the policy without a
    violation (each test's Console checks that), and the policy really refuses inline code."""
    import requests

    for path in ("/app/", "/app/sales/", "/app/service/", "/app/common/lib/ui.js", "/app/config.json"):
        r = requests.get(platform.url + path, timeout=10)
        assert r.status_code == 200, path
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "object-src 'none'" in csp, csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "same-origin"
    c = console("service")
    page = c.login("刘洋")
    expect(page.get_by_role("heading", name="Queues")).to_be_visible()
    assert c.csp == []
    # an injected inline script and an inline event handler do not run, and are reported
    page.evaluate("""() => {
      const s = document.createElement('script'); s.textContent = 'window.__pwned = 1'; document.body.append(s);
      const i = document.createElement('img'); i.setAttribute('onerror', 'window.__pwned = 2'); i.src = 'x:'; document.body.append(i);
    }""")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert any("script-src" in v for v in c.csp), c.csp
    c.csp.clear()


def test_back_office_fulfils_the_order_and_finance_records_a_payment(console, platform):
    ops = Client(platform.url, "ops-zhang")
    order = platform.data["order"]
    c = console("backoffice")
    page = c.login("张伟")
    row = page.get_by_role("row", name=re.compile(f"#{order['id']}"))
    expect(row).to_contain_text("CRM 标准版 × 1")
    audit(page, "the order queue")
    row.get_by_role("button", name=f"Start order #{order['id']}").click()
    expect(page.get_by_role("row", name=re.compile(f"#{order['id']}"))).to_contain_text("in progress")
    page.get_by_label(f"Note for order #{order['id']}").fill("账号已开通 10 席")
    page.get_by_role("button", name=f"Fulfil order #{order['id']}").click()
    expect(page.get_by_role("row", name=re.compile(f"#{order['id']}"))).to_have_count(0)
    o = ops.get(f"/sales/v1/orders/{order['id']}")
    assert o["status"] == "fulfilled" and o["note"] == "账号已开通 10 席"

    fin = console("backoffice")
    page = fin.login("陈静", "#/payments")
    contract = platform.data["contract"]
    page.get_by_role("button", name=f"Record a payment on contract #{contract['id']}").click()
    form = page.get_by_role("region", name=f"Record a payment on contract #{contract['id']}")
    form.get_by_label(re.compile("Amount")).fill("6000.00")
    form.get_by_label("Reference").fill("BANK-2026-001")
    audit(page, "the payment form")
    form.get_by_role("button", name="Save payment").click()
    expect(page.get_by_role("row", name=re.compile(f"#{contract['id']}"))).to_contain_text("CNY 6,000.00")
    payments = Client(platform.url, "fin-chen").get(f"/sales/v1/contracts/{contract['id']}/payments")
    assert [(p["amount"], p["reference"]) for p in payments] == [("6000.00", "BANK-2026-001")]
    fin.go("#/aging")
    aging = Client(platform.url, "fin-chen").get("/sales/v1/reports/receivables-aging")
    table = page.get_by_role("table", name="Receivables aging by customer")
    expect(table).to_contain_text("宁波海港物流")
    expect(table.get_by_role("row", name=re.compile("宁波海港物流"))).to_contain_text(
        f"CNY {float(aging['customers'][0]['total']):,.2f}")
    audit(page, "the aging report")
    screenshot(page, "backoffice-laptop")


def test_managers_see_charts_and_tables_of_the_reports(console, platform):
    gm = Client(platform.url, "gm-zhou")
    funnel = gm.get("/sales/v1/reports/funnel")
    c = console("managers")
    page = c.login("周敏")
    section = page.get_by_role("region", name="Sales funnel", exact=True)
    expect(section.get_by_role("img", name="Sales funnel")).to_be_visible()
    rows = section.get_by_role("table").locator("tbody tr")
    expect(rows).to_have_count(len(funnel["stages"]))
    for i, s in enumerate(funnel["stages"]):
        expect(rows.nth(i).locator("td").nth(0)).to_have_text(str(s["reached"]))
        expect(rows.nth(i).locator("td").nth(1)).to_have_text(str(s["count"]))
    by_rep = page.get_by_role("region", name="Signed by rep", exact=True)
    expect(by_rep.get_by_role("table")).to_contain_text("李雷")  # rep-li, by name, in the table
    expect(by_rep.get_by_role("img")).to_contain_text("李雷")  # ... and the chart
    expect(by_rep).not_to_contain_text("rep-li")
    audit(page, "the managers' sales page")
    screenshot(page, "managers-laptop")
    c.go("#/marketing")
    campaign = platform.data["campaign"]
    roi = gm.get(f"/leads/v1/campaigns/{campaign['id']}/roi")
    assert roi["leads"] == 1 and roi["converted_leads"] == 1  # the rep converted the campaign's lead above
    row = page.get_by_role("region", name="Campaign ROI", exact=True).get_by_role("row", name=re.compile("2026 秋季工业展"))
    expect(row.locator("td")).to_have_text([str(roi["leads"]), str(roi["converted_leads"]), str(roi["won_contracts"]),
                                            "CNY 15,000.00", f"CNY {float(roi['revenue']):,.2f}",
                                            f"CNY {float(roi['cost_per_lead']):,.2f}", f"{float(roi['roi']) * 100:.0f}%"])
    expect(page.get_by_role("region", name="Campaign ROI", exact=True).get_by_role("img")).to_be_visible()
    audit(page, "the managers' campaign page")
    c.go("#/service")
    sla = gm.get("/service-desk/v1/reports/sla", params={"group_by": "week"})
    expect(page.get_by_role("region", name="SLA kept, by week", exact=True).get_by_role("table")).to_contain_text(sla["rows"][0]["key"])
    audit(page, "the managers' service page")


def test_language_switches_between_chinese_and_english(console):
    c = console("sales")
    page = c.login("李雷")
    expect(page.get_by_role("link", name="Pool")).to_be_visible()
    page.get_by_label("Language").select_option("zh-CN")
    expect(page.get_by_role("link", name="公海")).to_be_visible()
    expect(page.get_by_role("heading", name="今日待办")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    page.reload()  # the choice is kept
    expect(page.get_by_role("link", name="公海")).to_be_visible()
    expect(page.locator(".stats .count").first).not_to_have_text("…")
    audit(page, "the Chinese today board")
    screenshot(page, "sales-zh-laptop")


def test_keyboard_alone_logs_in_and_reaches_the_pool(console):
    c = console("sales")
    page = c.open()
    page.get_by_role("button", name="Log in as 李雷").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") in ("Skip to main content",)
    for _ in range(12):  # on to the first user of the picker
        page.keyboard.press("Tab")
        if "李雷" in (page.evaluate("document.activeElement.textContent") or ""):
            break
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Log out").wait_for()
    assert page.evaluate("document.activeElement.id") == "main"  # the focus moved past the vanished picker
    for _ in range(10):  # the navigation is just before the main content
        page.keyboard.press("Shift+Tab")
        if page.evaluate("document.activeElement.textContent").strip() == "Pool":
            break
    else:
        pytest.fail("the Pool link is not reachable with Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Pool")).to_be_visible()
    # the skip link moves the focus to the main content
    page.keyboard.press("Shift+Tab")
    page.evaluate("document.querySelector('.skip').focus()")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # a focused control shows a visible focus ring
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline


@pytest.mark.parametrize("name,user,hash_", [("sales", "李雷", "#/pipeline"), ("backoffice", "陈静", "#/payments"),
                                             ("service", "刘洋", "#/"), ("managers", "周敏", "#/")])
def test_each_console_at_phone_width(console, name, user, hash_):
    c = console(name, viewport=PHONE)
    page = c.login(user, hash_)
    expect(page.locator("main h2").first).to_be_visible()
    expect(page.locator("[aria-busy=true]")).to_have_count(0)  # everything loaded (no "Loading…" left)
    # nothing but the scrollable regions (tables, boards, the tab bar) is wider than the screen
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {PHONE['width']}px"
    audit(page, f"the {name} console at phone width")
    screenshot(page, f"{name}-phone")


def test_production_login_goes_through_the_identity_provider_with_pkce(browser, platform):
    """CRM_OIDC_ISSUER set: the console offers no user picker, sends the user to the provider,
    and trades the code (with the PKCE verifier) for the access token it then uses."""
    import threading

    from crm_shared.gateway import Gateway, serve

    from .conftest import ROOT, Console
    from .fake_idp import FakeIdP
    from .seed import USERS

    idp = FakeIdP(USERS["agent-liu"])
    server = serve(Gateway(platform.upstreams(), ROOT / "frontends",
                           env={"CRM_OIDC_ISSUER": idp.url, "CRM_OIDC_CLIENT_ID": "crm-consoles"}), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    class Prod:  # the same platform behind the production-configured gateway
        url = f"http://127.0.0.1:{server.server_port}"

    c = Console(browser, Prod, "service")
    try:
        page = c.open("#/breaches")
        expect(page.get_by_role("button", name="Log in with the identity provider")).to_be_visible()
        expect(page.get_by_role("button", name=re.compile("Log in as"))).to_have_count(0)
        audit(page, "the OIDC login page")
        page.get_by_role("button", name="Log in with the identity provider").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        expect(page.locator(".who")).to_have_text("刘洋")
        expect(page.get_by_role("heading", name="Queues")).to_be_visible()
        assert "code=" not in page.url and "state=" not in page.url  # the code does not stay in the address bar
        kinds = [k for k, _ in idp.log]
        assert kinds == ["authorize", "token"], idp.log
        authorize, token = idp.log[0][1], idp.log[1][1]
        assert authorize["redirect_uri"] == f"{Prod.url}/app/service/" and token["code_verifier"]
        assert authorize["code_challenge"] != token["code_verifier"]  # S256, not plain
        # the state is checked: a forged callback does not log anyone in
        page.get_by_role("button", name="Log out").click()
        page.goto(f"{Prod.url}/app/service/?code=forged&state=forged")
        expect(page.get_by_role("alert")).to_contain_text("state")
        expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    finally:
        c.close()
        server.shutdown()
        server.server_close()
        idp.stop()


def test_sla_countdown_colours_and_recycle_days_in_the_browser(console):
    """The two client-side rules, run in the page's own modules: an SLA countdown is green with
    time left, amber from the service's warning time, red past due (paused and met timers say so);
    days before recycling are whole days to the leads API's recycle_at (none when it is null)."""
    c = console("service")
    page = c.open()
    page.get_by_role("heading", name="Log in").wait_for()
    out = page.evaluate("""async () => {
      const ui = await import('../common/lib/ui.js');
      const { html, render } = await import('../common/lib/html.js');
      const leads = await import('../common/lib/leads.js');
      const now = Date.now(), at = (min) => new Date(now + min * 60000).toISOString();
      const timers = {
        ok: { due_at: at(120), warn_at: at(60), minutes: 240 },
        amber: { due_at: at(30), warn_at: at(-5), minutes: 240 },
        red: { due_at: at(-10), warn_at: at(-60), minutes: 240, breached_at: at(-10) },
        met: { due_at: at(-10), met_at: at(-30), minutes: 240 },
        paused: { due_at: at(100), paused: true, remaining_minutes: 90, minutes: 240 },
      };
      const sla = {};
      for (const [k, timer] of Object.entries(timers)) {
        const el = document.createElement('div');
        document.body.append(el);
        render(html`<${ui.SlaCountdown} timer=${timer} />`, el);
        sla[k] = [el.firstElementChild.className, el.textContent];
      }
      const day = 86400000, iso = (d) => new Date(now + d * day).toISOString();
      const days = {
        overdue: leads.daysLeft({ recycle_at: iso(-2.5) }, now),
        today: leads.daysLeft({ recycle_at: iso(0.5) }, now),
        later: leads.daysLeft({ recycle_at: iso(5.2) }, now),
        not_watched: leads.daysLeft({ recycle_at: null }, now),
      };
      return { sla, days };
    }""")
    sla = out["sla"]
    assert sla["ok"][0].split() == ["badge", "ok"] and "on time" in sla["ok"][1]
    assert sla["amber"][0].split() == ["badge", "amber"] and "due soon" in sla["amber"][1]
    assert sla["red"][0].split() == ["badge", "red"] and "breached" in sla["red"][1] and "-" in sla["red"][1]
    assert "ok" in sla["met"][0] and "✓" in sla["met"][1]
    assert "muted" in sla["paused"][0] and "1h 30m" in sla["paused"][1]
    # assigned 10 days ago: 7 days without follow-up -> 3 days overdue; a follow-up 2 days ago -> 5 left;
    # assigned 28 days ago -> conversion due in 2 (before the follow-up rule's 6); tier A: 14 - 10 = 4
    # whole days to the API's recycle_at (the rule itself is the leads service's, tested there)
    assert out["days"] == {"overdue": -3, "today": 0, "later": 5, "not_watched": None}


def test_names_show_after_the_staff_directory_failed_twice(console, platform):
    """A failed /notify/v1/people request (notify restarting, a dropped connection) is tried again:
    the page still comes to show the colleague's name, not the id it shows meanwhile. (Last in the
    module: it needs nothing the others change.)"""
    c = console("managers")
    failed: list[str] = []

    def flaky(route):
        if len(failed) < 2:
            failed.append(route.request.url)
            route.fulfill(status=503, content_type="application/problem+json",
                          body='{"title": "Service Unavailable", "status": 503}')
        else:
            route.continue_()

    c.page.route(re.compile(r"/notify/v1/people\?"), flaky)
    page = c.login("周敏")
    by_rep = page.get_by_role("region", name="Signed by rep", exact=True)
    expect(by_rep.get_by_role("table")).to_contain_text("李雷", timeout=10000)  # rep-li, by name
    assert len(failed) == 2 and all("id=rep-li" in u for u in failed), failed
