"""API keys (`server.auth: keys`) seen through the official OpenAI and Anthropic Python SDKs.

Gateways of their own run with keys required; keys are made and revoked with the real
`opengateway keys` CLI (or the admin API) on the same store, and count on the server's next
request. The OpenAI SDK sends the key as `Authorization: Bearer`, the Anthropic SDK as
`x-api-key`. Every stateful test makes its own keys, so the tests do not depend on each other;
the restart and the unreadable-store tests run their own gateway.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Iterator

import anthropic
import openai
import pytest

from conftest import BIN_DIR, Service, _child_env


def _once(read, requests: int | None) -> dict:
    """`read()`, again every 50 ms for up to 10 s until its row exists and counts `requests`:
    another process (the CLI) sees a request's record within about a second of its end, when
    the server's ledger writer commits its batch, not at once."""
    deadline = time.monotonic() + 10
    while True:
        try:
            row = read()
        except StopIteration:
            # No row yet (a key's first usage before the writer's commit).
            if requests is None or time.monotonic() > deadline:
                raise
        else:
            if requests is None or row["requests"] == requests or time.monotonic() > deadline:
                return row
        time.sleep(0.05)

# openai>=3 is built on `httpx2` (the successor of `httpx`); older releases on `httpx`.
try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the pinned SDK
    import httpx

HELLO = [{"role": "user", "content": "Hello"}]
MASTER = "sk-admin-sdk-keys-0123456789"
# A catalog model: the mock answers any model id, and the catalog's gpt-4o prices make the cost
# of a request non-zero.
PRICED = "mock/gpt-4o"
# A collision needs ~65,536 tries on average (16 bits); this many fail with odds below e^-30.
COLLISION_TRIES = 2_000_000


def random_key() -> str:
    """A key of the form the core accepts: `ogw_` and the unpadded URL-safe base64 of 32 bytes."""
    return "ogw_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def hash_head(secret: str) -> bytes:
    """The store's indexed lookup head: the first 16 bits of the key's SHA-256."""
    return hashlib.sha256(secret.encode()).digest()[:2]


class KeyedGateway:
    """A gateway with `auth: keys` over one SQLite store, the CLI on the same config, and the
    secrets made for it (so the store can be searched for them)."""

    def __init__(self, workdir: Path, mock_url: str) -> None:
        self.workdir = workdir
        self.database = workdir / "gw.db"
        self.config = workdir / "gateway.yaml"
        self.config.write_text(
            f"""\
providers:
  mock: {{ type: openai, api_base: "{mock_url}/v1", api_key: "test-key" }}
router: {{ retries: 0 }}
server:
  listen: "127.0.0.1:0"
  database: "sqlite://{self.database}"
  auth: keys
  master_key: "{MASTER}"
""",
            encoding="utf-8",
        )
        self.secrets: list[str] = []
        self.service = self._start()

    def _start(self) -> Service:
        return Service(
            "opengateway (keys)",
            [
                str(BIN_DIR / "opengateway"),
                "serve",
                "--config",
                str(self.config),
                "--listen",
                "127.0.0.1:0",
            ],
            cwd=self.workdir,
        )

    @property
    def url(self) -> str:
        return self.service.url

    def restart(self) -> None:
        """Stops the server (SIGTERM, as a supervisor would) and starts it on the same config."""
        self.service.stop()
        assert self.service.proc.returncode is not None
        self.service = self._start()

    def stop(self) -> None:
        self.service.stop()

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [str(BIN_DIR / "opengateway"), *args, "--config", str(self.config)],
            env=_child_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def cli(self, *args: str) -> str:
        return self.run("keys", *args)

    def create(self, name: str, *flags: str) -> dict:
        created = json.loads(self.cli("create", "--json", "--name", name, *flags))
        self.secrets.append(created["secret"])
        return created

    def listed(self, key_id: str, requests: int | None = None) -> dict:
        """The key's row, once it counts `requests` when given (see `_once`)."""
        return _once(
            lambda: next(k for k in json.loads(self.cli("list", "--json")) if k["id"] == key_id),
            requests,
        )

    def usage_by_key(self, key_id: str, requests: int | None = None) -> dict:
        """The key's usage row, once it counts `requests` when given (see `_once`)."""

        def row() -> dict:
            rows = json.loads(self.run("usage", "--by", "key", "--json"))
            return next(r for r in rows if r["group"]["key"] == key_id)

        return _once(row, requests)

    def openai(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=30)

    def anthropic(self, key: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=key, max_retries=0, timeout=30)


