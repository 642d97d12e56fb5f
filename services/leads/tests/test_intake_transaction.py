"""POST /v1/leads on PostgreSQL: one transaction of three statements (the lead with its keys and
`created` history row; the round-robin assignment; the outbox rows), the first two as the driver's
own SQL (crm_shared.db.driver_execute). A failure of the outbox INSERT or of the COMMIT leaves nothing
behind and answers as a failed commit; the pooled connection is back to a normal transaction
afterwards. (Until bench/TUNING.md item 26 the intake ran in a psycopg pipeline; these tests were
written for it and hold without it.)"""
import psycopg
from sqlalchemy import event, func, select, text

from leads.models import lead_keys, leads, owner_loads



def members(*specs):
    return [{"user_id": u, "name": u.title(), **kw} for u, kw in specs]


def _body(n, **kw):
    return {"name": f"Lead {n}", "phone": f"1390000{n:04d}", "email": f"p{n}@example.com", "source": "website",
            "province": "浙江", **kw}


def _driver_state(pg):
    """(autocommit, transaction status) of the pooled connection the next request gets."""
    with pg.rt.engine.connect() as c:
        d = c.connection.driver_connection
        return d.autocommit, d.pgconn.transaction_status


def _statements(pg):
    """(statement, run as the driver's SQL) of every statement sent from now on."""
    seen = []
    event.listen(pg.rt.engine, "before_cursor_execute",
                 lambda c, cur, stmt, p, ctx, many: seen.append((" ".join(stmt.split())[:40], ctx.compiled is None)))
    return seen


def test_a_routed_intake_is_three_statements_in_one_transaction(pg):
    pg.team(members(("a", {}), ("b", {})))
    assert pg.post("/v1/leads", _body(0), pg.manager()).status_code == 201  # caches (rules, weights) loaded
    seen = _statements(pg)
    r = pg.post("/v1/leads", _body(1), pg.manager())
    assert r.status_code == 201, r.json
    assert r.json["owner_id"] in ("a", "b") and r.json["status"] == "new"
    assert [(stmt.split()[0], driver) for stmt, driver in seen] == [("WITH", True), ("WITH", True), ("INSERT", True)]
    assert seen[0][0].startswith("WITH l AS (INSERT INTO leads") and "nextval" in seen[1][0]
    assert seen[2][0].startswith("INSERT INTO outbox")
    with pg.rt.engine.connect() as c:
        row = c.execute(select(leads).where(leads.c.id == int(r.json["id"]))).mappings().one()
        assert row["owner_id"] == r.json["owner_id"] and row["locked"] is False
        assert c.execute(select(func.count()).select_from(lead_keys)).scalar() == 4
    assert [e["type"] for e in pg.events()] == ["lead.created", "lead.assigned"] * 2
    assert _driver_state(pg) == (False, psycopg.pq.TransactionStatus.IDLE)


def test_a_failed_outbox_insert_leaves_no_lead_and_the_next_intake_works(pg):
    pg.team(members(("a", {}), ("b", {})))
    with pg.rt.engine.begin() as c:  # the outbox refuses rows: the unit of work's last INSERT fails
        c.execute(text("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                       "$$ BEGIN RAISE EXCEPTION 'outbox refused'; END $$"))
        c.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse()"))
    r = pg.post("/v1/leads", _body(2), pg.manager())
    assert r.status_code == 500 and r.json["title"] == "Internal Server Error"
    with pg.rt.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(leads)).scalar() == 0
        assert c.execute(select(func.count()).select_from(lead_keys)).scalar() == 0
        assert c.execute(select(func.coalesce(func.sum(owner_loads.c.open_leads), 0))).scalar() == 0
    assert pg.events() == []
    assert _driver_state(pg) == (False, psycopg.pq.TransactionStatus.IDLE)
    with pg.rt.engine.begin() as c:
        c.execute(text("DROP TRIGGER refuse ON outbox"))
    r = pg.post("/v1/leads", _body(2), pg.manager())  # the same lead: nothing of the first try is left
    assert r.status_code == 201, r.json
    assert [e["type"] for e in pg.events()] == ["lead.created", "lead.assigned"]


def test_a_commit_refused_by_a_deferred_constraint_leaves_nothing(pg):
    """The COMMIT itself fails (a deferred constraint checked at commit): nothing is stored."""
    pg.team(members(("a", {})))
    with pg.rt.engine.begin() as c:
        c.execute(text("CREATE TABLE never (x int PRIMARY KEY)"))
        c.execute(text("CREATE FUNCTION never_ok() RETURNS trigger LANGUAGE plpgsql AS "
                       "$$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$"))
        c.execute(text("CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON leads DEFERRABLE INITIALLY DEFERRED "
                       "FOR EACH ROW EXECUTE FUNCTION never_ok()"))
    r = pg.post("/v1/leads", _body(3), pg.manager())
    assert r.status_code == 500
    with pg.rt.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(leads)).scalar() == 0
        assert c.execute(select(func.coalesce(func.sum(owner_loads.c.open_leads), 0))).scalar() == 0
    assert pg.events() == []
    assert _driver_state(pg) == (False, psycopg.pq.TransactionStatus.IDLE)


def test_a_duplicate_is_recorded_and_answered_409(pg):
    pg.team(members(("a", {})))
    first = pg.post("/v1/leads", _body(4), pg.manager())
    assert first.status_code == 201
    again = pg.post("/v1/leads", _body(4, name="Again"), pg.manager())
    assert again.status_code == 409
    assert again.json["duplicate_of"] == first.json["id"] and again.json["matched_on"] == "phone"
    with pg.rt.engine.connect() as c:
        assert c.execute(select(leads.c.duplicate_hits)).scalar() == 1
        assert c.execute(select(func.count()).select_from(leads)).scalar() == 1
    assert [e["type"] for e in pg.events()] == ["lead.created", "lead.assigned", "lead.duplicate_hit"]
    assert _driver_state(pg) == (False, psycopg.pq.TransactionStatus.IDLE)


def test_a_rep_enters_their_own_lead(pg):
    r = pg.post("/v1/leads", _body(5), pg.rep("rep7"))
    assert r.status_code == 201 and r.json["owner_id"] == "rep7"
    assert [e["type"] for e in pg.events()] == ["lead.created"]
    assert _driver_state(pg) == (False, psycopg.pq.TransactionStatus.IDLE)


def test_bad_input_is_answered_before_any_statement(pg):
    seen = _statements(pg)
    r = pg.post("/v1/leads", {"name": "X", "phone": "12", "source": "website"}, pg.manager())
    assert r.status_code == 422 and "phone" in r.json["errors"]
    r = pg.post("/v1/leads", {"name": "X", "source": "website"}, pg.manager())
    assert r.status_code == 422
    assert seen == []
    assert _driver_state(pg) == (False, psycopg.pq.TransactionStatus.IDLE)
