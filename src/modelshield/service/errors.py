"""The service's error: a machine code, an HTTP status and a message safe to show a client."""

from __future__ import annotations

from modelshield.errors import ModelShieldError


class ServiceError(ModelShieldError):
    """A request or job that cannot proceed; ``code`` and ``message`` go to the client as they are.

    Messages never carry internal details (paths of the data dir, SQL, tracebacks): they say what was
    wrong with the request and what to do.
    """

    def __init__(self, status: int, code: str, message: str, *, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code


def bad_request(message: str, code: str = "bad_request") -> ServiceError:
    """400: the request is malformed."""
    return ServiceError(400, code, message)


def unauthorized(message: str = "authentication required: send Authorization: Bearer <token>") -> ServiceError:
    """401: no or an unknown credential."""
    return ServiceError(401, "unauthorized", message)


def forbidden(message: str, code: str = "forbidden") -> ServiceError:
    """403: authenticated, but not allowed."""
    return ServiceError(403, code, message)


def not_found(what: str) -> ServiceError:
    """404: no such object."""
    return ServiceError(404, "not_found", f"{what} not found")


def conflict(message: str, code: str = "conflict") -> ServiceError:
    """409: the request conflicts with the current state (a taken name, a decided waiver)."""
    return ServiceError(409, code, message)


def too_large(limit: int) -> ServiceError:
    """413: the upload is over the size limit."""
    return ServiceError(413, "payload_too_large", f"the upload is larger than the limit of {limit} bytes")


def invalid(message: str, code: str = "invalid_request") -> ServiceError:
    """422: well-formed, but the values are not acceptable."""
    return ServiceError(422, code, message)


def unavailable(message: str = "the database is unavailable; try again shortly") -> ServiceError:
    """503: a dependency (the database) does not answer."""
    return ServiceError(503, "database_unavailable", message)
