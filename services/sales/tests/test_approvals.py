"""Quotes and the approval chain: every path of the default policy, role and team limits, no
self-approval, admin fallback, return/withdraw, locking and revisions, 会签, reminders and
escalation on a controlled clock."""
import pytest

from sales.testing import ADMIN, FIN, GM, MGR, MGR2, REP, REP2, WEST_MGR, opportunity, quote, seed_products


@pytest.fixture
def opp(api):
    seed_products(api)
    return opportunity(api)


def pending(api, who):
    return api.get("/v1/approvals?status=pending", who).json


def decide(api, who, approval_id, decision="approve", **kw):
    return api.post(f"/v1/approvals/{approval_id}/decision", who, {"decision": decision, **kw})


def test_quote_totals_are_computed_exactly(api, opp):
    r = api.post("/v1/quotes", REP, {"opportunity_id": opp["id"], "currency": "CNY", "lines": [
        {"sku": "SEAT", "quantity": "3", "discount_pct": "12.5"},
        {"sku": "SETUP", "quantity": "1", "discount_pct": "0", "unit_price": "3333.33"}]})
    assert r.status_code == 201, r.json
    q = r.json
    assert q["subtotal"] == "6333.33" and q["discount_amount"] == "375.00" and q["total"] == "5958.33"
    assert q["max_discount_pct"] == "12.5" and q["status"] == "draft"
    assert [l["net"] for l in q["lines"]] == ["2625.00", "3333.33"]
    # half-up to the minor unit: 0.333 × 1.5 = 0.4995 → 0.50; JPY has no minor unit
    r = api.post("/v1/quotes", REP, {"opportunity_id": opp["id"], "currency": "JPY", "lines": [
        {"sku": "YEN", "quantity": "3", "discount_pct": "10"}]})
    assert r.json["subtotal"] == "4500" and r.json["discount_amount"] == "450" and r.json["total"] == "4050"


def test_no_approval_needed_up_to_ten_percent(api, opp):
    q = quote(api, opp["id"], discount="10")
    r = api.post(f"/v1/quotes/{q['id']}/submit", REP)
    assert r.status_code == 200 and r.json["status"] == "approved" and r.json["approvals"] == []
    assert api.events("approval.requested") == []


def test_over_ten_percent_needs_a_manager_of_the_same_team(api, opp):
    q = quote(api, opp["id"], discount="15")
    r = api.post(f"/v1/quotes/{q['id']}/submit", REP)
    assert r.json["status"] == "pending_approval"
    [a] = r.json["approvals"]
    assert [s["role"] for s in a["steps"]] == ["sales_manager"] and a["steps"][0]["team"] == "east"
    [ev] = api.events("approval.requested")
    assert ev["payload"]["approver_role"] == "sales_manager" and ev["payload"]["approver_team"] == "east"
    assert ev["payload"]["max_discount_pct"] == "15" and ev["payload"]["amount"] == "8500.00"
    # who may decide: not another team's manager, not a rep, not finance
    assert pending(api, WEST_MGR) == [] and pending(api, REP2) == []
    assert decide(api, WEST_MGR, a["id"]).status_code == 404  # another team's request is not even visible
    assert decide(api, REP2, a["id"]).status_code in (403, 404)
    assert decide(api, FIN, a["id"]).status_code == 403
    # a locked quote cannot be edited
    assert api.patch(f"/v1/quotes/{q['id']}", REP, {"lines": [{"sku": "SEAT", "quantity": "1"}]}).status_code == 409
    assert [x["id"] for x in pending(api, MGR)] == [a["id"]]
    r = decide(api, MGR, a["id"], comment="ok")
    assert r.status_code == 200 and r.json == {"status": "approved", "step": 1, "final": True}
    assert decide(api, MGR2, a["id"]).status_code == 409  # already decided
    body = api.get(f"/v1/quotes/{q['id']}", REP).json
    assert body["status"] == "approved"
    trail = body["approvals"][0]["trail"]
    assert [(t["actor_id"], t["action"]) for t in trail] == [("rep1", "submit"), ("mgr1", "approve")]
    assert trail[1]["comment"] == "ok"
    [dec] = api.events("approval.decided")
    assert dec["payload"]["final"] is True and dec["payload"]["approver_id"] == "mgr1"


def test_over_twenty_percent_goes_manager_then_gm_then_finance(api, opp):
    q = quote(api, opp["id"], discount="25")
    a = api.post(f"/v1/quotes/{q['id']}/submit", REP).json["approvals"][0]
    assert [s["role"] for s in a["steps"]] == ["sales_manager", "general_manager", "finance"]
    assert decide(api, GM, a["id"]).status_code == 403  # not its turn
    assert decide(api, MGR, a["id"], step=1).json == {"status": "pending", "step": 2, "final": False}
    assert decide(api, MGR, a["id"], step=1).status_code == 409
    assert pending(api, MGR) == [] and [x["id"] for x in pending(api, GM)] == [a["id"]]
    assert decide(api, GM, a["id"]).json["step"] == 3
    assert api.get(f"/v1/quotes/{q['id']}", REP).json["status"] == "pending_approval"
    assert decide(api, FIN, a["id"]).json == {"status": "approved", "step": 3, "final": True}
    assert api.get(f"/v1/quotes/{q['id']}", REP).json["status"] == "approved"
    roles = [e["payload"]["approver_role"] for e in api.events("approval.requested")]
    assert roles == ["sales_manager", "general_manager", "finance"]


