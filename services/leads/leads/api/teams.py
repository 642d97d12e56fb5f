"""Teams, members and routing rules."""
from __future__ import annotations

from flask.views import MethodView

from crm_shared.web.auth import require_roles
from crm_shared.web.blueprint import Blueprint

from .. import schemas as s
from ..domain import teams
from .common import actor, now, uow

blp = Blueprint("teams", __name__, url_prefix="/v1", description="Teams and routing rules")
MANAGERS = ("sales_manager",)


@blp.route("/teams")
class Teams(MethodView):
    @require_roles(*MANAGERS)
    @blp.arguments(s.TeamIn)
    @blp.response(201, s.TeamOut)
    def post(self, data):
        u = uow()
        out = teams.create(u.session, data, now())
        u.commit()
        return out

    @blp.response(200, s.TeamList)
    def get(self):
        return {"items": teams.list_teams(uow().session)}


@blp.route("/teams/<int:team_id>")
class Team(MethodView):
    @blp.response(200, s.TeamOut)
    def get(self, team_id):
        return teams.get(uow().session, team_id)

    @require_roles(*MANAGERS)
    @blp.arguments(s.TeamPatch)
    @blp.response(200, s.TeamOut)
    def patch(self, data, team_id):
        u = uow()
        teams.check_manages(u.session, team_id, actor())
        out = teams.update_team(u.session, team_id, data)
        u.commit()
        return out


@blp.route("/teams/<int:team_id>/members")
class Members(MethodView):
    @require_roles(*MANAGERS)
    @blp.arguments(s.MemberIn)
    @blp.response(201, s.TeamOut)
    def post(self, data, team_id):
        u = uow()
        teams.check_manages(u.session, team_id, actor())
        out = teams.add_member(u.session, team_id, data)
        u.commit()
        return out


@blp.route("/teams/<int:team_id>/members/<user_id>")
class Member(MethodView):
    @require_roles(*MANAGERS)
    @blp.arguments(s.MemberPatch)
    @blp.response(200, s.TeamOut)
    def patch(self, data, team_id, user_id):
        """Away (`active: false`), back, capacity, weight."""
        u = uow()
        teams.check_manages(u.session, team_id, actor())
        out = teams.change_member(u.session, team_id, user_id, data)
        u.commit()
        return out

    @require_roles(*MANAGERS)
    @blp.response(204)
    def delete(self, team_id, user_id):
        u = uow()
        teams.check_manages(u.session, team_id, actor())
        teams.remove_member(u.session, team_id, user_id)
        u.commit()


@blp.route("/routing-rules")
class Rules(MethodView):
    @require_roles(*MANAGERS)
    @blp.arguments(s.RuleIn)
    @blp.response(201, s.RuleOut)
    def post(self, data):
        """The first active rule by priority (lowest first) whose conditions all match picks the team."""
        u = uow()
        out = teams.create_rule(u.session, data, now())
        u.commit()
        return out

    @blp.response(200, s.RuleList)
    def get(self):
        return {"items": teams.list_rules(uow().session)}


@blp.route("/routing-rules/<int:rule_id>")
class Rule(MethodView):
    @blp.response(200, s.RuleOut)
    def get(self, rule_id):
        return teams.get_rule(uow().session, rule_id)

    @require_roles(*MANAGERS)
    @blp.arguments(s.RulePatch)
    @blp.response(200, s.RuleOut)
    def patch(self, data, rule_id):
        u = uow()
        out = teams.update_rule(u.session, rule_id, data)
        u.commit()
        return out

    @require_roles(*MANAGERS)
    @blp.response(204)
    def delete(self, rule_id):
        u = uow()
        teams.delete_rule(u.session, rule_id)
        u.commit()
