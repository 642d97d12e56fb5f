"""The approval chain (the OA core): policies choose the steps, steps run in order, each names a role
(managers only for their own team) or named users, any one of them (或签) or all of them (会签).
Nobody approves their own request; a step nobody can decide goes to the admin; waiting steps remind
and then escalate. Two decisions racing on one step: the database lets exactly one count."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from .. import models
from .errors import Conflict, Forbidden, Invalid, NotFound
from .money import plain

ap, st, dec, pol = models.approvals, models.approval_steps, models.approval_decisions, models.approval_policies
APPROVER_ROLES = ("sales_manager", "general_manager", "finance", "admin")
UP = {"sales_manager": "general_manager", "general_manager": "admin", "finance": "admin", None: "admin"}
TEAM_ROLES = ("sales_manager",)


def _step(role=None, users=(), mode="any"):
    return {"role": role, "users": list(users), "mode": mode}


DEFAULT_POLICIES = [
    {"subject_type": "quote", "threshold": Decimal("10"), "steps": [_step("sales_manager")],
     "remind_after_hours": 24, "escalate_after_hours": 48},
    {"subject_type": "quote", "threshold": Decimal("20"),
     "steps": [_step("sales_manager"), _step("general_manager"), _step("finance")],
     "remind_after_hours": 24, "escalate_after_hours": 48},
    {"subject_type": "contract", "threshold": Decimal("500000"),
     "steps": [_step("general_manager"), _step("finance")], "remind_after_hours": 24, "escalate_after_hours": 48},
]


# -- policies -------------------------------------------------------------------------------------

def policies(session) -> list[dict]:
    rows = session.execute(select(pol).order_by(pol.c.subject_type, pol.c.threshold)).all()
    if not rows:
        return [dict(p) for p in DEFAULT_POLICIES]
    return [{"subject_type": r.subject_type, "threshold": Decimal(r.threshold), "steps": r.steps,
             "remind_after_hours": r.remind_after_hours, "escalate_after_hours": r.escalate_after_hours} for r in rows]


def check_policies(items: list[dict]) -> None:
    for i, p in enumerate(items):
        if not p["steps"]:
            raise Invalid("policies", f"Policy {i + 1} has no steps.")
        if p["threshold"].as_tuple().exponent < -4 or p["threshold"] >= Decimal("1e14"):
            raise Invalid("policies", f"Policy {i + 1}: the threshold has at most 4 decimal places and 14 digits.")
        if p["escalate_after_hours"] < p["remind_after_hours"]:
            raise Invalid("policies", f"Policy {i + 1}: escalate_after_hours must be ≥ remind_after_hours.")
        for s in p["steps"]:
            if not s.get("role") and not s.get("users"):
                raise Invalid("policies", f"Policy {i + 1}: each step names a role or users.")
            if s.get("mode") == "all" and not s.get("users"):
                raise Invalid("policies", f"Policy {i + 1}: an all-of (会签) step must name its users.")
    seen = set()
    for p in items:
        key = (p["subject_type"], p["threshold"])
        if key in seen:
            raise Invalid("policies", f"Two {key[0]} policies with threshold {key[1]}.")
        seen.add(key)


def replace_policies(session, items: list[dict]) -> None:
    check_policies(items)
    session.execute(pol.delete())
    for p in items:
        steps = [{"role": s.get("role"), "users": list(s.get("users") or []), "mode": s.get("mode", "any")}
                 for s in p["steps"]]
        session.execute(pol.insert().values(subject_type=p["subject_type"], threshold=p["threshold"], steps=steps,
                                            remind_after_hours=p["remind_after_hours"],
                                            escalate_after_hours=p["escalate_after_hours"]))


def applicable(items: list[dict], subject_type: str, value: Decimal) -> dict | None:
    """The policy with the highest threshold that `value` is over (strictly), if any."""
    best = None
    for p in items:
        if p["subject_type"] == subject_type and value > p["threshold"]:
            if best is None or p["threshold"] > best["threshold"]:
                best = p
    return best


# -- business time ------------------------------------------------------------------------------

def business_hours_between(start: datetime, end: datetime) -> float:
    """Hours between two instants, not counting Saturdays and Sundays (UTC days; holidays are not
    known to this service)."""
    if end <= start:
        return 0.0
    total = timedelta()
    cursor = start
    while cursor < end:
        next_midnight = datetime.combine(cursor.date() + timedelta(days=1), datetime.min.time(), tzinfo=cursor.tzinfo)
        piece_end = min(next_midnight, end)
        if cursor.weekday() < 5:
            total += piece_end - cursor
        cursor = piece_end
    return total.total_seconds() / 3600


# -- the chain ------------------------------------------------------------------------------------

def get(session, approval_id: int, lock: bool = False):
    q = select(ap).where(ap.c.id == approval_id)
    row = session.execute(q.with_for_update() if lock else q).first()
    if row is None:
        raise NotFound(f"No approval {approval_id}.")
    return row


def steps_of(session, approval_id: int):
    return session.execute(select(st).where(st.c.approval_id == approval_id).order_by(st.c.seq)).all()


def current_step(session, approval, lock: bool = False):
    q = select(st).where(st.c.approval_id == approval.id, st.c.seq == approval.current_step)
    return session.execute(q.with_for_update() if lock else q).first()


def _trail(session, approval_id, step_id, actor, action, comment, now):
    session.execute(dec.insert().values(approval_id=approval_id, step_id=step_id, actor_id=actor, action=action,
                                        comment=comment, at=now))


def _requested(uow, approval, step, *, reminder: bool = False):
    uow.emit("approval.requested", {
        "approval_id": str(approval.id), "step_id": str(step.id), "subject_type": approval.subject_type,
        "subject_id": str(approval.subject_id), "requester_id": approval.requester_id,
        "approver_ids": list(step.users or []), "approver_role": step.role, "approver_team": step.team,
        "step": step.seq, "amount": approval.amount, "currency": approval.currency,
        "max_discount_pct": None if approval.max_discount_pct is None else plain(approval.max_discount_pct),
        "reminder": reminder,
    }, aggregate_type="approval", aggregate_id=approval.id)


def _activate(uow, approval, seq: int, now) -> None:
    """Open step `seq`: resolve who may decide it (never the requester; the admin when nobody else
    can) and tell them."""
    s = uow.session
    step = s.execute(select(st).where(st.c.approval_id == approval.id, st.c.seq == seq)).first()
    role, users, team = step.role, [u for u in (step.users or []) if u != approval.requester_id], None
    reason = None
    if step.users and not users:
        reason = "the only named approver is the requester"
    elif role in TEAM_ROLES and not users:
        team = approval.requester_team
        if not team:
            reason = "the requester has no team, so no team manager can decide"
    if reason:
        role, users, team = "admin", [], None
        _trail(s, approval.id, step.id, "system", "assign", f"Assigned to the admin: {reason}.", now)
    s.execute(st.update().where(st.c.id == step.id).values(role=role, users=users, team=team, status="pending",
                                                           started_at=now))
    s.execute(ap.update().where(ap.c.id == approval.id).values(current_step=seq))
    _requested(uow, get(s, approval.id), s.execute(select(st).where(st.c.id == step.id)).first())


def start(uow, *, subject_type: str, subject_id: int, requester_id: str, requester_team: str | None, value: Decimal,
          amount: Decimal | None, currency: str | None, max_discount_pct: Decimal | None, now) -> int | None:
    """Open an approval per policy; None when no policy applies (approved at once)."""
    s = uow.session
    policy = applicable(policies(s), subject_type, value)
    if policy is None:
        return None
    aid = s.execute(ap.insert().values(
        subject_type=subject_type, subject_id=subject_id, requester_id=requester_id, requester_team=requester_team,
        status="pending", current_step=1, amount=amount, currency=currency, max_discount_pct=max_discount_pct,
        remind_after_hours=policy["remind_after_hours"], escalate_after_hours=policy["escalate_after_hours"],
        created_at=now)).inserted_primary_key[0]
    for seq, step in enumerate(policy["steps"], 1):
        s.execute(st.insert().values(approval_id=aid, seq=seq, role=step.get("role"), users=list(step.get("users") or []),
                                     mode=step.get("mode", "any"), status="waiting", escalations=0))
    first = s.execute(select(st.c.id).where(st.c.approval_id == aid, st.c.seq == 1)).scalar_one()
    _trail(s, aid, first, requester_id, "submit", None, now)
    _activate(uow, get(s, aid), 1, now)
    return aid


def eligible(step, approval, user, decided: set[str] = frozenset()) -> tuple[bool, str]:
    if user.id == approval.requester_id:
        return False, "Nobody approves their own request."
    if step.role == "admin":
        return user.is_admin, "This step waits for the admin."
    if step.users:
        if user.id not in step.users:
            return False, "You are not an approver of this step."
        if user.id in decided:
            return False, "You have already decided this step."
        return True, ""
    if not user.has(step.role):
        return False, f"This step needs the {step.role} role."
    if step.role in TEAM_ROLES and user.team != step.team:
        return False, "A manager decides only for their own team."
    return True, ""


def _decided_by(session, step_id) -> set[str]:
    return set(session.execute(select(dec.c.actor_id).where(dec.c.step_id == step_id,
                                                            dec.c.action == "approve")).scalars())


SUBJECT_STATUS = {"quote": {"approved": "approved", "rejected": "rejected", "returned": "returned",
                            "withdrawn": "withdrawn"},
                  "contract": {"approved": "approved", "rejected": "rejected", "returned": "draft",
                               "withdrawn": "draft"}}


def _finish(uow, approval, outcome: str, now) -> None:
    s = uow.session
    s.execute(ap.update().where(ap.c.id == approval.id).values(status=outcome, decided_at=now))
    table = models.quotes if approval.subject_type == "quote" else models.contracts
    s.execute(table.update().where(table.c.id == approval.subject_id, table.c.status == "pending_approval")
              .values(status=SUBJECT_STATUS[approval.subject_type][outcome], updated_at=now))


def decide(uow, approval_id: int, user, decision: str, comment: str | None, *, now, step: int | None = None) -> dict:
    s = uow.session
    # Lock order for every change to a request: the approval row, then its step. Decisions, withdrawal
    # and escalation of one request are serialised (PostgreSQL; SQLite serialises all writers).
    approval = get(s, approval_id, lock=True)
    if approval.status != "pending":
        raise Conflict(f"This request is already {approval.status}.")
    cur = current_step(s, approval, lock=True)
    if step is not None and step != cur.seq:
        raise Conflict(f"Step {step} is already decided; the request is at step {cur.seq}.")
    if cur.status != "pending":
        raise Conflict("This step is already decided.")
    ok, why = eligible(cur, approval, user, _decided_by(s, cur.id))
    if not ok:
        if user.id in _decided_by(s, cur.id):
            raise Conflict(why)
        for earlier in steps_of(s, approval.id)[:cur.seq - 1]:
            if eligible(earlier, approval, user)[0]:
                # the step this user could decide was decided a moment ago (by someone else)
                raise Conflict(f"Step {earlier.seq} is already decided; the request is at step {cur.seq}.")
        raise Forbidden(why)
    if decision == "approve" and cur.mode == "all":
        _trail(s, approval.id, cur.id, user.id, "approve", comment, now)
        if not set(cur.users) <= _decided_by(s, cur.id):
            uow.emit("approval.decided", _decided(approval, cur, user, decision, comment, final=False),
                     aggregate_type="approval", aggregate_id=approval.id)
            return {"status": "pending", "step": cur.seq, "final": False}
    new_status = {"approve": "approved", "reject": "rejected", "return": "returned"}[decision]
    # the arbiter: only the decision that moves the step out of `pending` counts
    res = s.execute(st.update().where(st.c.id == cur.id, st.c.status == "pending")
                    .values(status=new_status, decided_at=now))
    if res.rowcount != 1:
        raise Conflict("This step is already decided.")
    if not (decision == "approve" and cur.mode == "all"):
        _trail(s, approval.id, cur.id, user.id, decision, comment, now)
    last = s.execute(select(func.max(st.c.seq)).where(st.c.approval_id == approval.id)).scalar_one()
    final = decision != "approve" or cur.seq == last
    uow.emit("approval.decided", _decided(approval, cur, user, decision, comment, final=final),
             aggregate_type="approval", aggregate_id=approval.id)
    if decision == "approve" and not final:
        _activate(uow, approval, cur.seq + 1, now)
        return {"status": "pending", "step": cur.seq + 1, "final": False}
    _finish(uow, approval, new_status, now)
    return {"status": new_status, "step": cur.seq, "final": True}


def _decided(approval, step, user, decision, comment, final):
    return {"approval_id": str(approval.id), "subject_type": approval.subject_type,
            "subject_id": str(approval.subject_id), "requester_id": approval.requester_id, "approver_id": user.id,
            "step": step.seq, "decision": decision, "final": final, "comment": comment}


def withdraw(uow, approval_id: int, user, comment: str | None, *, now) -> None:
    s = uow.session
    approval = get(s, approval_id, lock=True)
    if approval.requester_id != user.id:
        raise Forbidden("Only the requester may withdraw a request.")
    res = s.execute(ap.update().where(ap.c.id == approval_id, ap.c.status == "pending").values(status="withdrawn"))
    if res.rowcount != 1:
        raise Conflict(f"This request is already {approval.status}.")
    cur = current_step(s, approval)
    s.execute(st.update().where(st.c.approval_id == approval_id, st.c.status.in_(("pending", "waiting")))
              .values(status="withdrawn", decided_at=now))
    _trail(s, approval_id, cur.id, user.id, "withdraw", comment, now)
    _finish(uow, approval, "withdrawn", now)


def open_for(session, subject_type: str, subject_id: int):
    return session.execute(select(ap).where(ap.c.subject_type == subject_type, ap.c.subject_id == subject_id,
                                            ap.c.status == "pending")).first()


def trail(session, subject_type: str, subject_id: int) -> list[dict]:
    """Every approval of a subject with its steps and the full trail (who asked, decided, when)."""
    out = []
    for a in session.execute(select(ap).where(ap.c.subject_type == subject_type, ap.c.subject_id == subject_id)
                             .order_by(ap.c.id)).all():
        out.append(describe(session, a))
    return out


def describe(session, a) -> dict:
    steps = steps_of(session, a.id)
    events = session.execute(select(dec).where(dec.c.approval_id == a.id).order_by(dec.c.id)).all()
    by_step = {s.id: s.seq for s in steps}
    return {**a._asdict(),
            "steps": [{k: getattr(s, k) for k in ("id", "seq", "role", "users", "mode", "team", "status",
                                                   "started_at", "decided_at", "escalations")} for s in steps],
            "trail": [{"step": by_step.get(e.step_id), "actor_id": e.actor_id, "action": e.action,
                       "comment": e.comment, "at": e.at} for e in events]}


def decidable_by(session, user) -> list:
    """Pending requests whose current step the user may decide now."""
    rows = session.execute(select(ap, st.c.id.label("step_id")).join(
        st, (st.c.approval_id == ap.c.id) & (st.c.seq == ap.c.current_step))
        .where(ap.c.status == "pending", st.c.status == "pending").order_by(ap.c.id)).all()
    out = []
    for r in rows:
        step = session.execute(select(st).where(st.c.id == r.step_id)).first()
        if eligible(step, r, user, _decided_by(session, step.id))[0]:
            out.append(r)
    return out


def remind_and_escalate(uow, *, now) -> dict:
    """A step waiting past the policy's first limit reminds its approvers (once); past the second
    it escalates to the next role up (sales_manager → general_manager → admin)."""
    s = uow.session
    counts = {"reminded": 0, "escalated": 0}
    rows = s.execute(select(ap, st.c.id.label("step_id")).join(
        st, (st.c.approval_id == ap.c.id) & (st.c.seq == ap.c.current_step))
        .where(ap.c.status == "pending", st.c.status == "pending")).all()
    for r in rows:
        a = get(s, r.id, lock=True)
        step = s.execute(select(st).where(st.c.id == r.step_id).with_for_update()).first()
        if a.status != "pending" or a.current_step != step.seq or step.status != "pending" or step.started_at is None:
            continue
        waited = business_hours_between(_aware(step.started_at), now)
        if waited >= a.escalate_after_hours and step.role != "admin":
            role = UP.get(step.role, "admin") if not step.users else "admin"
            s.execute(st.update().where(st.c.id == step.id).values(
                role=role, users=[], team=None, started_at=now, reminded_at=None, escalations=step.escalations + 1))
            _trail(s, a.id, step.id, "system", "escalate",
                   f"Waited {a.escalate_after_hours} business hours; escalated to {role}.", now)
            _requested(uow, a, s.execute(select(st).where(st.c.id == step.id)).first())
            counts["escalated"] += 1
        elif waited >= a.remind_after_hours and step.reminded_at is None:
            s.execute(st.update().where(st.c.id == step.id).values(reminded_at=now))
            _trail(s, a.id, step.id, "system", "remind", None, now)
            _requested(uow, a, step, reminder=True)
            counts["reminded"] += 1
    return counts


def _aware(dt: datetime) -> datetime:
    from datetime import timezone
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
