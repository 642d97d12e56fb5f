"""HTTP endpoints of the sales service (flask-smorest blueprints): thin views that parse, call the
domain and serialise."""


def blueprints() -> list:
    from . import approvals, contracts, customers, orders, quotes, reports
    return [customers.blp, quotes.blp, approvals.blp, contracts.blp, orders.blp, reports.blp]
