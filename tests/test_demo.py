"""`crm demo` against a running platform (the embedded default, as `make run` starts it): what it
loads through the APIs is there for a new user to see, within a minute."""
import pytest

from crm_shared.demo import ADMIN, PEOPLE, Api, run_demo


pytestmark = pytest.mark.slow

@pytest.mark.parametrize("platform_factory", ["embedded"], indirect=True)
def test_the_demo_loads_the_whole_flow(platform_factory):
    p = platform_factory()
    urls = {n: p.url(n) for n in p.services}
    lines = []
    made = run_demo(urls, echo=lines.append, clock_file=p.clock_file, timeout=45)
    assert made["seconds"] < 60, made
    api = Api(urls)
    leads = api.get(ADMIN, "leads", "/v1/leads", params={"per_page": 100})["items"]
    assert {"王建国", "Emily Clark", "陈晓燕", "Michael Chen", "吴磊"} <= {x["name"] for x in leads}
    assert {x["status"] for x in leads} >= {"converted", "new", "pooled"}
    customers = api.get(ADMIN, "sales", "/v1/customers")
    assert len(customers) == 3 and {c["team_id"] for c in customers} == {"east", "north"}
    quotes = {q["status"] for q in api.get(ADMIN, "sales", "/v1/quotes")}
    assert {"approved", "pending_approval"} <= quotes
    # the quote in approval waits in the east sales manager's list
    assert api.get(PEOPLE["mgr-wang"], "sales", "/v1/approvals")
    contracts = {c["status"] for c in api.get(ADMIN, "sales", "/v1/contracts")}
    assert {"active", "expiring"} <= contracts
    orders = {o["status"] for o in api.get(PEOPLE["ops-zhang"], "sales", "/v1/orders")}
    assert orders == {"fulfilled", "submitted"}
    tickets = api.get(PEOPLE["sup-zhao"], "service-desk", "/v1/tickets", params={"limit": 200})
    assert {t["type"] for t in tickets} == {"onboarding", "complaint", "inquiry"}
    aging = api.get(PEOPLE["fin-chen"], "sales", "/v1/reports/receivables-aging")
    assert aging["total"]["1_30"] == "40000.00"
    inbox_types = {i["event_type"] for u in PEOPLE.values() for i in api.get(u, "notify", "/v1/inbox")["items"]}
    assert {"lead.assigned", "lead.duplicate_hit", "approval.requested", "approval.decided", "contract.signed",
            "order.submitted", "order.fulfilled", "ticket.assigned", "payment.overdue",
            "contract.expiring"} <= inbox_types
    assert any("inboxes" in line for line in lines)
    # a second run finds the data there and leaves it alone
    again = run_demo(urls, echo=lines.append, clock_file=p.clock_file)
    assert "inbox_unread" not in again and len(api.get(ADMIN, "sales", "/v1/customers")) == 3
