"""Fixtures for the Python binding's tests: an in-process gateway (``opengateway.Gateway``)
pointed at the session's mock provider (a real process on 127.0.0.1, see ../conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

import opengateway


def gateway_config(mock_url: str) -> dict[str, Any]:
    """Providers on the mock: OpenAI-shaped `mock`, Anthropic-shaped `mockanthropic`; an alias
    whose first target fails, for fallback."""
    return {
        "providers": {
            "mock": {"type": "openai", "api_base": f"{mock_url}/v1", "api_key": "test-key"},
            "mockanthropic": {"type": "anthropic", "api_base": mock_url, "api_key": "test-key"},
        },
        "models": [
            {"name": "smart", "targets": ["mock/mock-gpt"]},
            {"name": "fallback", "targets": ["mock/mock-gpt~status=503", "mock/mock-gpt"]},
        ],
        "router": {"retries": 0},
    }


@pytest.fixture(scope="session")
def config(mock_server) -> dict[str, Any]:
    return gateway_config(mock_server.url)


@pytest.fixture
def gw(config) -> opengateway.Gateway:
    """A fresh gateway per test, so each test's ledger holds only its own requests."""
    return opengateway.Gateway(config)


@pytest.fixture
def agw(config) -> opengateway.AsyncGateway:
    return opengateway.AsyncGateway(config)
