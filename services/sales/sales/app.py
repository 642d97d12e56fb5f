"""Sales service: Customers, pipeline, quotes and approvals, contracts, orders, receivables, renewals."""
from crm_shared.web import create_service_app

from .service import SERVICE


def create_app(settings=None, clock=None, testing=False):
    app = create_service_app(SERVICE, settings, clock, testing)
    _path_parameters_into_operations(app)
    return app


def _path_parameters_into_operations(app) -> None:
    """flask-smorest documents path parameters ({customer_id}) once per path, beside the operations;
    tests/test_services.py reads every entry of a path as an operation, so each operation carries
    its own copy instead (equivalent OpenAPI)."""
    for api in set(app.extensions["flask-smorest"]["blp_name_to_api"].values()):
        for ops in api.spec._paths.values():
            shared = ops.pop("parameters", None)
            if not shared:
                continue
            for op in ops.values():
                if isinstance(op, dict):
                    mine = op.setdefault("parameters", [])
                    names = {(p.get("in"), p.get("name")) for p in mine if isinstance(p, dict)}
                    op["parameters"] = [p for p in shared if (p.get("in"), p.get("name")) not in names] + mine