def start_gateway(mock_server: Service, tmp_path_factory, name: str) -> KeyedGateway:
    return KeyedGateway(tmp_path_factory.mktemp(name), mock_server.url)


@pytest.fixture(scope="module")
def keyed(mock_server: Service, tmp_path_factory) -> Iterator[KeyedGateway]:
    gateway = start_gateway(mock_server, tmp_path_factory, "keyed")
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
def own_gateway(mock_server: Service, tmp_path_factory) -> Iterator[KeyedGateway]:
    """A gateway for one test, for tests that stop it or break its store."""
    gateway = start_gateway(mock_server, tmp_path_factory, "own")
    try:
        yield gateway
    finally:
        gateway.stop()


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
    row = keyed.listed(created["id"], requests=2)
    assert row["revoked"] is True and row["requests"] == 2


def test_a_forged_key_sharing_a_real_keys_hash_head_is_refused(keyed):
    secret = keyed.create("collided")["secret"]
    head = hash_head(secret)
    for _ in range(COLLISION_TRIES):
        colliding = random_key()
        if hash_head(colliding) == head and colliding != secret:
            break
    else:
        pytest.fail("no key with the same 16-bit hash head was found")
    assert len(colliding) == len(secret)

    # The lookup finds the real key's row, and the full-hash comparison refuses the forgery.
    with pytest.raises(openai.AuthenticationError) as err:
        keyed.openai(colliding).chat.completions.create(model="mock/mock-gpt", messages=HELLO)
    assert err.value.status_code == 401
    assert err.value.code == "invalid_api_key"
    assert colliding not in str(err.value)
    with pytest.raises(anthropic.AuthenticationError) as aerr:
        keyed.anthropic(colliding).messages.create(
            model="mock/mock-gpt", max_tokens=32, messages=HELLO
        )
    assert aerr.value.status_code == 401
    assert colliding not in str(aerr.value)

    # The real key is untouched by the attempts.
    assert keyed.openai(secret).chat.completions.create(model="mock/mock-gpt", messages=HELLO)
    assert keyed.anthropic(secret).messages.create(
        model="mock/mock-gpt", max_tokens=32, messages=HELLO
    ).content[0].text


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


def test_tpm_limit_raises_rate_limit_error_with_token_headers(keyed):
    # The answer's real tokens are charged when it ends: one long answer spends the minute.
    secret = keyed.create("tpm", "--tpm", "1000")["secret"]
    client = keyed.openai(secret)
    raw = client.chat.completions.with_raw_response.create(
        model="mock/mock-gpt", messages=HELLO, extra_body={"mock": {"completion_tokens": 1500}}
    )
    assert raw.parse().usage.completion_tokens == 1500
    assert raw.headers["x-ratelimit-limit-tokens"] == "1000"
    assert "x-ratelimit-limit-requests" not in raw.headers

    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="mock/mock-gpt", messages=HELLO)
    assert err.value.status_code == 429
    headers = err.value.response.headers
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    assert headers["x-ratelimit-reset-tokens"].endswith("s")
    assert int(headers["retry-after"]) >= 1
    assert err.value.code == "rate_limit_exceeded"
    assert err.value.type == "tokens"
    assert "tokens per min (TPM)" in err.value.message and "Limit 1000" in err.value.message

    # The Anthropic SDK on /v1/messages, with a key of its own spent the same way.
    secret = keyed.create("tpm-anthropic", "--tpm", "1000")["secret"]
    client = keyed.anthropic(secret)
    long = client.messages.create(
        model="mock/mock-gpt~completion_tokens=1500", max_tokens=2000, messages=HELLO
    )
    assert long.usage.output_tokens == 1500
    with pytest.raises(anthropic.RateLimitError) as aerr:
        client.messages.create(model="mock/mock-gpt", max_tokens=32, messages=HELLO)
    assert aerr.value.status_code == 429
    assert aerr.value.response.headers["x-ratelimit-remaining-tokens"] == "0"
    assert "TPM" in aerr.value.message


