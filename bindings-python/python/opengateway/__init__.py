"""opengateway: one OpenAI-compatible interface to every major LLM provider, in process."""

from opengateway._client import AsyncGateway, AsyncStream, Gateway, Stream
from opengateway._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from opengateway._native import __version__, core_version
from opengateway._server import Server, serve
from opengateway._types import Object, Response

__all__ = [
    "__version__",
    "core_version",
    "Gateway",
    "AsyncGateway",
    "Stream",
    "AsyncStream",
    "Object",
    "Response",
    "Server",
    "serve",
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
