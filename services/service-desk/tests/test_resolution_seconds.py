"""`tickets.resolution_seconds` (migrations 0003/0004): time to resolve without pending time,
stored on resolution, cleared on reopen, computed on read for tickets the previous release resolved."""
from sqlalchemy import update

from service_desk.models import tickets


def test_resolution_time_excludes_pending_and_is_cleared_on_reopen(desk):
    desk.agent("a1", ["complaints"])
    t = desk.ticket()
    assert t["resolution_seconds"] is None
    desk.clock.advance(hours=1)
    desk.status(t["id"], "pending")
    desk.clock.advance(hours=5)                 # held: not counted
    desk.status(t["id"], "open")
    desk.clock.advance(minutes=30)
    r = desk.status(t["id"], "resolved")         # straight from open
    assert r.status_code == 200 and r.json["resolution_seconds"] == 1.5 * 3600
    r = desk.status(t["id"], "open")             # reopened: no resolution time
    assert r.json["resolution_seconds"] is None
    desk.status(t["id"], "pending")
    desk.clock.advance(hours=2)
    r = desk.status(t["id"], "resolved")         # from pending: the held time is taken off first
    assert r.status_code == 200 and r.json["resolution_seconds"] == 1.5 * 3600
    # a ticket the previous release resolved (no resolution_seconds written): computed on read
    with desk.rt.engine.begin() as c:
        c.execute(update(tickets).where(tickets.c.id == t["id"]).values(resolution_seconds=None))
    assert desk.get(t["id"]).json["resolution_seconds"] == 1.5 * 3600
