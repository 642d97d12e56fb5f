"""Ownership lookup (撞单查询): is this customer already known, in the pool, or owned, and by whom?
Answers any rep with display names and masked contact data only."""
from __future__ import annotations

from sqlalchemy import or_, select

from ..models import customers, lead_keys, leads
from . import normalise
from .records import display_name


def lookup(session, phone: str | None, email: str | None, company: str | None, city: str | None) -> dict:
    conds = []
    if phone:
        conds.append((lead_keys.c.kind == "phone") & (lead_keys.c.value == normalise.phone(phone)))
    if email:
        conds.append((lead_keys.c.kind == "email") & (lead_keys.c.value == normalise.email(email)))
    if company:
        folded = normalise.company(company)
        if folded:
            if city:
                conds.append((lead_keys.c.kind == "company") & (lead_keys.c.value == normalise.company_key(company, city)))
            else:
                conds.append((lead_keys.c.kind == "company") & lead_keys.c.value.like(
                    folded.replace("%", r"\%").replace("_", r"\_") + "|%", escape="\\"))
    if not conds:
        return {"status": "unknown", "matches": []}
    rows = session.execute(select(lead_keys).where(or_(*conds)).limit(20)).mappings().all()
    matches, seen = [], set()
    for k in rows:
        if k["lead_id"] is not None and ("lead", k["lead_id"]) not in seen:
            seen.add(("lead", k["lead_id"]))
            lead = session.execute(select(leads).where(leads.c.id == k["lead_id"])).mappings().first()
            if lead is None:
                continue
            state = "pool" if lead["status"] == "pooled" else (
                "customer" if lead["status"] == "converted" else "owned")
            matches.append({"kind": "lead", "matched_on": k["kind"], "state": state, "status": lead["status"],
                            "lead_id": str(lead["id"]) if state == "pool" else None,
                            "owner_name": lead["owner_name"] if state != "pool" else None,
                            "name": lead["name"], "company": lead["company"],
                            "phone": normalise.mask_phone(lead["phone"]), "email": normalise.mask_email(lead["email"])})
        if k["customer_id"] is not None and ("customer", k["customer_id"]) not in seen:
            seen.add(("customer", k["customer_id"]))
            c = session.execute(select(customers).where(customers.c.customer_id == k["customer_id"])).mappings().first()
            if c is None:
                continue
            matches.append({"kind": "customer", "matched_on": k["kind"], "state": "customer", "status": None,
                            "lead_id": None, "owner_name": display_name(session, c["owner_id"]),
                            "name": c["name"], "company": c["company"],
                            "phone": normalise.mask_phone(c["phone"]), "email": normalise.mask_email(c["email"])})
    states = {m["state"] for m in matches}
    status = next((s for s in ("customer", "owned", "pool") if s in states), "unknown")
    return {"status": status, "matches": matches}
