"""Configuration a supervisor keeps: agents and their skills, queues and their supervisors, SLA
policies, the business calendar; and the customer context on its own."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from crm_shared.web.auth import current_user, require_roles
from crm_shared.web.errors import Conflict, NotFound

from .. import schemas
from ..domain import access, customers, routing
from ..domain import tickets as rules
from ..domain.common import QUEUES
from ..models import agent_skills, agents, calendars, queues, sla_policies, tickets
from .common import calendar, now, uow

blp = Blueprint("admin", __name__, url_prefix="/v1", description="Agents, queues, SLA policies, calendar")
SUPERVISORS = ("service_supervisor",)


def agent_view(s, user_id: str) -> dict:
    row = s.execute(select(agents).where(agents.c.user_id == user_id)).mappings().first()
    if row is None:
        raise NotFound(f"No agent {user_id}.")
    return {**dict(row), "skills": routing.skills_of(s, user_id)}


def _set_skills(s, user_id: str, skills: list[str]) -> None:
    s.execute(agent_skills.delete().where(agent_skills.c.user_id == user_id))
    for q in sorted(set(skills)):
        s.execute(agent_skills.insert().values(user_id=user_id, queue=q))


@blp.route("/agents")
class Agents(MethodView):
    @require_roles(*SUPERVISORS)
    @blp.arguments(schemas.AgentIn)
    @blp.response(201, schemas.AgentOut)
    def post(self, data):
        """Register an agent: the queues they serve and how many open tickets they take at most.
        Waiting tickets of those queues go to them at once."""
        u = uow()
        s, t = u.session, now()
        if s.execute(select(agents.c.user_id).where(agents.c.user_id == data["user_id"])).first():
            raise Conflict(f"Agent {data['user_id']} exists; PATCH it.")
        s.execute(agents.insert().values(user_id=data["user_id"], name=data["name"], max_open=data["max_open"],
                                         open_count=0, active=data["active"], created_at=t, updated_at=t))
        _set_skills(s, data["user_id"], data["skills"])
        rules.dispatch_waiting(u, t, sorted(set(data["skills"])))
        try:
            u.commit()
        except IntegrityError:
            raise Conflict(f"Agent {data['user_id']} exists; PATCH it.")
        return agent_view(s, data["user_id"])

    @require_roles(*SUPERVISORS)
    @blp.response(200, schemas.AgentOut(many=True))
    def get(self):
        s = uow().session
        return [agent_view(s, uid) for uid in s.execute(select(agents.c.user_id).order_by(agents.c.user_id)).scalars()]


@blp.route("/agents/<string:user_id>")
class Agent(MethodView):
    @require_roles(*SUPERVISORS)
    @blp.response(200, schemas.AgentOut)
    def get(self, user_id):
        return agent_view(uow().session, user_id)

    @require_roles(*SUPERVISORS)
    @blp.arguments(schemas.AgentPatch)
    @blp.response(200, schemas.AgentOut)
    def patch(self, data, user_id):
        """Change skills, capacity or activity; freed capacity takes waiting tickets at once."""
        u = uow()
        s, t = u.session, now()
        agent_view(s, user_id)
        values = {k: data[k] for k in ("name", "max_open", "active") if k in data}
        s.execute(agents.update().where(agents.c.user_id == user_id).values(updated_at=t, **values))
        if "skills" in data:
            _set_skills(s, user_id, data["skills"])
        rules.dispatch_waiting(u, t, routing.skills_of(s, user_id))
        u.commit()
        return agent_view(s, user_id)


def queue_view(s, name: str) -> dict:
    sup = s.execute(select(queues.c.supervisor_id).where(queues.c.name == name)).scalar()
    counts = dict(s.execute(select(tickets.c.status, func.count()).where(tickets.c.queue == name)
                            .group_by(tickets.c.status)).all())
    n_agents = s.execute(select(func.count()).select_from(agent_skills).join(agents, agents.c.user_id == agent_skills.c.user_id)
                         .where(agent_skills.c.queue == name, agents.c.active.is_(True))).scalar_one()
    return {"name": name, "supervisor_id": sup, "waiting": counts.get("new", 0),
            "open": counts.get("open", 0) + counts.get("pending", 0), "agents": n_agents}


@blp.route("/queues")
class Queues(MethodView):
    @require_roles("service_agent", *SUPERVISORS)
    @blp.response(200, schemas.QueueOut(many=True))
    def get(self):
        """One queue per ticket type, with its supervisor and load."""
        s = uow().session
        return [queue_view(s, q) for q in QUEUES]


@blp.route("/queues/<string:name>")
class Queue(MethodView):
    @require_roles(*SUPERVISORS)
    @blp.arguments(schemas.QueueIn)
    @blp.response(200, schemas.QueueOut)
    def put(self, data, name):
        """Name the supervisor breached tickets of this queue escalate to."""
        if name not in QUEUES:
            raise NotFound(f"No queue {name}.")
        u = uow()
        s = u.session
        if s.execute(select(queues.c.name).where(queues.c.name == name)).first():
            s.execute(queues.update().where(queues.c.name == name).values(supervisor_id=data["supervisor_id"],
                                                                          updated_at=now()))
        else:
            s.execute(queues.insert().values(name=name, supervisor_id=data["supervisor_id"], updated_at=now()))
        u.commit()
        return queue_view(s, name)


@blp.route("/sla-policies")
class SlaPolicies(MethodView):
    @require_roles(*SUPERVISORS)
    @blp.arguments(schemas.SlaPolicyIn)
    @blp.response(201, schemas.SlaPolicyOut)
    def post(self, data):
        """Set the targets (business minutes) of a priority and tier; replaces an earlier policy of
        the same pair. Tickets filed afterwards use it."""
        u = uow()
        s = u.session
        values = dict(first_response_minutes=data["first_response_minutes"],
                      next_response_minutes=data.get("next_response_minutes", data["first_response_minutes"]),
                      resolution_minutes=data["resolution_minutes"], updated_at=now())
        cond = (sla_policies.c.priority == data["priority"]) & (sla_policies.c.tier == data["tier"])
        pid = s.execute(select(sla_policies.c.id).where(cond).with_for_update()).scalar()
        if pid is None:
            pid = s.execute(sla_policies.insert().values(priority=data["priority"], tier=data["tier"], **values)
                            ).inserted_primary_key[0]
        else:
            s.execute(sla_policies.update().where(sla_policies.c.id == pid).values(**values))
        try:
            u.commit()
        except IntegrityError:
            raise Conflict("Another policy for this priority and tier was saved at the same moment; try again.")
        return dict(s.execute(select(sla_policies).where(sla_policies.c.id == pid)).mappings().one())

    @require_roles("service_agent", *SUPERVISORS)
    @blp.response(200, schemas.SlaPolicyOut(many=True))
    def get(self):
        """Stored policies (without one, built-in defaults apply: urgent 1h/4h, high 4h/1 business
        day, normal 8h/3 days, low 1 day/5 days; gold tier halves them)."""
        s = uow().session
        return [dict(r) for r in s.execute(select(sla_policies).order_by(sla_policies.c.priority,
                                                                         sla_policies.c.tier)).mappings()]


def calendar_view(cal) -> dict:
    return {"timezone": cal.tz, "chinese_holidays": cal.chinese_holidays,
            "hours": {str(k): [str(v[0])[:5] if not isinstance(v[0], (list, tuple)) else f"{v[0][0]:02d}:{v[0][1]:02d}",
                               str(v[1])[:5] if not isinstance(v[1], (list, tuple)) else f"{v[1][0]:02d}:{v[1][1]:02d}"]
                      for k, v in sorted(cal.hours.items())},
            "closed_days": sorted(d.isoformat() for d in cal.closed_days),
            "makeup_days": sorted(d.isoformat() for d in cal.makeup_days)}


@blp.route("/calendar")
class Calendar(MethodView):
    @blp.response(200, schemas.CalendarOut)
    def get(self):
        """The business calendar SLA due times are computed on."""
        return calendar_view(calendar())

    @require_roles(*SUPERVISORS)
    @blp.arguments(schemas.CalendarIn)
    @blp.response(200, schemas.CalendarOut)
    def put(self, data):
        """Replace the calendar. Timers already running keep their due times."""
        cfg = {"timezone": data["timezone"], "chinese_holidays": data["chinese_holidays"],
               "hours": data["hours"], "closed_days": [d.isoformat() for d in data["closed_days"]],
               "makeup_days": [d.isoformat() for d in data["makeup_days"]]}
        u = uow()
        s = u.session
        if s.execute(select(calendars.c.name).where(calendars.c.name == "default")).first():
            s.execute(calendars.update().where(calendars.c.name == "default").values(config=cfg, updated_at=now()))
        else:
            s.execute(calendars.insert().values(name="default", config=cfg, updated_at=now()))
        u.commit()
        return calendar_view(calendar())


@blp.route("/customers/<string:customer_id>")
class Customer(MethodView):
    @blp.response(200, schemas.CustomerOut)
    def get(self, customer_id):
        """The customer as this service knows it from sales' events, with contracts and tickets."""
        user = current_user()
        s = uow().session
        if not access.sees_all(user) and not user.has("service_agent"):
            c = customers.get(s, customer_id) or {}
            mine = c.get("owner_id") == user.id or (user.has("sales_manager") and user.team and c.get("team_id") == user.team)
            if not (mine or user.has("general_manager")):
                raise NotFound(f"No customer {customer_id}.")
        return customers.context(s, customer_id, now().astimezone(calendar().zone).date())
