"""Object-level authorisation: for every operation that takes an id (enumerated from each service's
OpenAPI document), users of every role without rights to the object get 403 or 404 and none of its
data, and the object is left unchanged. Each service's world holds objects owned by "insiders";
TABLE says, per operation, which object the id names, a body that passes validation (so the
request reaches the access check) and who the strangers are. An id-taking operation missing from
TABLE fails the test, so a new endpoint cannot slip by unclassified."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _hostile as h  # noqa: E402

pytestmark = pytest.mark.reliability  # figures for docs/RELIABILITY.md (make reliability)

ADMIN = ("admin1", ("admin",), None)
REP = ("rep1", ("sales_rep",), "east")
MGR = ("mgr1", ("sales_manager",), "east")
# strangers: same kind of job elsewhere, and jobs that have nothing to do with the object
WEST_REP = ("rep9", ("sales_rep",), "west")
WEST_MGR = ("mgr9", ("sales_manager",), "west")
AGENT = ("agent1", ("service_agent",), None)
OTHER_AGENT = ("agent2", ("service_agent",), None)
SUPERVISOR = ("sup9", ("service_supervisor",), None)
FINANCE = ("fin1", ("finance",), None)
OPS = ("ops1", ("ops",), None)

SECRET_PHONE = "13912345678"
SECRET = "Zhao Secret"  # the name on every private object; a stranger must never see it


# -- the worlds --------------------------------------------------------------------------------------

def leads_world(c: h.Client) -> dict:
    team = c.ok("POST", "/v1/teams", ADMIN, {"name": "East", "code": "east", "strategy": "round_robin",
                                             "members": [{"user_id": "rep1", "name": "Rep One"}]})
    rule = c.ok("POST", "/v1/routing-rules", ADMIN, {"priority": 10, "conditions": {}, "team_id": int(team["id"])})
    camp = c.ok("POST", "/v1/campaigns", MGR, {"name": "Spring fair", "source": "exhibition", "currency": "CNY"})
    lead = c.ok("POST", "/v1/leads", REP, {"name": SECRET, "phone": SECRET_PHONE, "company": SECRET + " Ltd"})
    assert lead["owner_id"] == "rep1", lead
    c.ok("POST", f"/v1/leads/{lead['id']}/follow-ups", REP, {"channel": "call", "note": SECRET + " called"})
    return {"lead_id": lead["id"], "team_id": team["id"], "rule_id": rule["id"], "campaign_id": camp["id"],
            "user_id": "rep1"}


def sales_world(c: h.Client) -> dict:
    from sales.testing import converted
    h.deliver(c.app, "sales", "lead.converted", converted("L1", "rep1", "east", name=SECRET, company=SECRET + " Ltd",
                                                          contact={"name": SECRET, "phone": SECRET_PHONE}),
              producer="leads")
    c.ok("POST", "/v1/products", ADMIN, {"sku": "SEAT", "name": "Seat", "list_price": "1000.00", "currency": "CNY"})
    [opp] = c.get("/v1/opportunities?lead_id=L1", ADMIN).get_json()
    cust = opp["customer_id"]
    # a quote with a deep discount waits for approval; a plain one goes on to a signed contract
    pending = c.ok("POST", "/v1/quotes", REP, {"opportunity_id": opp["id"], "currency": "CNY",
                                               "lines": [{"sku": "SEAT", "quantity": "10", "discount_pct": "40"}]})
    [approval] = c.ok("POST", f"/v1/quotes/{pending['id']}/submit", REP)["approvals"]
    q = c.ok("POST", "/v1/quotes", REP, {"opportunity_id": opp["id"], "currency": "CNY",
                                         "lines": [{"sku": "SEAT", "quantity": "10", "discount_pct": "0"}]})
    assert c.ok("POST", f"/v1/quotes/{q['id']}/submit", REP)["status"] == "approved"
    con = c.ok("POST", "/v1/contracts", REP, {"quote_id": q["id"], "start_date": "2026-03-01",
                                              "end_date": "2027-02-28",
                                              "payment_plan": [{"due_date": "2026-03-10", "amount": "10000.00"}]})
    assert c.ok("POST", f"/v1/contracts/{con['id']}/submit", REP)["status"] == "approved"
    c.ok("POST", f"/v1/contracts/{con['id']}/sign", REP, {"signed_on": "2026-03-02"})
    [order] = [o for o in c.get("/v1/orders", ADMIN).get_json() if str(o["contract_id"]) == str(con["id"])]
    prod = c.get("/v1/products", ADMIN).get_json()[0]
    return {"customer_id": cust, "opportunity_id": opp["id"], "quote_id": pending["id"], "approval_id": approval["id"],
            "contract_id": con["id"], "order_id": order["id"], "product_id": prod["id"]}


def desk_world(c: h.Client) -> dict:
    for user, skills in (("agent1", ["complaints"]), ("agent2", ["suggestions"])):
        c.ok("POST", "/v1/agents", SUPERVISOR, {"user_id": user, "skills": skills, "max_open": 5, "active": True})
    h.deliver(c.app, "service-desk", "customer.created", {"customer_id": "c1", "name": SECRET, "tier": None,
                                                          "owner_id": "rep1", "team_id": "east"}, producer="sales")
    t = c.ok("POST", "/v1/tickets", SUPERVISOR, {"customer_id": "c1", "type": "complaint", "priority": "normal",
                                                 "subject": SECRET + " is angry", "description": SECRET_PHONE,
                                                 "channel": "phone"})
    assert t["assignee_id"] == "agent1", t
    # a supervisor to escalate to: a stranger's escalation would succeed if the access check let it by
    c.ok("PUT", "/v1/queues/complaints", SUPERVISOR, {"supervisor_id": "sup9"})
    return {"ticket_id": t["id"], "customer_id": "c1", "user_id": "agent1", "name": "complaints"}


def notify_world(c: h.Client) -> dict:
    h.deliver(c.app, "notify", "lead.assigned", {"lead_id": "L1", "owner_id": "rep1", "team_id": "east",
                                                 "name": SECRET, "reason": "manual", "by_user_id": "mgr1"}, producer="leads")
    from notify import jobs
    jobs.send_due(h.runtime_of(c.app))
    items = c.get("/v1/inbox", REP).get_json()["items"]
    assert items, "rep1 should have an inbox item"
    c.ok("PUT", "/v1/recipients/rep1", REP, {"email": "rep1@example.com", "mobile": SECRET_PHONE, "name": SECRET})
    hook = c.ok("POST", "/v1/webhooks", MGR, {"url": "http://127.0.0.1:9/" + SECRET.replace(" ", "-"),
                                              "event_types": ["lead.assigned"], "secret": "s3cr3t-value-0123456789"})
    tpl = c.ok("POST", "/v1/templates", ADMIN, {"event_type": "lead.assigned", "channel": "inbox", "language": "en",
                                                "subject": "New lead", "body": "Hello {{ name }}"})
    sub = c.ok("POST", "/v1/subscriptions", ADMIN, {"event_type": "lead.assigned", "recipient_kind": "user",
                                                    "recipient_value": "mgr1", "channels": ["inbox"]})
    h.deliver(c.app, "notify", "customer.created", {"customer_id": "c1", "name": SECRET, "owner_id": "rep1",
                                                    "team_id": "east", "phone": SECRET_PHONE}, producer="sales")
    return {"item_id": items[0]["id"], "user_id": "rep1", "hook_id": hook["id"], "tid": tpl["id"], "sub_id": sub["id"],
            "customer_id": "c1"}


WORLDS = {"leads": leads_world, "sales": sales_world, "service-desk": desk_world, "notify": notify_world}

# -- what each id-taking operation is tested with ----------------------------------------------------
# "METHOD path": (body or None, strangers). Strangers hold no right to the insiders' object.
LEAD_STRANGERS = (WEST_REP, WEST_MGR, AGENT, SUPERVISOR, FINANCE, OPS)
CONFIG_STRANGERS = (REP, WEST_REP, AGENT, FINANCE, OPS)  # change routing/teams/campaigns: managers only
SALES_STRANGERS = (WEST_REP, WEST_MGR, AGENT, SUPERVISOR, OPS)
MONEY_STRANGERS = (WEST_REP, WEST_MGR, AGENT, SUPERVISOR)
DESK_STRANGERS = (OTHER_AGENT, WEST_REP, FINANCE, OPS)  # rep1 owns the customer: sees its tickets
NOTIFY_STRANGERS = (WEST_REP, WEST_MGR, AGENT, FINANCE, OPS)

TABLE = {
    "leads": {
        "GET /v1/leads/{lead_id}": (None, LEAD_STRANGERS),
        "PATCH /v1/leads/{lead_id}": ({"name": "hijacked"}, LEAD_STRANGERS),
        "POST /v1/leads/{lead_id}/assign": ({"user_id": "rep9", "reason": "mine now"}, LEAD_STRANGERS),
        "POST /v1/leads/{lead_id}/claim": (None, LEAD_STRANGERS),
        "POST /v1/leads/{lead_id}/convert": ({"opportunity_name": "stolen"}, LEAD_STRANGERS),
        "POST /v1/leads/{lead_id}/disqualify": ({"reason": "spite"}, LEAD_STRANGERS),
        "GET /v1/leads/{lead_id}/follow-ups": (None, LEAD_STRANGERS),
        "POST /v1/leads/{lead_id}/follow-ups": ({"channel": "call", "note": "x"}, LEAD_STRANGERS),
        "GET /v1/leads/{lead_id}/history": (None, LEAD_STRANGERS),
        "POST /v1/leads/{lead_id}/lock": (None, LEAD_STRANGERS),
        "DELETE /v1/leads/{lead_id}/lock": (None, LEAD_STRANGERS),
        "POST /v1/leads/{lead_id}/release": ({"reason": "spite"}, LEAD_STRANGERS),
        "POST /v1/leads/{lead_id}/status": ({"status": "contacted"}, LEAD_STRANGERS),
        "POST /v1/campaigns/{campaign_id}/costs": ({"amount": "100.00", "incurred_on": "2026-03-01"},
                                                   (REP, WEST_REP, AGENT, OPS)),
        "GET /v1/campaigns/{campaign_id}/roi": (None, (REP, WEST_REP, AGENT, OPS)),
        "PATCH /v1/routing-rules/{rule_id}": ({"priority": 1}, CONFIG_STRANGERS),
        "DELETE /v1/routing-rules/{rule_id}": (None, CONFIG_STRANGERS),
        "PATCH /v1/teams/{team_id}": ({"name": "Hijacked"}, CONFIG_STRANGERS + (WEST_MGR,)),
        "POST /v1/teams/{team_id}/members": ({"user_id": "rep9", "name": "Rep Nine"}, CONFIG_STRANGERS + (WEST_MGR,)),
        "PATCH /v1/teams/{team_id}/members/{user_id}": ({"weight": 5}, CONFIG_STRANGERS + (WEST_MGR,)),
        "DELETE /v1/teams/{team_id}/members/{user_id}": (None, CONFIG_STRANGERS + (WEST_MGR,)),
    },
    "sales": {
        "GET /v1/customers/{customer_id}": (None, SALES_STRANGERS),
        "PATCH /v1/customers/{customer_id}": ({"name": "Hijacked"}, SALES_STRANGERS + (FINANCE,)),
        "GET /v1/opportunities/{opportunity_id}": (None, SALES_STRANGERS),
        "PATCH /v1/opportunities/{opportunity_id}": ({"name": "Hijacked"}, SALES_STRANGERS + (FINANCE,)),
        "GET /v1/quotes/{quote_id}": (None, SALES_STRANGERS),
        "PATCH /v1/quotes/{quote_id}": ({"lines": [{"sku": "SEAT", "quantity": "1"}]}, SALES_STRANGERS + (FINANCE,)),
        "POST /v1/quotes/{quote_id}/revise": (None, SALES_STRANGERS + (FINANCE,)),
        "POST /v1/quotes/{quote_id}/submit": (None, SALES_STRANGERS + (FINANCE,)),
        "GET /v1/approvals/{approval_id}": (None, SALES_STRANGERS),
        "POST /v1/approvals/{approval_id}/decision": ({"decision": "approve"}, SALES_STRANGERS + (REP,)),
        "POST /v1/approvals/{approval_id}/withdraw": ({}, SALES_STRANGERS + (FINANCE,)),
        "GET /v1/contracts/{contract_id}": (None, SALES_STRANGERS),
        "POST /v1/contracts/{contract_id}/submit": (None, SALES_STRANGERS + (FINANCE,)),
        "POST /v1/contracts/{contract_id}/sign": ({"signed_on": "2026-03-03"}, SALES_STRANGERS + (FINANCE,)),
        "POST /v1/contracts/{contract_id}/renew": ({}, SALES_STRANGERS + (FINANCE,)),
        "POST /v1/contracts/{contract_id}/terminate": ({"reason": "spite"}, SALES_STRANGERS + (FINANCE,)),
        "GET /v1/contracts/{contract_id}/payments": (None, MONEY_STRANGERS + (OPS,)),
        "POST /v1/contracts/{contract_id}/payments": ({"amount": "1.00", "paid_on": "2026-03-05", "reference": "X1"},
                                                      MONEY_STRANGERS + (REP, OPS)),
        "GET /v1/orders/{order_id}": (None, (WEST_REP, WEST_MGR, AGENT, SUPERVISOR)),
        "POST /v1/orders/{order_id}/start": (None, (REP, WEST_REP, WEST_MGR, AGENT, FINANCE)),
        "POST /v1/orders/{order_id}/fulfil": ({"note": "done"}, (REP, WEST_REP, WEST_MGR, AGENT, FINANCE)),
        "POST /v1/orders/{order_id}/reject": ({"reason": "no"}, (REP, WEST_REP, WEST_MGR, AGENT, FINANCE)),
        # the price list is the company's, kept by managers and finance: everybody else is a stranger
        "PATCH /v1/products/{product_id}": ({"name": "Hijacked"}, (REP, WEST_REP, AGENT, SUPERVISOR, OPS)),
    },
    "service-desk": {
        "GET /v1/tickets/{ticket_id}": (None, DESK_STRANGERS),
        "POST /v1/tickets/{ticket_id}/assignment": ({"assignee_id": "agent2"}, DESK_STRANGERS),
        "POST /v1/tickets/{ticket_id}/comments": ({"body": "hijack"}, DESK_STRANGERS),
        "POST /v1/tickets/{ticket_id}/escalate": ({"reason": "hijack"}, DESK_STRANGERS),
        "POST /v1/tickets/{ticket_id}/referral": ({"note": "sell them more"}, DESK_STRANGERS),
        "POST /v1/tickets/{ticket_id}/status": ({"status": "resolved"}, DESK_STRANGERS),
        # any service agent may look up any customer who calls; sales only their own
        "GET /v1/customers/{customer_id}": (None, (WEST_REP, FINANCE, OPS)),
        "GET /v1/agents/{user_id}": (None, (REP, FINANCE, OPS)),
        "PATCH /v1/agents/{user_id}": ({"max_open": 1}, (OTHER_AGENT, AGENT, REP, FINANCE, OPS)),
        "PUT /v1/queues/{name}": ({"supervisor_id": "agent2"}, (OTHER_AGENT, AGENT, REP, FINANCE, OPS)),
    },
    "notify": {
        "POST /v1/inbox/{item_id}/read": (None, (WEST_REP, MGR, AGENT, FINANCE)),
        "GET /v1/recipients/{user_id}": (None, (WEST_REP, AGENT, FINANCE, OPS)),
        "PUT /v1/recipients/{user_id}": ({"email": "evil@example.com"}, (WEST_REP, MGR, AGENT, FINANCE, OPS)),
        "GET /v1/webhooks/{hook_id}": (None, (REP, WEST_MGR, SUPERVISOR, AGENT)),
        "DELETE /v1/webhooks/{hook_id}": (None, (REP, WEST_MGR, SUPERVISOR, AGENT)),
        "POST /v1/webhooks/{hook_id}/enable": (None, (REP, WEST_MGR, SUPERVISOR, AGENT)),
        "GET /v1/customers/{customer_id}": (None, (WEST_REP, FINANCE, OPS)),
        "PUT /v1/customers/{customer_id}/care": ({"birthday_greetings": False}, (WEST_REP, FINANCE, OPS)),
        "DELETE /v1/templates/{tid}": (None, NOTIFY_STRANGERS + (MGR,)),
        "DELETE /v1/subscriptions/{sub_id}": (None, NOTIFY_STRANGERS + (MGR,)),
    },
}
# id-taking operations that are not about one party's private object: read by any signed-in user
# (a template's wording), or reached by a secret token instead of a user (CSAT links, intake keys)
# who must find nothing of the insiders' objects in any list or report (GET without an id)
LIST_STRANGERS = {"leads": LEAD_STRANGERS, "sales": SALES_STRANGERS, "service-desk": DESK_STRANGERS,
                  "notify": NOTIFY_STRANGERS}
NOT_LISTS = {"GET /v1/inbox/stream"}
# the staff directory: a colleague's name is not private (every signed-in user reads it), the
# contact data beside it in notify's recipients is: strangers must find the phone, never the name
DIRECTORY = {"GET /v1/people"}
# ... where an insider does find them (so the list check above can fail)
INSIDER_LIST = {"leads": ("/v1/leads", REP), "sales": ("/v1/customers", REP), "service-desk": ("/v1/tickets", AGENT),
                "notify": ("/v1/inbox", REP)}  # never ends (its own tests bound it)

NOT_PRIVATE = {
    # teams, routing rules and campaigns are the company's set-up, not a party's data: every
    # signed-in user reads them (changing them is tested above)
    "leads": {"POST /v1/intake/{source_key}", "GET /v1/campaigns/{campaign_id}", "GET /v1/routing-rules/{rule_id}",
              "GET /v1/teams/{team_id}"},
    "service-desk": {"GET /v1/csat/{token}", "POST /v1/csat/{token}"},
    "notify": {"GET /v1/templates/{tid}", "POST /v1/templates/{tid}/preview"},
}


def id_operations(name: str) -> set[str]:
    return {f"{m} {p}" for m, p, _ in h.operations(name) if "{" in p}


@pytest.mark.parametrize("name", h.NAMES)
def test_every_id_taking_operation_is_in_the_table(name):
    ops = id_operations(name)
    missing = ops - set(TABLE[name]) - NOT_PRIVATE.get(name, set())
    assert not missing, f"classify these {name} operations in TABLE: {sorted(missing)}"
    stale = (set(TABLE[name]) | NOT_PRIVATE.get(name, set())) - ops
    assert not stale, f"no longer in the {name} API: {sorted(stale)}"


def _fill(path: str, ids: dict) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: str(ids[m.group(1)]), path)


def _snapshot(c: h.Client, name: str, ids: dict) -> list:
    """What the insiders see of their objects: must be the same after the strangers' attempts."""
    reads = [f"GET {p}" for p in ("/v1/leads/{lead_id}", "/v1/teams/{team_id}", "/v1/routing-rules/{rule_id}",
                                  "/v1/customers/{customer_id}", "/v1/quotes/{quote_id}",
                                  "/v1/contracts/{contract_id}", "/v1/orders/{order_id}",
                                  "/v1/approvals/{approval_id}", "/v1/tickets/{ticket_id}",
                                  "/v1/webhooks/{hook_id}", "/v1/recipients/{user_id}", "/v1/agents/{user_id}")]
    out = []
    for op in reads:
        if op in id_operations(name):
            body = c.get(_fill(op.split(" ", 1)[1], ids), ADMIN).get_json()
            if isinstance(body, dict):
                body = {k: v for k, v in body.items() if k not in ("updated_at", "version", "locked_by", "lock")}
            out.append((op, body))
    return out


