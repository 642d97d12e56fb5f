"""crm_shared.db.driver_execute: a statement built once runs as the driver's own SQL (compiled once
per dialect) only where SQLAlchemy would change no value; anywhere else it runs as `session.execute`
would run it, with the same rows and the same stored values."""
from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, Column, DateTime, Integer, MetaData, String, Table, bindparam, create_engine, event, select
from sqlalchemy.orm import Session, declarative_base

from crm_shared import db

md = MetaData()
things = Table("things", md, Column("id", Integer, primary_key=True), Column("name", String(50)),
               Column("flag", Boolean), Column("at", DateTime(timezone=True)), Column("doc", JSON))
PLAIN = things.insert().values(name=bindparam("n"), flag=bindparam("f"), at=bindparam("t")).returning(things.c.id, things.c.at)
WITH_JSON = things.insert().values(name=bindparam("n"), doc=bindparam("d")).returning(things.c.id, things.c.doc)
EXPANDING = select(things.c.name).where(things.c.id.in_(bindparam("ids", expanding=True))).order_by(things.c.id)
AT = datetime(2026, 12, 4, 12, 30, tzinfo=timezone.utc)


def _run(url):
    engine = create_engine(url)
    md.create_all(engine)
    seen = []
    event.listen(engine, "before_cursor_execute", lambda c, cur, stmt, p, ctx, many: seen.append(ctx.compiled is None))
    return engine, seen


def test_plain_statements_run_as_driver_sql_on_postgresql_and_keep_their_values(database_url):
    engine, driver_sql = _run(database_url)
    pg = engine.dialect.name == "postgresql"
    with Session(engine) as s:
        first = db.driver_execute(s, PLAIN, {"n": "a", "f": True, "t": AT}).mappings().one()
        second = db.driver_execute(s, PLAIN, {"n": "b", "f": False, "t": AT}).mappings().one()
        s.commit()
        rows = s.execute(select(things.c.name, things.c.flag, things.c.at).order_by(things.c.id)).all()
    # PostgreSQL (named parameters, no value to convert): the driver's SQL; SQLite's DateTime needs
    # SQLAlchemy's conversion (and its paramstyle is positional): the statement as usual
    assert driver_sql[:2] == ([True, True] if pg else [False, False])
    assert second["id"] == first["id"] + 1
    assert [(r.name, r.flag) for r in rows] == [("a", True), ("b", False)]
    assert {r.at.replace(tzinfo=r.at.tzinfo or timezone.utc) for r in rows} == {AT}
    assert first["at"] == AT if pg else first["at"].replace(tzinfo=timezone.utc) == AT


def test_a_value_sqlalchemy_converts_or_an_expanding_parameter_takes_the_usual_path(database_url):
    engine, driver_sql = _run(database_url)
    with Session(engine) as s:
        row = db.driver_execute(s, WITH_JSON, {"n": "j", "d": {"k": [1, 2]}}).mappings().one()
        names = db.driver_execute(s, EXPANDING, {"ids": [row["id"]]}).scalars().all()
        s.commit()
    assert row["doc"] == {"k": [1, 2]}  # serialised on the way in and parsed on the way out
    assert names == ["j"]
    assert driver_sql == [False, False]


def test_a_parameter_name_the_sql_escapes_takes_the_usual_path(database_url):
    engine, driver_sql = _run(database_url)
    stmt = select(things.c.name).where(things.c.name == bindparam("the name"))  # escaped in the SQL
    with Session(engine) as s:
        db.driver_execute(s, PLAIN, {"n": "x", "f": True, "t": AT})
        assert db.driver_execute(s, stmt, {"the name": "x"}).scalars().all() == ["x"]
    assert driver_sql[1] is False


def test_a_value_the_statement_carries_itself_takes_the_usual_path(database_url):
    """`id + 1`: SQLAlchemy sends the 1 as a parameter of its own, which the caller does not pass."""
    engine, driver_sql = _run(database_url)
    bump = things.update().where(things.c.name == bindparam("n")).values(id=things.c.id + 1).returning(things.c.id)
    with Session(engine) as s:
        first = db.driver_execute(s, PLAIN, {"n": "x", "f": True, "t": AT}).mappings().one()
        assert db.driver_execute(s, bump, {"n": "x"}).scalar_one() == first["id"] + 1
        s.commit()
    assert driver_sql[1] is False


def test_pending_orm_objects_are_flushed_first_as_session_execute_would(pg_url):
    Base = declarative_base(metadata=MetaData())

    class Note(Base):
        __tablename__ = "notes"
        id = Column(Integer, primary_key=True)
        text = Column(String(20))

    engine = create_engine(pg_url)
    Base.metadata.create_all(engine)
    count = select(Note.__table__.c.text).where(Note.__table__.c.text == bindparam("t"))
    with Session(engine) as s:
        s.add(Note(text="pending"))
        assert db.driver_execute(s, count, {"t": "pending"}).scalars().all() == ["pending"]


def test_a_connection_works_as_well_as_a_session(pg_url):
    engine, driver_sql = _run(pg_url)
    with engine.begin() as c:
        assert db.driver_execute(c, PLAIN, {"n": "c", "f": None, "t": AT}).mappings().one()["at"] == AT
    assert driver_sql == [True]


def test_statements_built_per_call_do_not_grow_the_cache_without_bound(monkeypatch):
    monkeypatch.setattr(db, "_DRIVER_SQL", {})
    engine = create_engine("sqlite://")
    md.create_all(engine)
    with Session(engine) as s:
        for i in range(db._DRIVER_SQL_MAX + 10):
            stmt = select(things.c.id).where(things.c.name == bindparam("n"))  # a new object each time
            assert db.driver_execute(s, stmt, {"n": str(i)}).all() == []
    assert 0 < len(db._DRIVER_SQL) <= db._DRIVER_SQL_MAX
