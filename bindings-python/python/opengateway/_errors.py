"""Typed errors, named like the official SDKs': every failure is an :class:`APIError` carrying
the status, the provider, the attempts and the OpenAI error body."""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "APIError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableEntityError",
    "RateLimitError",
    "BudgetExceededError",
    "InternalServerError",
    "APIConnectionError",
    "APITimeoutError",
]


class APIError(Exception):
    """A request failed: ``status_code``, ``provider``, ``attempts`` and the OpenAI error
    ``body`` (with ``message``, ``type``, ``param``, ``code`` as attributes)."""

    message: str
    status_code: int
    provider: str | None
    attempts: list[dict[str, Any]]
    body: dict[str, Any]
    code: Any
    type: str | None
    param: str | None
    kind: str | None
    retry_after: float | None

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 500,
        body: dict[str, Any] | None = None,
        provider: str | None = None,
        attempts: list[dict[str, Any]] | None = None,
        kind: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body if body is not None else {"error": {"message": message}}
        error = self.body.get("error") or {}
        self.type = error.get("type")
        self.param = error.get("param")
        self.code = error.get("code")
        self.provider = provider
        self.attempts = attempts or []
        self.kind = kind
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"Error code: {self.status_code} - {self.message}"


class BadRequestError(APIError):
    """400: the request is invalid (``param`` names the field at fault)."""


class AuthenticationError(APIError):
    """401: the provider refused the credentials."""


class PermissionDeniedError(APIError):
    """403: the credentials may not do this."""


class NotFoundError(APIError):
    """404: no such model (``code`` is ``model_not_found``) or resource."""


class ConflictError(APIError):
    """409: conflicting state upstream."""


class UnprocessableEntityError(APIError):
    """422: well-formed but cannot be processed."""


class RateLimitError(APIError):
    """429: a rate limit or quota was hit (``retry_after`` in seconds when the provider said)."""


class BudgetExceededError(RateLimitError):
    """429 of type ``budget_exceeded``: a configured spending cap is reached."""


class InternalServerError(APIError):
    """5xx: the provider or the gateway failed."""


class APIConnectionError(APIError):
    """502: the provider could not be reached, or sent something unreadable."""


class APITimeoutError(APIConnectionError):
    """504: the provider did not answer in time."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def _class_for(status: int, kind: str | None, error_type: str | None) -> type[APIError]:
    if error_type == "budget_exceeded":
        return BudgetExceededError
    if kind == "timeout" or status == 504:
        return APITimeoutError
    if kind == "connection" or status == 502:
        return APIConnectionError
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return InternalServerError
    return APIError


def _from_payload(payload: str) -> APIError:
    """The typed exception for the native layer's error payload (the only place that maps
    statuses and kinds to classes)."""
    data = json.loads(payload)
    body = data.get("body") or {}
    error = body.get("error") or {}
    status = int(data.get("status") or 500)
    cls = _class_for(status, data.get("kind"), error.get("type"))
    return cls(
        error.get("message") or "request failed",
        status_code=status,
        body=body,
        provider=data.get("provider"),
        attempts=data.get("attempts") or [],
        kind=data.get("kind"),
        retry_after=data.get("retry_after"),
    )
