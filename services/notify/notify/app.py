"""Notify service: Events become messages by email, SMS, webhook and in-app inbox."""
from crm_shared.web import create_service_app

from .service import SERVICE


def _inline_path_parameters(app) -> None:
    """Document path parameters on each operation rather than on the path item, so every key
    under a path is an operation (the shared contract test iterates them as operations)."""
    for api in {id(a): a for a in app.extensions["flask-smorest"]["blp_name_to_api"].values()}.values():
        for item in api.spec._paths.values():
            shared = item.pop("parameters", None)
            if not shared:
                continue
            for op in item.values():
                if isinstance(op, dict):
                    names = {p.get("name") for p in op.get("parameters", []) if isinstance(p, dict)}
                    op["parameters"] = [p for p in shared if p.get("name") not in names] + op.get("parameters", [])


def create_app(settings=None, clock=None, testing=False):
    app = create_service_app(SERVICE, settings, clock, testing)
    _inline_path_parameters(app)
    return app
