"""Quickstart: one chat completion through the in-process gateway."""

import opengateway
from _mock import config

gw = opengateway.Gateway(config())
resp = gw.chat.completions.create(
    model="mock/mock-gpt",
    messages=[{"role": "user", "content": "Hello!"}],
)
print(resp.choices[0].message.content)
print(f"served by {resp.provider} ({resp.route.model}), cost ${resp.usage.cost:.6f}, request {resp.request_id}")
