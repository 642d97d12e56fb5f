"""Intake: normalise, deduplicate, score, route, in one transaction.

Deduplication holds under concurrency because every lead's keys (phone, email, company+city) are
rows of `lead_keys`, whose primary key is (kind, value): of two simultaneous intakes of one phone
number only one can commit; the other's insert fails (inside a savepoint), and it answers as a
duplicate of the winner."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import String, bindparam, delete, func, select, tuple_, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..models import campaigns, customers, lead_history, lead_keys, leads
from . import load, normalise, routing, scoring
from .errors import Conflict, Invalid
from .records import display_name, event_fields, get, history, history_many, history_row, remember_user
from .util import built, driver_execute, insert_for, is_postgres

SOURCES = ("website", "ad_platform", "phone_in", "visit", "exhibition", "wechat", "referral", "import", "other")
FIELDS = ("name", "company", "phone", "email", "province", "city", "industry", "source", "campaign_id",
          "referrer_customer_id", "note")


@dataclass
class Created:
    lead: dict


@dataclass
class Duplicate:
    matched_on: str
    lead_id: int | None
    customer_id: str | None
    owner_id: str | None
    owner_name: str | None

    def problem_extra(self) -> dict:
        return {"duplicate_of": str(self.lead_id) if self.lead_id is not None else None,
                "customer_id": self.customer_id, "owner_name": self.owner_name, "matched_on": self.matched_on}


def prepare(data: dict) -> dict:
    """Normalised copy of the input, or Invalid with every bad field."""
    errors: dict[str, list[str]] = {}
    out = {f: data.get(f) for f in FIELDS}
    for f in ("name", "company", "province", "city", "industry", "note", "referrer_customer_id"):
        if isinstance(out[f], str):
            out[f] = out[f].strip() or None
    try:
        out["phone"] = normalise.phone(data.get("phone"))
    except normalise.Invalid as exc:
        errors["phone"] = [str(exc)]
    try:
        out["email"] = normalise.email(data.get("email"))
    except normalise.Invalid as exc:
        errors["email"] = [str(exc)]
    if not errors and not out["phone"] and not out["email"]:
        errors["phone"] = ["Give a phone number or an email address."]
    out["source"] = out["source"] or "other"
    if out["source"] not in SOURCES:
        errors["source"] = [f"Must be one of: {', '.join(SOURCES)}."]
    if errors:
        raise Invalid(errors)
    out["email_domain"] = normalise.email_domain(out["email"])
    return out


def find_duplicate(session, keys: list[tuple[str, str]]) -> Duplicate | None:
    if not keys:
        return None
    rows = session.execute(select(lead_keys).where(tuple_(lead_keys.c.kind, lead_keys.c.value).in_(keys))).mappings().all()
    if not rows:
        return None
    order = {k: i for i, k in enumerate(keys)}
    # prefer a lead over a customer-only key, then the order phone, email, company
    row = min(rows, key=lambda r: (r["lead_id"] is None, order[(r["kind"], r["value"])]))
    return describe(session, row)


def describe(session, key_row) -> Duplicate:
    owner_id = None
    if key_row["lead_id"] is not None:
        lead = session.execute(select(leads.c.owner_id, leads.c.owner_name).where(leads.c.id == key_row["lead_id"])).first()
        if lead is not None:
            return Duplicate(key_row["kind"], key_row["lead_id"], key_row["customer_id"], lead.owner_id,
                             lead.owner_name or display_name(session, lead.owner_id))
    if key_row["customer_id"] is not None:
        owner_id = session.execute(select(customers.c.owner_id).where(
            customers.c.customer_id == key_row["customer_id"])).scalar()
    return Duplicate(key_row["kind"], key_row["lead_id"], key_row["customer_id"], owner_id, display_name(session, owner_id))


def record_duplicate(uow, dup: Duplicate, actor, source: str | None, now) -> None:
    """The customer came back: count the hit on the existing lead and tell its owner."""
    if dup.lead_id is None:
        return
    session = uow.session
    session.execute(update(leads).where(leads.c.id == dup.lead_id).values(
        duplicate_hits=leads.c.duplicate_hits + 1, last_duplicate_at=now))
    history(session, dup.lead_id, "duplicate_hit", now, actor, reason=f"matched on {dup.matched_on}"
            + (f" (source {source})" if source else ""))
    row = get(session, dup.lead_id)
    uow.emit("lead.duplicate_hit", {**event_fields(row, uow.session), "matched_on": dup.matched_on,
                                    "attempted_by": getattr(actor, "id", None), "attempted_source": source},
             aggregate_type="lead", aggregate_id=dup.lead_id)


_INSERTS: dict = {}  # (lead columns, number of keys, history columns, slim) -> statement, built once per process


def _insert_statement(cols: tuple, nkeys: int, hist_cols: tuple, slim: bool = False):
    stmt = _INSERTS.get((cols, nkeys, hist_cols, slim))
    if stmt is not None:
        return stmt
    lead_cte = (leads.insert().values({c: bindparam(f"v_{c}", type_=leads.c[c].type) for c in cols})
                .returning(*([leads.c.id] if slim else leads.c)).cte("l"))
    key_selects = [select(bindparam(f"kind{i}", type_=String).label("kind"), bindparam(f"value{i}", type_=String)
                          .label("value"), lead_cte.c.id.label("lead_id")) for i in range(nkeys)]
    key_rows = key_selects[0] if nkeys == 1 else union_all(*key_selects)
    keys_cte = (pg_insert(lead_keys).from_select(["kind", "value", "lead_id"], key_rows)
                .on_conflict_do_nothing().returning(lead_keys.c.kind).cte("k"))
    hist_cte = (pg_insert(lead_history).from_select(
        ["lead_id", *hist_cols], select(lead_cte.c.id, *[bindparam(f"h_{k}", type_=lead_history.c[k].type)
                                                        for k in hist_cols]))
        .returning(lead_history.c.id).cte("h"))
    stmt = select(*lead_cte.c, select(func.count()).select_from(keys_cte).scalar_subquery().label("_keys_in"),
                  select(func.count()).select_from(hist_cte).scalar_subquery().label("_history"))
    _INSERTS[(cols, nkeys, hist_cols, slim)] = stmt
    return stmt


def _insert_with_keys(session, values: dict, keys: list, created: dict, slim: bool = False):
    """PostgreSQL: insert the lead, its keys and its first history row in one statement (CTEs; the
    statement is built once per shape); (lead row, number of keys another lead or customer holds).
    `slim`: the row has only the lead's `id` (a routed lead: the assignment returns the whole row;
    42 columns fewer to describe and read, about 0.1 ms of CPU)."""
    cols = tuple(sorted(values))
    hist_cols = tuple(sorted(k for k in created if k != "lead_id"))
    params = {f"v_{c}": values[c] for c in cols}
    for i, (kind, value) in enumerate(keys):
        params[f"kind{i}"], params[f"value{i}"] = kind, value
    params.update({f"h_{k}": created[k] for k in hist_cols})
    row = driver_execute(session, _insert_statement(cols, len(keys), hist_cols, slim), params).mappings().one()
    return row, len(keys) - row["_keys_in"]


_INSERT_LEAD = leads.insert().returning(*leads.c)
_UNSET = {c.name: None for c in leads.c}  # columns an intake does not set: no server default, NULL


def _as_inserted(values: dict, lead_id) -> dict:
    """The lead row `_insert_with_keys` wrote from `values`: the columns it was not given are NULL
    (`leads` has server defaults only for `id`, `locked` and `duplicate_hits`, which an intake gives
    or takes back). Timestamps are laid over it from the server's answer (its session time zone)."""
    return {**_UNSET, **values, "id": lead_id}


