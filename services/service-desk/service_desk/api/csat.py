"""The customer's satisfaction survey: public (the one-time token is the credential)."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from crm_shared.web.auth import public
from crm_shared.web.ratelimit import limited

from .. import schemas
from ..domain import csat
from .common import now, uow

blp = Blueprint("csat", __name__, url_prefix="/v1/csat", description="Satisfaction surveys (no login)")


@blp.route("/<string:token>")
class Survey(MethodView):
    """Limited per client address (CSAT_RATE_LIMIT, default 20/minute): tokens are not guessed."""
    decorators = [public]  # the one-time token is the credential: no bearer token

    @limited("csat", "CSAT_RATE_LIMIT", "20/minute")
    @blp.doc(security=[])
    @blp.response(200, schemas.CsatSurveyOut)
    @blp.alt_response(429, description="Too many requests from this address (Retry-After)")
    def get(self, token):
        """What the survey page shows."""
        return csat.describe(uow().session, token, now())

    @limited("csat", "CSAT_RATE_LIMIT", "20/minute")
    @blp.doc(security=[])
    @blp.arguments(schemas.CsatIn)
    @blp.response(201, schemas.CsatOut)
    @blp.alt_response(429, description="Too many requests from this address (Retry-After)")
    def post(self, data, token):
        """Answer once (score 1-5), within 14 days of the resolution: later 410, again 409."""
        u = uow()
        out = csat.submit(u, token, data["score"], data["comment"], now())
        u.commit()
        return out
