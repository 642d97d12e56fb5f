"""HTTP endpoints of the service-desk service (flask-smorest blueprints)."""


def blueprints() -> list:
    from . import admin, csat, reports, tickets
    return [tickets.blp, admin.blp, csat.blp, reports.blp]