def create(uow, data: dict, actor, now, *, owner: tuple[str, str | None] | None = None, route: bool = True,
           pooled: bool = False, tags: str | None = None, claim_keys: bool = True, weights: dict | None = None,
           prepared: bool = False):
    """Create a lead, or find its duplicate. `owner` (user id, name) gives it to someone directly;
    otherwise it is routed (or pooled when `pooled`). Returns Created or Duplicate; the caller commits.

    The keys are inserted with ON CONFLICT DO NOTHING (on PostgreSQL this waits for a concurrent
    transaction holding the same key): when one is taken, the lead is undone
    in this transaction, and the answer is the duplicate (no SELECT first: duplicates are the rare
    case). A routed lead takes its turn only after that (routing.assign_lead)."""
    session = uow.session
    norm = data if prepared else prepare(data)
    if norm.get("campaign_id") is not None:
        if session.execute(select(campaigns.c.id).where(campaigns.c.id == norm["campaign_id"])).first() is None:
            raise Invalid({"campaign_id": [f"No campaign {norm['campaign_id']}."]})
    keys = normalise.keys(norm["phone"], norm["email"], norm["company"], norm["city"]) if claim_keys else []
    weights = weights or scoring.cached(session)
    score, tier = scoring.score(norm, weights)
    lead = {**norm, "score": score, "tier": tier}
    owner_id = owner_name = team_id = None
    reason = None
    if owner is not None:
        owner_id, owner_name = owner
        owner_name = owner_name or display_name(session, owner_id)
        reason = "entered by owner"
    elif route and not pooled:
        team_id = routing.choose_team(session, lead)
    # a routed lead is written unowned and given to a member once its keys are in (a duplicate takes
    # no turn, and the member's counter row is locked only from there to the commit)
    status = "new" if owner_id else "pooled"
    values = dict(lead, status=status, stage="new", owner_id=owner_id, owner_name=owner_name, team_id=team_id,
                  tags=tags, locked=False, duplicate_hits=0, created_by=getattr(actor, "id", None),
                  created_at=now, updated_at=now, assigned_at=now if owner_id else None,
                  pooled_at=None if owner_id else now)
    created_entry = dict(kind="created", reason=f"source {lead['source']}")
    slim = False  # `row` holds only the lead's id (read in full below if nobody in the team takes it)
    if keys and is_postgres(session):
        # one statement: the lead, its keys (ON CONFLICT DO NOTHING) and its `created` history row
        slim = team_id is not None
        row, taken = _insert_with_keys(session, values, keys, history_row(lead_id=None, at=now, actor=actor,
                                                                           **created_entry), slim=slim)
        entries = []
    else:
        # statements built once, the values given at execution (bench/TUNING.md item 23)
        row = session.execute(_INSERT_LEAD, values).mappings().one()
        taken = 0
        if keys:
            stmt = built(session, "lead keys", lambda insert: (
                insert(lead_keys).on_conflict_do_nothing().returning(lead_keys.c.kind)))
            taken = len(keys) - len(session.execute(
                stmt, [{"kind": k, "value": v, "lead_id": row["id"]} for k, v in keys]).all())
        entries = [created_entry]
    lead_id = row["id"]
    if taken:
        # another lead or customer holds a key (maybe committed a moment ago by a concurrent
        # intake: the insert waited for it): undo this lead, answer the duplicate
        session.execute(delete(lead_keys).where(lead_keys.c.lead_id == lead_id))
        session.execute(delete(leads).where(leads.c.id == lead_id))
        dup = find_duplicate(session, keys)
        if dup is None:
            raise Conflict("This customer was just changed by someone else; try again.")
        return dup
    codes: dict = {}  # team id -> code, for both events
    if owner_id:
        load.shift(session, owner_id, 1)
        entries.append(dict(kind="assigned", to_owner=owner_id, reason=reason))
    elif team_id is not None:
        given = routing.assign_round_robin(session, team_id, lead_id, now, actor)
        if given is not None:  # the usual case: turn, reservation, owner and history in one statement
            # `given` has what the assignment wrote; the rest is the lead as inserted in this
            # transaction (unseen by others until the commit, so unchanged)
            row = {**(_as_inserted(values, lead_id) if slim else row), **given}
            codes[team_id], slim = given["_team_code"], False
            owner_id, reason = row["owner_id"], "auto"
        else:
            member, given = routing.assign_lead(session, team_id, lead_id, now)
            if member is not None:
                row, codes[team_id], slim = given, member["_team_code"], False
                owner_id, reason = member["user_id"], "auto"
                entries.append(dict(kind="assigned", to_owner=owner_id, reason=reason))
    if slim:  # routed, and nobody in the team was free: the lead as inserted
        row = session.execute(select(*leads.c).where(leads.c.id == lead_id)).mappings().one()
    if not owner_id:
        entries.append(dict(kind="pooled", reason="no matching rule" if team_id is None else "nobody in the team is free"))
    if entries:
        history_many(session, lead_id, now, actor, entries)
    row = {c.name: row[c.name] for c in leads.c}
    fields = event_fields(row, uow.session, codes)
    uow.emit("lead.created", {**fields, "status": row["status"]}, aggregate_type="lead", aggregate_id=lead_id)
    if reason == "auto":
        uow.emit("lead.assigned", {**fields, "previous_owner_id": None, "reason": "auto",
                                   "by_user_id": None}, aggregate_type="lead", aggregate_id=lead_id)
    return Created(dict(row))


