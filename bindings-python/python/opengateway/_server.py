"""Server mode from Python: the same OpenAI-compatible HTTP server as ``opengateway serve``."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Callable

from opengateway import _native
from opengateway._client import ConfigArg, _config_args

if TYPE_CHECKING:
    from types import TracebackType


class Server:
    """A running server (started on construction); ``stop()`` or ``with`` ends it, letting
    requests in flight finish and writing their usage records."""

    address: str

    def __init__(self, config: ConfigArg = None, *, listen: str | None = None) -> None:
        self._native = _native.NativeServer(*_config_args(config), listen)
        self.address = self._native.address

    @property
    def url(self) -> str:
        """``http://HOST:PORT``; OpenAI SDKs take ``base_url=server.url + "/v1"``."""
        return f"http://{self.address}"

    def stop(self) -> None:
        """Stops the server and waits until it has stopped."""
        self._native.stop()

    def wait(self) -> None:
        """Blocks until Ctrl-C (KeyboardInterrupt), then stops the server and re-raises."""
        self._native.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Terminated(BaseException):
    """SIGTERM arrived: stop gracefully, like ``opengateway serve`` does."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def serve(
    config: ConfigArg = None,
    *,
    listen: str | None = None,
    ready: Callable[[Server], object] | None = None,
) -> None:
    """Runs the gateway's HTTP server until Ctrl-C (KeyboardInterrupt is re-raised) or SIGTERM
    (returns), printing ``opengateway listening on http://ADDR`` first, as ``opengateway serve``
    does; either way requests in flight finish and their usage records are written first.
    ``ready`` is called with the running :class:`Server` (its exception stops the server and is
    raised)."""
    # Without a handler SIGTERM would kill the interpreter mid-request, losing records; only
    # the main thread may install one.
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if on_main_thread else None
    server = Server(config, listen=listen)
    try:
        server._native.print_banner()
        if ready is not None:
            ready(server)
        server.wait()
    except _Terminated:
        pass
    finally:
        server.stop()
        if on_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
