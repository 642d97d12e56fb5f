"""The staff directory: who a user id is (name, roles, team), for the consoles to show names
instead of ids. Read-only, for any signed-in user; never contact data, never customers."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from crm_shared.web.app import unit_of_work

from .. import models as m
from ..schemas import PeopleQuery, PersonOut

people_blp = Blueprint("people", __name__, url_prefix="/v1/people",
                       description="The staff directory: users' names, roles and team (no contact data)")

_COLUMNS = (m.recipients.c.id, m.recipients.c.name, m.recipients.c.roles, m.recipients.c.team_id)


@people_blp.route("")
class People(MethodView):
    @people_blp.arguments(PeopleQuery, location="query")
    @people_blp.response(200, PersonOut(many=True))
    def get(self, q):
        """Users by id (`?id=a&id=b`, at most 100; unknown ids are left out), or a page of all users
        ordered by id (`after`, `limit`), optionally of one team or role. Any signed-in user
        (the gateway's token check: this endpoint is not public)."""
        r = m.recipients.c
        stmt = select(*_COLUMNS).where(r.kind == "user").order_by(r.id)
        if q["id"]:
            stmt = stmt.where(r.id.in_(sorted(set(q["id"]))))
        if q["team_id"] is not None:
            stmt = stmt.where(r.team_id == q["team_id"])
        if q["after"] is not None:
            stmt = stmt.where(r.id > q["after"])
        out: list[dict] = []
        # roles is a JSON list (no portable containment test): filtered here, read in batches
        for row in unit_of_work().session.execute(stmt.execution_options(yield_per=500)):
            if q["role"] is not None and q["role"] not in (row.roles or []):
                continue
            out.append({"id": row.id, "name": row.name, "roles": list(row.roles or []), "team_id": row.team_id})
            if len(out) >= q["limit"] and not q["id"]:
                break
        return out
