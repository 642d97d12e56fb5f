"""Customer care: a birthday greeting at 09:00 in the customer's time zone on their birthday,
and greetings on the configured holidays; each at most once a year (the delivery's event id is
the occasion and the year), each off per customer on request."""
from __future__ import annotations

from sqlalchemy import select

from . import models as m
from .config import config_of
from .domain import defaults
from .domain.rules import birthday_this_year, greeting_due, holiday_today, zone
from .planner import Planner


def run(rt) -> int:
    cfg = config_of(rt)
    now = rt.clock.now()
    r = m.recipients
    with rt.engine.connect() as c:
        customers = c.execute(select(r).where(r.c.kind == "customer").where(
            (r.c.birthday_greetings.is_(True) & r.c.birthday.is_not(None)) | r.c.holiday_greetings.is_(True))).all()
    planned = 0
    for cust in customers:
        local = now.astimezone(zone(cust.timezone))
        occasions = []
        if cust.birthday_greetings and cust.birthday is not None:
            day = birthday_this_year(cust.birthday, local.year)
            if greeting_due(now, cust.timezone, day):
                occasions.append((f"birthday:{local.year}", "greeting.birthday", {}))
        if cust.holiday_greetings and local.hour >= 9:
            for key in holiday_today(cfg.holidays, local.date()):
                names = cfg.holidays[key].get("name") or {}
                occasions.append((f"holiday:{key}:{local.year}", "greeting.holiday", {"holiday_names": names}))
        if not occasions:
            continue
        with rt.uow() as uow:
            planner = Planner(uow.session, now)
            for event_id, template, extra in occasions:
                names = extra.get("holiday_names") or {}
                lang = cust.language or "zh-CN"
                context = {"customer_name": cust.name or "", "customer_id": cust.id.split(":", 1)[1],
                           "holiday_name": names.get(lang) or next(iter(names.values()), "")}
                for channel in defaults.GREETING_CHANNELS:
                    if (channel == "sms" and cust.mobile) or (channel == "email" and cust.email):
                        planner.add(event_id=event_id, event_type=template, recipient=cust.id, channel=channel,
                                    template=template, context=context, kind="greeting", honour_preferences=False)
            planner.flush()
            uow.commit()
            planned += planner.created
    return planned
