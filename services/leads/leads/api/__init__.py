"""HTTP endpoints of the leads service (flask-smorest blueprints)."""


def blueprints() -> list:
    from . import campaigns, leads, pool, public, teams
    return [leads.blp, pool.blp, teams.blp, campaigns.blp, public.blp]
