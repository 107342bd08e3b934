"""The in-process gateway: ``Gateway`` (blocking) and ``AsyncGateway`` (asyncio), with the
official SDKs' call shapes (``gw.chat.completions.create``, ``gw.messages.create``,
``gw.embeddings.create``)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, TypedDict, Union, overload

from opengateway import _native
from opengateway._types import Object, Response, dumps

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Unpack

ConfigArg = Union[None, str, "os.PathLike[str]", dict[str, Any]]
TimeArg = Union[None, int, float, str, datetime]


class ChatParams(TypedDict, total=False):
    """OpenAI Chat Completions parameters, sent as given (``None`` leaves one out)."""

    audio: dict[str, Any] | None
    frequency_penalty: float | None
    logit_bias: dict[str, int] | None
    logprobs: bool | None
    max_completion_tokens: int | None
    max_tokens: int | None
    metadata: dict[str, str] | None
    modalities: list[str] | None
    n: int | None
    parallel_tool_calls: bool | None
    prediction: dict[str, Any] | None
    presence_penalty: float | None
    prompt_cache_key: str | None
    reasoning_effort: str | None
    response_format: dict[str, Any] | None
    safety_identifier: str | None
    seed: int | None
    service_tier: str | None
    stop: str | list[str] | None
    store: bool | None
    stream_options: dict[str, Any] | None
    temperature: float | None
    tool_choice: str | dict[str, Any] | None
    tools: list[dict[str, Any]] | None
    top_logprobs: int | None
    top_p: float | None
    user: str | None
    verbosity: str | None
    web_search_options: dict[str, Any] | None


class MessagesParams(TypedDict, total=False):
    """Anthropic Messages parameters, sent as given (``None`` leaves one out)."""

    system: str | list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    stop_sequences: list[str] | None
    temperature: float | None
    top_k: int | None
    top_p: float | None
    thinking: dict[str, Any] | None
    tool_choice: dict[str, Any] | None
    tools: list[dict[str, Any]] | None
    output_config: dict[str, Any] | None
    service_tier: str | None


def _config_args(config: ConfigArg) -> tuple[str | None, str | None]:
    if config is None:
        return None, None
    if isinstance(config, dict):
        return json.dumps(config), None
    if isinstance(config, (str, os.PathLike)):
        return None, os.fspath(config)
    raise TypeError("config must be None, a path or a dict")


def _request(
    fields: dict[str, Any],
    params: dict[str, Any],
    timeout: float | None,
    tags: Iterable[str] | None,
    extra_body: dict[str, Any] | None,
) -> tuple[bytes, str | None]:
    """The JSON body (given fields only, ``extra_body`` merged over) and the call context."""
    body = {k: v for k, v in fields.items() if v is not None}
    body.update((k, v) for k, v in params.items() if v is not None)
    if timeout is not None:
        body["timeout_ms"] = int(timeout * 1000)
    if extra_body:
        body.update(extra_body)
    context = json.dumps({"tags": list(tags)}) if tags else None
    return dumps(body), context


def _ms(value: TimeArg) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, str):
        return _native.parse_time(value)
    return int(value)


def _filter(
    since: TimeArg,
    until: TimeArg,
    key: str | None,
    user: str | None,
    model: str | None,
    provider: str | None,
    tag: str | None,
    status: str | None,
) -> dict[str, Any]:
    fields = {
        "since_ms": _ms(since),
        "until_ms": _ms(until),
        "key": key,
        "user": user,
        "model": model,
        "provider": provider,
        "tag": tag,
        "status": status,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _group_by(by: str | Iterable[str] | None) -> list[str]:
    if by is None:
        return []
    if isinstance(by, str):
        return [b.strip() for b in by.split(",") if b.strip()]
    return list(by)


def _answer(raw: tuple[str, str, str]) -> Response:
    data, route, request_id = raw
    return Response(json.loads(data), route, request_id)


class _StreamBase:
    """What both stream kinds hold: the native stream, its request id and its route."""

    request_id: str

    def __init__(self, native: _native.NativeStream) -> None:
        self._native = native
        self.request_id = native.request_id
        self._route: Object | None = None

    @property
    def route(self) -> Object:
        """Where the stream is served: ``provider``, ``model``, ``attempts``."""
        if self._route is None:
            self._route = Object(json.loads(self._native.route))
        return self._route


class Stream(_StreamBase):
    """A started stream of chunks (or Anthropic events): iterate it; ``with`` or ``close()``
    ends it early, closing the upstream connection."""

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Object:
        item = self._native.next()
        if item is None:
            raise StopIteration
        return Object(json.loads(item))

    def close(self) -> None:
        """Stops the stream now: the upstream request is closed and recorded as cancelled."""
        self._native.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncStream(_StreamBase):
    """The asyncio :class:`Stream`: ``async for``; ``async with`` or ``await close()``."""

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Object:
        item = await self._native.anext()
        if item is None:
            raise StopAsyncIteration
        return Object(json.loads(item))

    async def close(self) -> None:
        """Stops the stream now: the upstream request is closed and recorded as cancelled."""
        self._native.close()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._native.close()


EmbeddingInput = Union[str, list[str], list[int], list[list[int]]]


def _embeddings_request(
    model: str,
    input: EmbeddingInput,
    encoding_format: Literal["float", "base64"] | None,
    dimensions: int | None,
    user: str | None,
    models: list[str] | None,
    timeout: float | None,
    tags: Iterable[str] | None,
    extra_body: dict[str, Any] | None,
) -> tuple[bytes, str | None]:
    fields = {
        "model": model,
        "input": input,
        "encoding_format": encoding_format,
        "dimensions": dimensions,
        "user": user,
        "models": models,
    }
    return _request(fields, {}, timeout, tags, extra_body)


class _Base:
    """What both gateways share: the native gateway, the ledger queries and the hook."""

    def __init__(self, config: ConfigArg = None) -> None:
        self._native = _native.NativeGateway(*_config_args(config))

    def _usage(self, by: str | Iterable[str] | None, filters: dict[str, Any]) -> list[Object]:
        query = json.dumps({"group_by": _group_by(by), **filters})
        return [Object(row) for row in json.loads(self._native.usage(query))]

    def _records(self, limit: int, filters: dict[str, Any]) -> list[Object]:
        rows = json.loads(self._native.usage_records(json.dumps(filters), limit))
        return [Object(row) for row in rows]

    def on_request_end(self, callback: Callable[[Object], Any]) -> None:
        """Calls ``callback(record)`` after each request ends, on the ledger's own thread (never
        delaying a response). An exception in it goes to ``sys.unraisablehook``."""

        def hook(record_json: str) -> None:
            callback(Object(json.loads(record_json)))

        self._native.on_request_end(hook)


# ------------------------------------------------------------------------------- blocking


class _Completions:
    """``chat.completions`` of :class:`Gateway`."""

    def __init__(self, native: _native.NativeGateway) -> None:
        self._native = native

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Iterable[Any],
        stream: Literal[True],
        models: list[str] | None = None,
        timeout: float | None = None,
        tags: Iterable[str] | None = None,
        extra_body: dict[str, Any] | None = None,
        **params: Unpack[ChatParams],
    ) -> Stream: ...

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Iterable[Any],
        stream: Literal[False] = False,
        models: list[str] | None = None,
        timeout: float | None = None,
        tags: Iterable[str] | None = None,
        extra_body: dict[str, Any] | None = None,
        **params: Unpack[ChatParams],
    ) -> Response: ...

    def create(
        self,
        *,
        model: str,
        messages: Iterable[Any],
        stream: bool = False,
        models: list[str] | None = None,
        timeout: float | None = None,
        tags: Iterable[str] | None = None,
        extra_body: dict[str, Any] | None = None,
        **params: Any,
    ) -> Response | Stream:
        """A chat completion (OpenAI shape) routed by the gateway; ``stream=True`` returns a
        :class:`Stream` of chunks. ``models`` are fallbacks, ``timeout`` is in seconds, ``tags``
        label the usage record (not sent upstream), ``extra_body`` is merged into the body."""
        fields = {"model": model, "messages": list(messages), "models": models}
        body, context = _request(fields, params, timeout, tags, extra_body)
        if stream:
            return Stream(self._native.chat_stream(body, context))
        return _answer(self._native.chat(body, context))


class _Chat:
    """``chat`` of :class:`Gateway`."""

    def __init__(self, native: _native.NativeGateway) -> None:
        self.completions = _Completions(native)


class _Messages:
    """``messages`` of :class:`Gateway`: the Anthropic Messages API, any provider behind it."""

    def __init__(self, native: _native.NativeGateway) -> None:
        self._native = native

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Iterable[Any],
        max_tokens: int,
        stream: Literal[True],
        timeout: float | None = None,
        tags: Iterable[str] | None = None,
        extra_body: dict[str, Any] | None = None,
        **params: Unpack[MessagesParams],
    ) -> Stream: ...

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Iterable[Any],
        max_tokens: int,
        stream: Literal[False] = False,
        timeout: float | None = None,
        tags: Iterable[str] | None = None,
        extra_body: dict[str, Any] | None = None,
        **params: Unpack[MessagesParams],
    ) -> Response: ...

    def create(
        self,
        *,
        model: str,
        messages: Iterable[Any],
        max_tokens: int,
        stream: bool = False,
        timeout: float | None = None,
        tags: Iterable[str] | None = None,
        extra_body: dict[str, Any] | None = None,
        **params: Any,
    ) -> Response | Stream:
        """An Anthropic Messages answer; ``stream=True`` returns a :class:`Stream` of events
        (each with ``.type``)."""
        fields = {"model": model, "messages": list(messages), "max_tokens": max_tokens}
        body, context = _request(fields, params, timeout, tags, extra_body)
        if stream:
            return Stream(self._native.messages_stream(body, context))
        return _answer(self._native.messages(body, context))


class _Embeddings:
    """``embeddings`` of :class:`Gateway`: OpenAI's embeddings API, any embeddings provider
    behind it."""

    def __init__(self, native: _native.NativeGateway) -> None:
        self._native = native

    def create(
        self,
        *,
        model: str,
        input: EmbeddingInput,
        encoding_format: Literal["float", "base64"] | None = None,
        dimensions: int | None = None,
        user: str | None = None,
        models: list[str] | None = None,
        timeout: float | None = None,
        tags: Iterable[str] | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> Response:
        """Embeddings (OpenAI shape: ``resp.data[i].embedding``) routed by the gateway, in the
        ``encoding_format`` asked (``float`` by default, whatever the provider sends).
        ``models`` are fallbacks, ``timeout`` is in seconds, ``tags`` label the usage record."""
        body, context = _embeddings_request(
            model, input, encoding_format, dimensions, user, models, timeout, tags, extra_body
        )
        return _answer(self._native.embeddings(body, context))


class Gateway(_Base):
    """The gateway in this process, blocking calls (the GIL is released while they wait).

    ``config`` is a dict (the YAML structure), a path to a YAML file, or ``None`` for the
    defaults and the providers whose key variables (``OPENAI_API_KEY``, …) are set.
    Safe to share between threads.
    """

    def __init__(self, config: ConfigArg = None) -> None:
        super().__init__(config)
        self.chat = _Chat(self._native)
        self.messages = _Messages(self._native)
        self.embeddings = _Embeddings(self._native)

    def usage(
        self,
        by: str | Iterable[str] | None = None,
        *,
        since: TimeArg = None,
        until: TimeArg = None,
        key: str | None = None,
        user: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        tag: str | None = None,
        status: str | None = None,
    ) -> list[Object]:
        """Ledger totals grouped ``by`` (model, provider, key, user, tag, status, hour, day,
        month) over the records the filters cover; times are datetimes, Unix ms, or text
        (``2026-11-01``, RFC 3339, ``24h`` / ``7d`` ago)."""
        return self._usage(by, _filter(since, until, key, user, model, provider, tag, status))

    def usage_records(
        self,
        limit: int = 100,
        *,
        since: TimeArg = None,
        until: TimeArg = None,
        key: str | None = None,
        user: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        tag: str | None = None,
        status: str | None = None,
    ) -> list[Object]:
        """The ledger's records the filters cover, newest first, at most ``limit``."""
        filters = _filter(since, until, key, user, model, provider, tag, status)
        return self._records(limit, filters)

    def flush(self) -> None:
        """Waits until every record so far is written to the ledger's store."""
        self._native.flush()


