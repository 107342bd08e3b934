"""Harness for the end-to-end suite: a real mock provider and a real gateway, both as processes.

The binaries come from ``$OGW_BIN_DIR`` (default ``<repo>/target/debug``; build them with
``cargo build --bins``). Each prints its address on its first stdout line; we read it with a
bounded wait, keep draining both pipes in threads so they never fill, and stop both processes
when the session ends.
"""

from __future__ import annotations

import collections
import os
import queue
import subprocess
import threading
from pathlib import Path
from typing import Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("OGW_BIN_DIR") or REPO_ROOT / "target" / "debug")
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_SERVICES: list["Service"] = []

# Everything in this suite talks to 127.0.0.1: keep any proxy settings from getting in the way.
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var), "127.0.0.1", "localhost"]))


def _child_env() -> dict[str, str]:
    """The environment for both binaries: no proxies and no real provider keys, so the gateway
    only knows the providers of its test config."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().endswith(("_API_KEY", "_API_BASE", "_PROXY"))
    }
    env.setdefault("OPENGATEWAY_LOG", "info")
    return env


class Service:
    """A child process whose first stdout line announces ``... http://127.0.0.1:PORT``."""

    def __init__(self, name: str, argv: list[str], cwd: Path) -> None:
        self.name = name
        self.argv = argv
        self.log: collections.deque[str] = collections.deque(maxlen=400)
        self._first_line: queue.Queue[str | None] = queue.Queue(maxsize=1)
        if not Path(argv[0]).is_file():
            raise RuntimeError(
                f"{argv[0]} does not exist: run `cargo build --bins` or set OGW_BIN_DIR"
            )
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=_child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._threads = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, False), daemon=True),
        ]
        for t in self._threads:
            t.start()
        _SERVICES.append(self)
        self.url = self._wait_for_url()

    def _drain(self, pipe, is_stdout: bool) -> None:
        first = is_stdout
        for line in pipe:
            line = line.rstrip("\n")
            self.log.append(("out| " if is_stdout else "err| ") + line)
            if first:
                first = False
                self._first_line.put(line)
        if first:  # stdout closed before any line: the process died
            self._first_line.put(None)

    def _wait_for_url(self) -> str:
        try:
            line = self._first_line.get(timeout=STARTUP_TIMEOUT_S)
        except queue.Empty:
            self.stop()
            raise RuntimeError(
                f"{self.name} printed nothing within {STARTUP_TIMEOUT_S}s\n{self.dump()}"
            ) from None
        marker = "http://"
        if line is None or marker not in line:
            self.stop()
            raise RuntimeError(f"{self.name} did not announce its address: {line!r}\n{self.dump()}")
        return line[line.index(marker) :].split()[0].rstrip("/")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def dump(self) -> str:
        return f"--- {self.name} output (last lines) ---\n" + "\n".join(self.log)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        for t in self._threads:
            t.join(timeout=STOP_TIMEOUT_S)


@pytest.fixture(scope="session")
def mock_server(tmp_path_factory) -> Iterator[Service]:
    workdir = tmp_path_factory.mktemp("mock")
    service = Service(
        "opengateway-mock",
        [str(BIN_DIR / "opengateway-mock"), "--listen", "127.0.0.1:0"],
        cwd=workdir,
    )
    try:
        yield service
    finally:
        service.stop()


def start_gateway(name: str, workdir: Path, config_yaml: str) -> Service:
    """Writes ``config_yaml`` to ``workdir/gateway.yaml`` and starts ``opengateway serve`` on it
    (on a free port; the returned service knows its URL)."""
    config = workdir / "gateway.yaml"
    config.write_text(config_yaml, encoding="utf-8")
    return Service(
        name,
        [str(BIN_DIR / "opengateway"), "serve", "--config", str(config), "--listen", "127.0.0.1:0"],
        cwd=workdir,
    )


@pytest.fixture(scope="session")
def gateway(mock_server: Service, tmp_path_factory) -> Iterator[Service]:
    workdir = tmp_path_factory.mktemp("gateway")
    service = start_gateway(
        "opengateway",
        workdir,
        f"""\
providers:
  mock: {{ type: openai, api_base: "{mock_server.url}/v1", api_key: "test-key" }}
  mockgemini: {{ type: gemini, api_base: "{mock_server.url}/v1beta", api_key: "test-key" }}
models:
  - name: smart
    targets: [mock/mock-gpt]
router: {{ retries: 0 }}
server: {{ listen: "127.0.0.1:0", database: "sqlite://{workdir / 'gw.db'}", auth: none, max_body_bytes: 65536 }}
""",
    )
    try:
        yield service
    finally:
        service.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, show the tail of both processes' logs."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for service in _SERVICES:
            report.sections.append((f"{service.name} log", service.dump()))