def create_many(uow, items: list[dict], actor, now, weights: dict) -> list:
    """Create many prepared leads (an import chunk) with a few statements: routed team by team (one
    lock and one write of the counts per team), the leads, their keys and their history each in one
    statement; two outbox rows per lead. A lead whose key turns out taken (a concurrent intake) is
    undone and answered as a Duplicate, as in `create`."""
    session = uow.session
    n = len(items)
    rows_in = []
    for norm in items:
        score, tier = scoring.score(norm, weights)
        rows_in.append({**norm, "score": score, "tier": tier})
    teams_of = [routing.choose_team(session, lead) for lead in rows_in]
    members: list = [None] * n
    for team_id in sorted({t for t in teams_of if t is not None}):
        idxs = [k for k, t in enumerate(teams_of) if t == team_id]
        for k, m in zip(idxs, routing.pick_many(session, team_id, len(idxs))):
            members[k] = m
    values = []
    for lead, team_id, m in zip(rows_in, teams_of, members):
        owner_id = m["user_id"] if m else None
        values.append(dict(lead, status="new" if owner_id else "pooled", stage="new", owner_id=owner_id,
                           owner_name=m["name"] if m else None, team_id=team_id, tags=None, locked=False,
                           duplicate_hits=0, created_by=getattr(actor, "id", None), created_at=now, updated_at=now,
                           assigned_at=now if owner_id else None, pooled_at=None if owner_id else now))
    created = session.execute(leads.insert().returning(*leads.c, sort_by_parameter_order=True), values).mappings().all()
    keys_of = [normalise.keys(v["phone"], v["email"], v["company"], v["city"]) for v in values]
    key_rows = [{"kind": k, "value": v, "lead_id": row["id"]} for row, keys in zip(created, keys_of) for k, v in keys]
    got = set()
    if key_rows:
        got = {(r.kind, r.value) for r in session.execute(
            insert_for(session, lead_keys).on_conflict_do_nothing().returning(lead_keys.c.kind, lead_keys.c.value),
            key_rows).all()}
    out: list = [None] * n
    history_rows = []
    codes: dict = {}  # team id -> code, looked up once per chunk
    for k, (row, keys) in enumerate(zip(created, keys_of)):
        if any(key not in got for key in keys):
            session.execute(delete(lead_keys).where(lead_keys.c.lead_id == row["id"]))
            session.execute(delete(leads).where(leads.c.id == row["id"]))
            if members[k] is not None:
                routing.unpick(session, members[k])
            out[k] = find_duplicate(session, keys) or Conflict("Changed concurrently; import this row again.")
            continue
        out[k] = Created(dict(row))
        history_rows.append(dict(lead_id=row["id"], kind="created", reason=f"source {row['source']}"))
        history_rows.append(dict(lead_id=row["id"], kind="assigned", to_owner_id=row["owner_id"], reason="auto")
                            if row["owner_id"] else
                            dict(lead_id=row["id"], kind="pooled", reason="no matching rule" if row["team_id"] is None
                                 else "nobody in the team is free"))
        fields = event_fields(row, session, codes)
        uow.emit("lead.created", {**fields, "status": row["status"]}, aggregate_type="lead",
                 aggregate_id=row["id"])
        if row["owner_id"]:
            uow.emit("lead.assigned", {**fields, "previous_owner_id": None, "reason": "auto",
                                       "by_user_id": None}, aggregate_type="lead", aggregate_id=row["id"])
    if history_rows:
        session.execute(lead_history.insert(), [{"at": now, "actor_id": getattr(actor, "id", None),
                                                 "actor_name": getattr(actor, "name", None), "from_owner_id": None,
                                                 "to_owner_id": None, **h} for h in history_rows])
    return out


def intake(uow, data: dict, actor, now, prepared: bool = False):
    """POST /v1/leads: a lead a sales rep enters is theirs; anything else is routed. `prepared`:
    `data` is `prepare`'s output already."""
    if actor.is_rep_only:
        remember_user(uow.session, actor.id, actor.name)
        return create(uow, data, actor, now, owner=(actor.id, actor.name), prepared=prepared)
    return create(uow, data, actor, now, prepared=prepared)
