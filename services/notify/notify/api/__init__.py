"""HTTP endpoints of the notify service (flask-smorest blueprints)."""


def blueprints() -> list:
    from .directory import people_blp
    from .inbox import deliveries_blp, inbox_blp
    from .people import customers_blp, preferences_blp, recipients_blp
    from .setup import subscriptions_blp, templates_blp, webhooks_blp
    return [subscriptions_blp, recipients_blp, preferences_blp, customers_blp, templates_blp, webhooks_blp,
            inbox_blp, deliveries_blp, people_blp]
