"""`GET /metrics` and `GET /health` of a gateway of its own, driven with the official OpenAI SDK.

The gateway runs as a real process (see conftest.py) in front of the session's mock provider,
with a priced model, an alias whose first target fails (a fallback) and a provider on a closed
port. After an ok request, a stream, a fallback and an error, the exposition is parsed with the
Prometheus client's own text parser and its counts and sums must equal what the SDK saw.
"""

from __future__ import annotations

import socket

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import Service, start_gateway

# openai>=3 is built on `httpx2` (the successor of `httpx`); older releases on `httpx`.
try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the pinned SDK
    import httpx

MESSAGES = [{"role": "user", "content": "Count me"}]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


@pytest.fixture(scope="module")
def metrics_gateway(mock_server: Service, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("metrics-gateway")
    service = start_gateway(
        "opengateway (metrics)",
        workdir,
        f"""\
providers:
  mock: {{ type: openai, api_base: "{mock_server.url}/v1", api_key: "test-key" }}
  down: {{ type: openai, api_base: "{closed_port_url()}", api_key: "test-key", connect_timeout_ms: 1000 }}
models:
  - name: fb
    targets: ["mock/mock-gpt~status=500", mock/mock-gpt]
router: {{ retries: 0, cooldown_s: 3600 }}
pricing:
  models:
    mock/mock-gpt: {{ input_cost_per_token: 0.000001, output_cost_per_token: 0.000002 }}
server: {{ listen: "127.0.0.1:0", database: "sqlite://{workdir / 'gw.db'}", auth: none }}
""",
    )
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def client(metrics_gateway):
    with openai.OpenAI(
        base_url=f"{metrics_gateway.url}/v1",
        api_key="unused",
        max_retries=0,
        timeout=30.0,
        http_client=httpx.Client(trust_env=False),
    ) as c:
        yield c


def samples(url: str) -> list:
    with httpx.Client(trust_env=False, timeout=30.0) as http:
        response = http.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    return [s for family in text_string_to_metric_families(response.text) for s in family.samples]


def total(all_samples: list, name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in all_samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_equal_what_the_sdk_saw(client, metrics_gateway):
    usages = []
    ok = client.chat.completions.create(model="mock/mock-gpt", messages=MESSAGES)
    usages.append(ok.usage)

    stream = client.chat.completions.create(
        model="mock/mock-gpt",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    stream_usage = [chunk.usage for chunk in stream if chunk.usage is not None]
    assert len(stream_usage) == 1
    usages.append(stream_usage[0])

    raw = client.chat.completions.with_raw_response.create(model="fb", messages=MESSAGES)
    assert raw.headers["x-opengateway-attempts"] == "2"
    usages.append(raw.parse().usage)

    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="mock/mock-gpt~status=400", messages=MESSAGES)

    s = samples(metrics_gateway.url)
    endpoint = "chat.completions"
    assert total(s, "opengateway_requests_total", endpoint=endpoint) == 4
    assert total(s, "opengateway_requests_total", status="ok") == 3
    assert total(s, "opengateway_requests_total", status="error") == 1
    assert total(s, "opengateway_requests_total", model="fb", provider="mock", status="ok") == 1
    assert (
        total(
            s,
            "opengateway_errors_total",
            model="mock/mock-gpt~status=400",
            type="invalid_request_error",
        )
        == 1
    )
    assert total(s, "opengateway_request_duration_seconds_count", endpoint=endpoint) == 4
    assert total(s, "opengateway_time_to_first_token_seconds_count") == 1
    assert total(s, "opengateway_fallbacks_total", model="fb") == 1
    assert total(s, "opengateway_attempts_per_request_sum", model="fb") == 2
    assert total(s, "opengateway_upstream_attempts_total", status="200") == 3
    assert total(s, "opengateway_upstream_attempts_total", status="500") == 1
    assert total(s, "opengateway_upstream_attempts_total", status="400") == 1
    assert total(s, "opengateway_requests_in_flight") == 0

    billed = {"provider": "mock", "model": "mock/mock-gpt"}
    prompt = sum(u.prompt_tokens for u in usages)
    completion = sum(u.completion_tokens for u in usages)
    cost = sum(u.model_extra["cost"] for u in usages)
    assert prompt > 0 and completion > 0 and cost > 0
    assert total(s, "opengateway_tokens_total", kind="prompt", **billed) == prompt
    assert total(s, "opengateway_tokens_total", kind="completion", **billed) == completion
    assert total(s, "opengateway_cost_usd_total", **billed) == pytest.approx(cost, rel=1e-12)


def test_health_lists_each_provider_and_is_degraded_with_one_down(metrics_gateway):
    with httpx.Client(trust_env=False, timeout=30.0) as http:
        response = http.get(f"{metrics_gateway.url}/health")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["status"] == "degraded"
    by_id = {p["id"]: p for p in report["providers"]}
    assert set(by_id) == {"mock", "down"}
    assert by_id["mock"]["status"] == "ok"
    assert by_id["down"]["status"] == "error"
    assert by_id["down"]["error"]
