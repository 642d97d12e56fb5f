"""The migrate steps of the expand/migrate/contract migrations (docs/MIGRATIONS.md): a database at
the previous release's head (0002) holding rows the previous release wrote is upgraded to head,
and the new columns of those rows are filled, in several batches, on SQLite and PostgreSQL."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import column, insert, select, table

from crm_shared import db
from crm_shared import service as services
from crm_shared.migrations import upgrade

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
N = 2100  # more than two backfill batches of 1,000


def rows_then_upgrade(name, url, table_name, rows):
    d = services.load(name)
    upgrade(d, url, "0002")
    t = d.metadata.tables[table_name]
    # what the previous release writes: these columns only (it does not know the new ones)
    old = table(t.name, *[column(k, t.c[k].type) for k in rows[0]])
    engine = db.make_engine(url)
    try:
        with engine.begin() as c:
            c.execute(insert(old), rows)
        upgrade(d, url)
        with engine.connect() as c:
            return c.execute(select(t).order_by(t.primary_key.columns.values()[0])).mappings().all()
    finally:
        engine.dispose()


def test_leads_email_domain(database_url):
    rows = [dict(name=f"n{i}", email=(f"p{i}@Sub.Example.COM" if i % 3 else None), phone=f"1380000{i:04d}",
                 source="visit", status="new", stage="new", score=0, tier="C", created_at=T0, updated_at=T0)
            for i in range(N)]
    got = rows_then_upgrade("leads", database_url, "leads", rows)
    assert len(got) == N
    assert all(r["email_domain"] == ("sub.example.com" if r["email"] else None) for r in got)


def test_sales_customer_email_domain(database_url):
    rows = [dict(name=f"c{i}", email=f"x{i}@Blue.Example", email_key=f"x{i}@blue.example", source="manual",
                 tier="prospect", churn_risk=False, revision=1, created_at=T0, updated_at=T0) for i in range(N)]
    rows[0].update(email=None, email_key=None)
    got = rows_then_upgrade("sales", database_url, "customers", rows)
    assert got[0]["email_domain"] is None
    assert {r["email_domain"] for r in got[1:]} == {"blue.example"}


def test_service_desk_resolution_seconds(database_url):
    rows = [dict(customer_id="c1", type="complaint", priority="normal", queue="complaints",
                 status="resolved" if i % 2 else "open", subject="s", description="d", channel="web", rank=1,
                 held_seconds=600.0, created_at=T0, updated_at=T0,
                 resolved_at=T0 + timedelta(hours=2, seconds=i) if i % 2 else None) for i in range(N)]
    got = rows_then_upgrade("service-desk", database_url, "tickets", rows)
    for i, r in enumerate(got):
        if i % 2:
            assert r["resolution_seconds"] == pytest.approx(7200 + i - 600, abs=0.01)
        else:
            assert r["resolution_seconds"] is None


def test_notify_inbox_item_topic(database_url):
    types = ["lead.assigned", "ticket.sla_breached", "reminder", "approval.requested"]
    rows = [dict(user_id="u1", delivery_id=i, event_id=f"e{i}", event_type=types[i % 4], title="t", body="b",
                 refs={}, created_at=T0) for i in range(N)]
    got = rows_then_upgrade("notify", database_url, "inbox_items", rows)
    assert [r["topic"] for r in got[:4]] == ["lead", "ticket", "reminder", "approval"]
    assert all(r["topic"] == r["event_type"].split(".")[0] for r in got)
