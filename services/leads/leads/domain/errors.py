"""What the rules answer when they refuse; the API turns each into a problem+json response."""
from __future__ import annotations


class DomainError(Exception):
    status = 400
    title = "Bad Request"

    def __init__(self, detail: str, **extra):
        super().__init__(detail)
        self.detail, self.extra = detail, extra


class NotFound(DomainError):
    status, title = 404, "Not Found"


class Conflict(DomainError):
    status, title = 409, "Conflict"


class Forbidden(DomainError):
    status, title = 403, "Forbidden"


class Invalid(DomainError):
    """Field errors: `errors` maps a field to a list of messages (answered as 422)."""
    status, title = 422, "Unprocessable Entity"

    def __init__(self, errors: dict, detail: str = "The request body has invalid fields."):
        super().__init__(detail, errors=errors)


class RateLimited(DomainError):
    status, title = 429, "Too Many Requests"
