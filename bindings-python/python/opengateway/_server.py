"""Server mode from Python: the same OpenAI-compatible HTTP server as ``opengateway serve``."""

from __future__ import annotations

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


def serve(
    config: ConfigArg = None,
    *,
    listen: str | None = None,
    ready: Callable[[Server], object] | None = None,
) -> None:
    """Runs the gateway's HTTP server until Ctrl-C, printing
    ``opengateway listening on http://ADDR`` first, as ``opengateway serve`` does. ``ready``
    is called with the running :class:`Server` (its exception stops the server and is raised)."""
    server = Server(config, listen=listen)
    try:
        server._native.print_banner()
        if ready is not None:
            ready(server)
        server.wait()
    finally:
        server.stop()
