"""Reports: share of SLA timers kept per queue, priority, agent, target or period; CSAT scores."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select

from ..models import csat_requests, ticket_slas, tickets
from .common import aware

GROUPS = ("queue", "priority", "agent", "target", "month", "week")


def _key(group: str, row) -> str:
    created = aware(row["created_at"])
    if group == "agent":
        return row["assignee_id"] or "(unassigned)"
    if group == "month":
        return f"{created:%Y-%m}"
    if group == "week":
        y, w, _ = created.isocalendar()
        return f"{y}-W{w:02d}"
    return row[group]


def outcome(t, now: datetime) -> str:
    """within, breached, or running (not decided yet)."""
    due, met = aware(t["due_at"]), aware(t["met_at"])
    if t["breached_at"] is not None or (met is not None and met > due):
        return "breached"
    if met is not None:
        return "within"
    if t["running"] and due <= now:
        return "breached"
    return "running"


def sla_report(session, now: datetime, group_by: str, start: datetime | None, end: datetime | None) -> list[dict]:
    q = (select(ticket_slas.c.target, ticket_slas.c.due_at, ticket_slas.c.met_at, ticket_slas.c.breached_at,
                ticket_slas.c.running, tickets.c.queue, tickets.c.priority, tickets.c.assignee_id, tickets.c.created_at)
         .join(tickets, tickets.c.id == ticket_slas.c.ticket_id))
    if start:
        q = q.where(tickets.c.created_at >= start)
    if end:
        q = q.where(tickets.c.created_at < end)
    acc: dict[str, dict] = defaultdict(lambda: {"total": 0, "within": 0, "breached": 0, "running": 0})
    for r in session.execute(q).mappings():
        a = acc[_key(group_by, r)]
        a["total"] += 1
        a[outcome(r, now)] += 1
    out = []
    for key in sorted(acc):
        a = acc[key]
        decided = a["within"] + a["breached"]
        out.append({"key": key, **a, "within_share": round(a["within"] / decided, 4) if decided else None})
    return out


def csat_report(session, group_by: str, start: datetime | None, end: datetime | None) -> dict:
    q = (select(csat_requests.c.created_at, csat_requests.c.submitted_at, csat_requests.c.score, tickets.c.queue,
                tickets.c.priority, tickets.c.assignee_id, tickets.c.type)
         .join(tickets, tickets.c.id == csat_requests.c.ticket_id))
    if start:
        q = q.where(csat_requests.c.created_at >= start)
    if end:
        q = q.where(csat_requests.c.created_at < end)
    groups: dict[str, dict] = defaultdict(lambda: {"requested": 0, "answered": 0, "sum": 0,
                                                   "distribution": {str(i): 0 for i in range(1, 6)}})
    total = groups["(all)"]
    for r in session.execute(q).mappings():
        key = _key(group_by, {**r, "target": None}) if group_by != "target" else "(all)"
        for g in {id(total): total, id(groups[key]): groups[key]}.values():
            g["requested"] += 1
            if r["submitted_at"] is not None:
                g["answered"] += 1
                g["sum"] += r["score"]
                g["distribution"][str(r["score"])] += 1
    rows = []
    for key in sorted(groups):
        g = groups[key]
        rows.append({"key": key, "requested": g["requested"], "answered": g["answered"],
                     "response_rate": round(g["answered"] / g["requested"], 4) if g["requested"] else None,
                     "average": round(g["sum"] / g["answered"], 2) if g["answered"] else None,
                     "distribution": g["distribution"]})
    return {"groups": rows}