def test_budget_refuses_once_spent_and_the_cli_shows_the_spend(keyed):
    # A request is admitted only if its worst case (the prompt and `max_tokens` at gpt-4o's
    # catalog prices, about $0.000115 here) fits in what is left; each answer costs ~$0.00009.
    budget = 0.00035
    created = keyed.create("budget", "--budget-usd", str(budget))
    client = keyed.openai(created["secret"])
    seen_cost = 0.0
    served = 0
    with pytest.raises(openai.RateLimitError) as err:
        while served < 50:
            answer = client.chat.completions.create(model=PRICED, messages=HELLO, max_tokens=10)
            assert answer.usage.cost > 0
            seen_cost += answer.usage.cost
            served += 1
    assert served >= 2, "the budget refused before it was spent"
    assert err.value.status_code == 429
    assert err.value.code == "budget_exceeded"
    assert f"key:{created['id']}" in err.value.message

    row = keyed.listed(created["id"], requests=served + 1)
    assert row["limits"]["budget_usd"] == budget
    # The refusal is in the ledger too (as an error, at no cost).
    assert row["requests"] == served + 1
    assert row["spent_usd"] == pytest.approx(seen_cost, rel=1e-9)
    assert 0 < row["spent_usd"] <= budget


def test_allowed_models_hold_on_every_endpoint_and_the_model_list(keyed):
    allowed = ["mock/mock-gpt", "mock/text-embedding-3-small"]
    secret = keyed.create("narrow", "--models", ",".join(allowed))["secret"]
    client = keyed.openai(secret)
    claude = keyed.anthropic(secret)

    def assert_denied(err: pytest.ExceptionInfo, model: str) -> None:
        assert err.value.status_code == 403
        assert model in err.value.message

    # Inside the list: served.
    assert client.chat.completions.create(model="mock/mock-gpt", messages=HELLO).choices
    assert client.responses.create(model="mock/mock-gpt", input="Hello").output_text
    vectors = client.embeddings.create(model="mock/text-embedding-3-small", input="Hello")
    assert len(vectors.data) == 1 and vectors.data[0].embedding
    assert claude.messages.create(model="mock/mock-gpt", max_tokens=32, messages=HELLO).content

    # Outside it: 403 on each endpoint, with the SDK's own error class.
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(model="mock/mock-gpt-mini", messages=HELLO)
    assert_denied(err, "mock/mock-gpt-mini")
    assert err.value.code == "model_not_allowed"
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.responses.create(model="mock/mock-gpt-mini", input="Hello")
    assert_denied(err, "mock/mock-gpt-mini")
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.embeddings.create(model="mock/text-embedding-3-large", input="Hello")
    assert_denied(err, "mock/text-embedding-3-large")
    with pytest.raises(anthropic.PermissionDeniedError) as aerr:
        claude.messages.create(model="mock/mock-gpt-mini", max_tokens=32, messages=HELLO)
    assert_denied(aerr, "mock/mock-gpt-mini")

    listed = [m.id for m in client.models.list()]
    assert "mock/mock-gpt" in listed
    assert set(listed) <= set(allowed), listed
    # An unrestricted key sees the model the narrow one may not use.
    everything = [m.id for m in keyed.openai(keyed.create("wide")["secret"]).models.list()]
    assert "mock/mock-gpt-mini" in everything


def test_admin_api_key_lifecycle_with_the_master_key(keyed):
    admin = httpx.Client(base_url=keyed.url, timeout=30)
    master = {"Authorization": f"Bearer {MASTER}"}

    # An API key is not the master key, even a valid one.
    user_key = keyed.create("not-admin")["secret"]
    for request in (
        lambda h: admin.get("/admin/keys", headers=h),
        lambda h: admin.post("/admin/keys", headers=h, json={"name": "x"}),
    ):
        refused = request({"Authorization": f"Bearer {user_key}"})
        assert refused.status_code == 401, refused.text
        assert user_key not in refused.text

    made = admin.post("/admin/keys", headers=master, json={"name": "via-admin", "rpm": 100})
    assert made.status_code == 201, made.text
    created = made.json()
    keyed.secrets.append(created["secret"])
    client = keyed.openai(created["secret"])
    assert client.chat.completions.create(model="mock/mock-gpt", messages=HELLO).choices

    revoked = admin.post(f"/admin/keys/{created['id']}/revoke", headers=master)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked"] is True
    with pytest.raises(openai.AuthenticationError) as err:
        client.chat.completions.create(model="mock/mock-gpt", messages=HELLO)
    assert "revoked" in err.value.message
    # The CLI reads the same store.
    row = keyed.listed(created["id"], requests=1)
    assert row["revoked"] is True and row["requests"] == 1


