"""What the rules answer when a request cannot be done; the API turns these into problem+json."""
from __future__ import annotations


class DomainError(Exception):
    status = 400
    title = "Bad Request"

    def __init__(self, detail: str, **extra):
        super().__init__(detail)
        self.detail, self.extra = detail, extra


class NotFound(DomainError):
    status, title = 404, "Not Found"


class Forbidden(DomainError):
    status, title = 403, "Forbidden"


class Conflict(DomainError):
    status, title = 409, "Conflict"


class Invalid(DomainError):
    """422 with field errors, like the schema layer answers."""
    status, title = 422, "Unprocessable Entity"

    def __init__(self, field: str, message: str):
        super().__init__("The request body has invalid fields.", errors={field: [message]})
