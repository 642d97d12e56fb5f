"""HTTP endpoints of the service-desk service (flask-smorest blueprints)."""


def blueprints() -> list:
    return []