# -------------------------------------------------------------------------------- asyncio


class _AsyncCompletions:
    """``chat.completions`` of :class:`AsyncGateway`."""

    def __init__(self, native: _native.NativeGateway) -> None:
        self._native = native

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Any],
        stream: Literal[True],
        models: list[str] | None = None,
        timeout: float | None = None,
        tags: Iterable[str] | None = None,
        extra_body: dict[str, Any] | None = None,
        **params: Unpack[ChatParams],
    ) -> AsyncStream: ...

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Any],
        stream: Literal[False] = False,
        models: list[str] | None = None,
        timeout: float | None = None,
        tags: Iterable[str] | None = None,
        extra_body: dict[str, Any] | None = None,
        **params: Unpack[ChatParams],
    ) -> Response: ...

    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Any],
        stream: bool = False,
        models: list[str] | None = None,
        timeout: float | None = None,
        tags: Iterable[str] | None = None,
        extra_body: dict[str, Any] | None = None,
        **params: Any,
    ) -> Response | AsyncStream:
        """:meth:`Gateway.chat.completions.create` for asyncio; cancelling the task closes the
        upstream request (recorded as cancelled)."""
        fields = {"model": model, "messages": list(messages), "models": models}
        body, context = _request(fields, params, timeout, tags, extra_body)
        if stream:
            return AsyncStream(await self._native.chat_stream_async(body, context))
        return _answer(await self._native.chat_async(body, context))