def test_reject_and_return_and_withdraw(api, opp):
    q1 = quote(api, opp["id"], discount="25")
    a1 = api.post(f"/v1/quotes/{q1['id']}/submit", REP).json["approvals"][0]
    decide(api, MGR, a1["id"])
    assert decide(api, GM, a1["id"], "reject", comment="too deep").json == {"status": "rejected", "step": 2,
                                                                            "final": True}
    assert api.get(f"/v1/quotes/{q1['id']}", REP).json["status"] == "rejected"
    assert decide(api, FIN, a1["id"]).status_code == 409
    # a rejected quote changes only through a new revision, which is approved again
    r = api.post(f"/v1/quotes/{q1['id']}/revise", REP)
    assert r.status_code == 201 and r.json["revision"] == 2 and r.json["previous_id"] == q1["id"]
    assert r.json["status"] == "draft" and r.json["total"] == q1["total"]

    q2 = quote(api, opp["id"], discount="15")
    a2 = api.post(f"/v1/quotes/{q2['id']}/submit", REP).json["approvals"][0]
    assert decide(api, MGR, a2["id"], "return", comment="fix quantity").json["status"] == "returned"
    assert api.get(f"/v1/quotes/{q2['id']}", REP).json["status"] == "returned"
    r = api.patch(f"/v1/quotes/{q2['id']}", REP, {"lines": [{"sku": "SEAT", "quantity": "5", "discount_pct": "5"}]})
    assert r.status_code == 200 and r.json["total"] == "4750.00"
    assert api.post(f"/v1/quotes/{q2['id']}/submit", REP).json["status"] == "approved"

    q3 = quote(api, opp["id"], discount="15")
    a3 = api.post(f"/v1/quotes/{q3['id']}/submit", REP).json["approvals"][0]
    assert api.post(f"/v1/approvals/{a3['id']}/withdraw", MGR).status_code == 403  # only the requester
    r = api.post(f"/v1/approvals/{a3['id']}/withdraw", REP, {"comment": "wrong customer"})
    assert r.status_code == 200 and r.json["status"] == "withdrawn"
    assert api.get(f"/v1/quotes/{q3['id']}", REP).json["status"] == "withdrawn"
    assert decide(api, MGR, a3["id"]).status_code == 409
    assert api.post(f"/v1/approvals/{a3['id']}/withdraw", REP).status_code == 409


def test_nobody_approves_their_own_request_and_admin_is_the_fallback(api, opp):
    # a manager quoting on their own: another manager of the team decides, not they
    q = quote(api, opp["id"], discount="15", who=MGR)
    a = api.post(f"/v1/quotes/{q['id']}/submit", MGR).json["approvals"][0]
    r = decide(api, MGR, a["id"])
    assert r.status_code == 403 and "own" in r.json["detail"]
    assert decide(api, MGR2, a["id"]).json["status"] == "approved"
    # a requester without a team: no team manager can decide, so the step goes to the admin
    loner = ("rep7", ("sales_rep",), None)
    own = opportunity(api, "L9", owner="rep7", team=None)
    q = quote(api, own["id"], discount="15", who=loner)
    a = api.post(f"/v1/quotes/{q['id']}/submit", loner).json["approvals"][0]
    assert a["steps"][0]["role"] == "admin" and a["trail"][-1]["action"] == "assign"
    assert decide(api, GM, a["id"]).status_code == 403
    assert decide(api, ADMIN, a["id"]).json["status"] == "approved"
    # named approvers that are only the requester: the admin again
    api.put("/v1/approval-policies", ADMIN, {"policies": [
        {"subject_type": "quote", "threshold": "10", "steps": [{"users": ["rep1"], "mode": "any"}]}]})
    q = quote(api, opp["id"], discount="15")
    a = api.post(f"/v1/quotes/{q['id']}/submit", REP).json["approvals"][0]
    assert a["steps"][0]["role"] == "admin"