@pytest.mark.parametrize("name", h.NAMES)
def test_strangers_get_403_or_404_and_no_data(name, tmp_path):
    app = h.make_app(name, tmp_path, extra={"NOTIFY_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32"})
    try:
        c = h.Client(app)
        ids = WORLDS[name](c)
        before = _snapshot(c, name, ids)
        leaks, tried = [], 0
        for op, (body, strangers) in sorted(TABLE[name].items()):
            method, path = op.split(" ", 1)
            url = _fill(path, ids)
            for who in strangers:
                tried += 1
                r = c.call(method, url, who, body)
                text = r.get_data(as_text=True)
                if r.status_code not in (403, 404) or SECRET in text or SECRET_PHONE in text:
                    leaks.append(f"{op} as {who[0]} ({who[1][0]}): {r.status_code} {text[:160]}")
        assert tried > len(TABLE[name])
        path, who = INSIDER_LIST[name]
        assert SECRET in c.get(path, who).get_data(as_text=True), f"{who[0]} should see the object in {path}"
        for method, path, _ in h.operations(name):
            if method != "GET" or "{" in path or f"{method} {path}" in NOT_LISTS:
                continue
            for who in LIST_STRANGERS[name]:
                tried += 1
                r = c.call(method, path, who)
                text = r.get_data(as_text=True)
                secrets = (SECRET_PHONE, "rep1@example.com") if f"{method} {path}" in DIRECTORY else (SECRET, SECRET_PHONE)
                if r.status_code >= 500 or any(x in text for x in secrets):
                    leaks.append(f"{method} {path} as {who[0]} ({who[1][0]}): {r.status_code} {text[:160]}")
        h.record("object_access", name, {"id_operations": len(TABLE[name]), "requests": tried,
                                         "failures": len(leaks)})
        assert not leaks, "\n".join(leaks)
        assert _snapshot(c, name, ids) == before, "a stranger changed an object"
    finally:
        h.close(app)