class _AsyncChat:
    """``chat`` of :class:`AsyncGateway`."""

    def __init__(self, native: _native.NativeGateway) -> None:
        self.completions = _AsyncCompletions(native)


class _AsyncMessages:
    """``messages`` of :class:`AsyncGateway`."""

    def __init__(self, native: _native.NativeGateway) -> None:
        self._native = native

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Any],
        max_tokens: int,
        stream: Literal[True],
        timeout: float | None = None,
        tags: Iterable[str] | None = None,
        extra_body: dict[str, Any] | None = None,
        **params: Unpack[MessagesParams],
    ) -> AsyncStream: ...

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Any],
        max_tokens: int,
        stream: Literal[False] = False,
        timeout: float | None = None,
        tags: Iterable[str] | None = None,
        extra_body: dict[str, Any] | None = None,
        **params: Unpack[MessagesParams],
    ) -> Response: ...

    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Any],
        max_tokens: int,
        stream: bool = False,
        timeout: float | None = None,
        tags: Iterable[str] | None = None,
        extra_body: dict[str, Any] | None = None,
        **params: Any,
    ) -> Response | AsyncStream:
        """:meth:`Gateway.messages.create` for asyncio."""
        fields = {"model": model, "messages": list(messages), "max_tokens": max_tokens}
        body, context = _request(fields, params, timeout, tags, extra_body)
        if stream:
            return AsyncStream(await self._native.messages_stream_async(body, context))
        return _answer(await self._native.messages_async(body, context))