def test_all_of_step_needs_every_named_approver(api, opp):
    r = api.put("/v1/approval-policies", ADMIN, {"policies": [
        {"subject_type": "quote", "threshold": "5", "steps": [{"users": ["mgr1", "gm1"], "mode": "all"}]}]})
    assert r.status_code == 200, r.json
    assert api.put("/v1/approval-policies", MGR, {"policies": []}).status_code == 403
    bad = api.put("/v1/approval-policies", ADMIN, {"policies": [
        {"subject_type": "quote", "threshold": "5", "steps": [{"role": "finance", "mode": "all"}]}]})
    assert bad.status_code == 422
    q = quote(api, opp["id"], discount="8")
    a = api.post(f"/v1/quotes/{q['id']}/submit", REP).json["approvals"][0]
    assert decide(api, MGR, a["id"]).json == {"status": "pending", "step": 1, "final": False}
    assert decide(api, MGR, a["id"]).status_code == 409  # once each
    assert decide(api, FIN, a["id"]).status_code == 403
    assert decide(api, GM, a["id"]).json == {"status": "approved", "step": 1, "final": True}


def test_contract_over_500k_needs_gm_then_finance(api, opp):
    q = quote(api, opp["id"], qty="600")  # 600,000 CNY, no discount
    assert api.post(f"/v1/quotes/{q['id']}/submit", REP).json["status"] == "approved"
    r = api.post("/v1/contracts", REP, {"quote_id": q["id"], "start_date": "2026-03-01", "end_date": "2027-02-28",
                                        "payment_plan": [{"due_date": "2026-03-31", "amount": "600000.00"}]})
    assert r.status_code == 201, r.json
    cid = r.json["id"]
    c = api.post(f"/v1/contracts/{cid}/submit", REP).json
    assert c["status"] == "pending_approval"
    a = c["approvals"][0]
    assert [s["role"] for s in a["steps"]] == ["general_manager", "finance"]
    assert decide(api, MGR, a["id"]).status_code == 403
    decide(api, GM, a["id"])
    assert decide(api, FIN, a["id"]).json["status"] == "approved"
    assert api.get(f"/v1/contracts/{cid}", REP).json["status"] == "approved"


def test_waiting_step_reminds_then_escalates(api, opp, clock):
    from sales import jobs
    q = quote(api, opp["id"], discount="15")
    a = api.post(f"/v1/quotes/{q['id']}/submit", REP).json["approvals"][0]
    rt = api.runtime
    assert jobs.approval_reminders(rt) == {"reminded": 0, "escalated": 0}
    clock.advance(hours=25)  # one business day (Monday → Tuesday)
    assert jobs.approval_reminders(rt) == {"reminded": 1, "escalated": 0}
    assert jobs.approval_reminders(rt) == {"reminded": 0, "escalated": 0}  # once
    reqs = api.events("approval.requested")
    assert len(reqs) == 2 and reqs[1]["payload"]["reminder"] is True
    clock.advance(hours=24)
    assert jobs.approval_reminders(rt) == {"reminded": 0, "escalated": 1}
    body = api.get(f"/v1/approvals/{a['id']}", REP).json
    assert body["steps"][0]["role"] == "general_manager" and body["steps"][0]["escalations"] == 1
    assert [t["action"] for t in body["trail"]][-2:] == ["remind", "escalate"]
    assert decide(api, MGR, a["id"]).status_code == 403
    assert decide(api, GM, a["id"]).json["status"] == "approved"


def test_weekends_do_not_count_towards_the_waiting_limit(api, opp, clock):
    from datetime import datetime, timezone
    from sales import jobs
    clock.set(datetime(2026, 3, 6, 12, 0, tzinfo=timezone.utc))  # Friday noon
    q = quote(api, opp["id"], discount="15")
    api.post(f"/v1/quotes/{q['id']}/submit", REP)
    clock.set(datetime(2026, 3, 9, 6, 0, tzinfo=timezone.utc))  # Monday 06:00: 18 business hours
    assert jobs.approval_reminders(api.runtime) == {"reminded": 0, "escalated": 0}
    clock.set(datetime(2026, 3, 9, 12, 0, tzinfo=timezone.utc))  # 24 business hours
    assert jobs.approval_reminders(api.runtime) == {"reminded": 1, "escalated": 0}


def test_policies_are_validated_and_shown(api):
    r = api.get("/v1/approval-policies", REP)
    assert [(p["subject_type"], p["threshold"], len(p["steps"])) for p in r.json["policies"]] == \
        [("quote", "10", 1), ("quote", "20", 3), ("contract", "500000", 2)]
    for bad in ({"subject_type": "quote", "threshold": "10.00001", "steps": [{"role": "finance"}]},
                {"subject_type": "quote", "threshold": "10", "steps": []},
                {"subject_type": "quote", "threshold": "10", "steps": [{"mode": "any"}]},
                {"subject_type": "quote", "threshold": "10", "steps": [{"role": "pope"}]},
                {"subject_type": "quote", "threshold": 10.5, "steps": [{"role": "finance"}]},
                {"subject_type": "quote", "threshold": "10", "steps": [{"role": "finance"}],
                 "remind_after_hours": 10, "escalate_after_hours": 5}):
        assert api.put("/v1/approval-policies", ADMIN, {"policies": [bad]}).status_code == 422, bad
    assert len(api.get("/v1/approval-policies", REP).json["policies"]) == 3