def test_a_restart_keeps_keys_revocations_and_usage(own_gateway):
    gw = own_gateway
    kept = gw.create("kept")
    gone = gw.create("gone")
    client = gw.openai(kept["secret"])
    seen_cost = 0.0
    for _ in range(2):
        seen_cost += client.chat.completions.create(model=PRICED, messages=HELLO).usage.cost
    assert gw.anthropic(gone["secret"]).messages.create(
        model="mock/mock-gpt", max_tokens=32, messages=HELLO
    ).content
    gw.cli("revoke", gone["id"])
    assert seen_cost > 0

    gw.restart()

    # Usage recorded before the stop is all there, as the SDK saw it.
    row = gw.listed(kept["id"], requests=2)
    assert row["requests"] == 2 and row["revoked"] is False
    assert row["spent_usd"] == pytest.approx(seen_cost, rel=1e-9)
    usage = gw.usage_by_key(kept["id"], requests=2)
    assert usage["requests"] == 2 and usage["ok"] == 2
    assert usage["total_cost_usd"] == pytest.approx(seen_cost, rel=1e-9)
    assert gw.listed(gone["id"], requests=1)["requests"] == 1

    # The new process knows the kept key, still refuses the revoked one, and keeps counting.
    client = gw.openai(kept["secret"])
    seen_cost += client.chat.completions.create(model=PRICED, messages=HELLO).usage.cost
    with pytest.raises(openai.AuthenticationError) as err:
        gw.openai(gone["secret"]).chat.completions.create(model="mock/mock-gpt", messages=HELLO)
    assert "revoked" in err.value.message
    with pytest.raises(anthropic.AuthenticationError):
        gw.anthropic(gone["secret"]).messages.create(
            model="mock/mock-gpt", max_tokens=32, messages=HELLO
        )
    row = gw.listed(kept["id"], requests=3)
    assert row["requests"] == 3
    assert row["spent_usd"] == pytest.approx(seen_cost, rel=1e-9)
    assert gw.usage_by_key(kept["id"], requests=3)["requests"] == 3


def test_the_sqlite_files_hold_no_raw_key(keyed):
    # A key of this test's own, used, so its use is in the ledger too.
    secret = keyed.create("scanned")["secret"]
    assert keyed.openai(secret).chat.completions.create(model=PRICED, messages=HELLO).choices
    files = [
        p
        for p in (keyed.database, Path(f"{keyed.database}-wal"), Path(f"{keyed.database}-shm"))
        if p.exists()
    ]
    assert keyed.database in files
    contents = {p.name: p.read_bytes() for p in files}
    assert len(keyed.secrets) >= 2
    for made in keyed.secrets:
        body = made.removeprefix("ogw_")
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        assert len(raw) == 32
        for name, data in contents.items():
            for needle in (made.encode(), body.encode(), raw):
                assert needle not in data, f"{name} holds the key {made[:12]}…"
    # What the store does keep: the key's SHA-256.
    digest = hashlib.sha256(secret.encode()).digest()
    assert any(digest in data for data in contents.values())


def test_an_unreadable_key_store_refuses_with_503_until_it_is_back(own_gateway):
    gw = own_gateway
    secret = gw.create("store")["secret"]
    client = gw.openai(secret)
    assert client.chat.completions.create(model="mock/mock-gpt", messages=HELLO).choices

    db = sqlite3.connect(gw.database, timeout=10)
    try:
        db.execute("ALTER TABLE api_keys RENAME TO api_keys_away")
        db.commit()
        # Refused, never let through: for the real key and a made-up one alike.
        for key in (secret, random_key()):
            with pytest.raises(openai.InternalServerError) as err:
                gw.openai(key).chat.completions.create(model="mock/mock-gpt", messages=HELLO)
            assert err.value.status_code == 503
            assert "key store is unavailable" in err.value.message
        with pytest.raises(anthropic.InternalServerError) as aerr:
            gw.anthropic(secret).messages.create(
                model="mock/mock-gpt", max_tokens=32, messages=HELLO
            )
        assert aerr.value.status_code == 503
    finally:
        db.execute("ALTER TABLE api_keys_away RENAME TO api_keys")
        db.commit()
        db.close()

    assert client.chat.completions.create(model="mock/mock-gpt", messages=HELLO).choices
    assert gw.anthropic(secret).messages.create(
        model="mock/mock-gpt", max_tokens=32, messages=HELLO
    ).content
