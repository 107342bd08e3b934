"""API keys (`server.auth: keys`) seen through the official OpenAI and Anthropic Python SDKs.

A gateway of its own runs with keys required; keys are made and revoked with the real
`opengateway keys` CLI on the same store, and count on the server's next request. The OpenAI
SDK sends the key as `Authorization: Bearer`, the Anthropic SDK as `x-api-key`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Iterator

import anthropic
import openai
import pytest

from conftest import BIN_DIR, Service, _child_env

HELLO = [{"role": "user", "content": "Hello"}]


class KeyedGateway:
    def __init__(self, service: Service, config: Path) -> None:
        self.service = service
        self.config = config
        self.url = service.url

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(BIN_DIR / "opengateway"), "keys", *args, "--config", str(self.config)],
            env=_child_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def create(self, name: str, *flags: str) -> dict:
        return json.loads(self.cli("create", "--json", "--name", name, *flags))

    def openai(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=30)

    def anthropic(self, key: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=key, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def keyed(mock_server: Service, tmp_path_factory) -> Iterator[KeyedGateway]:
    workdir = tmp_path_factory.mktemp("keyed")
    config = workdir / "gateway.yaml"
    config.write_text(
        f"""\
providers:
  mock: {{ type: openai, api_base: "{mock_server.url}/v1", api_key: "test-key" }}
router: {{ retries: 0 }}
server: {{ listen: "127.0.0.1:0", database: "sqlite://{workdir / 'gw.db'}", auth: keys }}
""",
        encoding="utf-8",
    )
    service = Service(
        "opengateway (keys)",
        [str(BIN_DIR / "opengateway"), "serve", "--config", str(config), "--listen", "127.0.0.1:0"],
        cwd=workdir,
    )
    try:
        yield KeyedGateway(service, config)
    finally:
        service.stop()


def test_both_sdks_work_with_a_key_and_are_refused_without_or_once_it_is_revoked(keyed):
    created = keyed.create("sdk")
    secret = created["secret"]
    assert secret.startswith("ogw_")

    answer = keyed.openai(secret).chat.completions.create(model="mock/mock-gpt", messages=HELLO)
    assert answer.choices[0].message.content
    message = keyed.anthropic(secret).messages.create(
        model="mock/mock-gpt", max_tokens=32, messages=HELLO
    )
    assert message.content[0].text

    forged = "ogw_" + "A" * 43
    with pytest.raises(openai.AuthenticationError) as err:
        keyed.openai(forged).chat.completions.create(model="mock/mock-gpt", messages=HELLO)
    assert err.value.status_code == 401
    assert err.value.code == "invalid_api_key"
    assert forged not in str(err.value)
    # No key at all: the SDKs insist on one, so the header is left out of the request.
    with pytest.raises(openai.AuthenticationError) as err:
        keyed.openai("unused").chat.completions.create(
            model="mock/mock-gpt", messages=HELLO, extra_headers={"Authorization": openai.omit}
        )
    assert "didn't provide an API key" in err.value.message
    with pytest.raises(anthropic.AuthenticationError):
        keyed.anthropic("unused").messages.create(
            model="mock/mock-gpt",
            max_tokens=32,
            messages=HELLO,
            extra_headers={"x-api-key": anthropic.omit},
        )
    with pytest.raises(anthropic.AuthenticationError) as aerr:
        keyed.anthropic(forged).messages.create(
            model="mock/mock-gpt", max_tokens=32, messages=HELLO
        )
    assert aerr.value.status_code == 401

    keyed.cli("revoke", created["id"])
    with pytest.raises(openai.AuthenticationError) as err:
        keyed.openai(secret).chat.completions.create(model="mock/mock-gpt", messages=HELLO)
    assert "revoked" in err.value.message
    with pytest.raises(anthropic.AuthenticationError):
        keyed.anthropic(secret).messages.create(
            model="mock/mock-gpt", max_tokens=32, messages=HELLO
        )
    listed = json.loads(keyed.cli("list", "--json"))
    row = next(k for k in listed if k["id"] == created["id"])
    assert row["revoked"] is True and row["requests"] == 2


def test_rpm_limit_raises_rate_limit_error_with_openai_headers(keyed):
    secret = keyed.create("rpm", "--rpm", "1")["secret"]
    client = keyed.openai(secret)
    raw = client.chat.completions.with_raw_response.create(model="mock/mock-gpt", messages=HELLO)
    assert raw.headers["x-ratelimit-limit-requests"] == "1"
    assert raw.headers["x-ratelimit-remaining-requests"] == "0"
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="mock/mock-gpt", messages=HELLO)
    headers = err.value.response.headers
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(headers["retry-after"]) <= 60
    assert err.value.code == "rate_limit_exceeded"
    assert "RPM" in err.value.message


def test_a_model_outside_the_keys_list_raises_permission_denied(keyed):
    secret = keyed.create("narrow", "--models", "mock/mock-gpt")["secret"]
    client = keyed.openai(secret)
    client.chat.completions.create(model="mock/mock-gpt", messages=HELLO)
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(model="mock/mock-gpt-mini", messages=HELLO)
    assert err.value.status_code == 403
    assert err.value.code == "model_not_allowed"
    assert "mock/mock-gpt-mini" in err.value.message
    with pytest.raises(anthropic.PermissionDeniedError):
        keyed.anthropic(secret).messages.create(
            model="mock/mock-gpt-mini", max_tokens=32, messages=HELLO
        )
    assert [m.id for m in client.models.list()] == ["mock/mock-gpt"]
