"""HTTP endpoints of the leads service (flask-smorest blueprints)."""


def blueprints() -> list:
    return []
