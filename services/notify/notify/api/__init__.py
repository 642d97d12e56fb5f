"""HTTP endpoints of the notify service (flask-smorest blueprints)."""


def blueprints() -> list:
    return []
