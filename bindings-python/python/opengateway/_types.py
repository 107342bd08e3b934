"""Response objects: one small wrapper that gives a JSON dict attribute access, like the
official SDKs' models, without copying it into classes."""

from __future__ import annotations

import json
from typing import Any, Iterator


def _wrap(value: Any) -> Any:
    if type(value) is dict:
        return Object(value)
    if type(value) is list:
        return [_wrap(v) for v in value]
    return value


class Object:
    """A JSON object with attribute access: ``resp.choices[0].message.content``.

    Nested objects are wrapped when read. A field the answer does not carry reads as ``None``
    (as optional fields do on the official SDK's models); names starting with ``_`` do not.
    """

    __slots__ = ("_data",)

    _data: dict[str, Any]

    def __init__(self, data: dict[str, Any]) -> None:
        object.__setattr__(self, "_data", data)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _wrap(self._data.get(name))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only; use to_dict() for a copy")

    def __getitem__(self, key: str) -> Any:
        return _wrap(self._data[key])

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def get(self, key: str, default: Any = None) -> Any:
        """The field ``key``, wrapped, or ``default`` when absent."""
        return _wrap(self._data[key]) if key in self._data else default

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Object):
            return self._data == other._data
        if isinstance(other, dict):
            return self._data == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object as a plain dict (the object's own data, not a copy)."""
        return self._data

    def to_json(self, indent: int | None = None) -> str:
        """The JSON object as text."""
        return json.dumps(self._data, indent=indent)


class Response(Object):
    """A completion (or Anthropic message) with how it was served: ``request_id`` (its usage
    record) and ``route`` (provider, model, every attempt with its latency)."""

    __slots__ = ("request_id", "_route_json", "_route")

    request_id: str

    def __init__(self, data: dict[str, Any], route_json: str, request_id: str) -> None:
        super().__init__(data)
        object.__setattr__(self, "request_id", request_id)
        object.__setattr__(self, "_route_json", route_json)
        object.__setattr__(self, "_route", None)

    @property
    def route(self) -> Object:
        """Where the request was served: ``provider``, ``model``, ``attempts``."""
        if self._route is None:
            object.__setattr__(self, "_route", Object(json.loads(self._route_json)))
        return self._route  # type: ignore[no-any-return]


def _json_default(value: Any) -> Any:
    """Lets answers go back into requests (``messages.append(resp.choices[0].message)``)."""
    if isinstance(value, Object):
        return value.to_dict()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """JSON bytes of a request body."""
    return json.dumps(value, default=_json_default).encode()