class _AsyncEmbeddings:
    """``embeddings`` of :class:`AsyncGateway`."""

    def __init__(self, native: _native.NativeGateway) -> None:
        self._native = native

    async def create(
        self,
        *,
        model: str,
        input: EmbeddingInput,
        encoding_format: Literal["float", "base64"] | None = None,
        dimensions: int | None = None,
        user: str | None = None,
        models: list[str] | None = None,
        timeout: float | None = None,
        tags: Iterable[str] | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> Response:
        """:meth:`Gateway.embeddings.create` for asyncio."""
        body, context = _embeddings_request(
            model, input, encoding_format, dimensions, user, models, timeout, tags, extra_body
        )
        return _answer(await self._native.embeddings_async(body, context))


class AsyncGateway(_Base):
    """The gateway in this process for asyncio: every call is awaitable (see :class:`Gateway`
    for ``config``)."""

    def __init__(self, config: ConfigArg = None) -> None:
        super().__init__(config)
        self.chat = _AsyncChat(self._native)
        self.messages = _AsyncMessages(self._native)
        self.embeddings = _AsyncEmbeddings(self._native)

    async def usage(
        self,
        by: str | Iterable[str] | None = None,
        *,
        since: TimeArg = None,
        until: TimeArg = None,
        key: str | None = None,
        user: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        tag: str | None = None,
        status: str | None = None,
    ) -> list[Object]:
        """:meth:`Gateway.usage` (a quick local read of the ledger)."""
        return self._usage(by, _filter(since, until, key, user, model, provider, tag, status))

    async def usage_records(
        self,
        limit: int = 100,
        *,
        since: TimeArg = None,
        until: TimeArg = None,
        key: str | None = None,
        user: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        tag: str | None = None,
        status: str | None = None,
    ) -> list[Object]:
        """:meth:`Gateway.usage_records` (a quick local read of the ledger)."""
        filters = _filter(since, until, key, user, model, provider, tag, status)
        return self._records(limit, filters)

    async def flush(self) -> None:
        """Waits until every record so far is written to the ledger's store."""
        await self._native.flush_async()
