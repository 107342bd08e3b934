"""Streaming: print chunks as they arrive; the usage chunk carries the cost."""

import opengateway
from _mock import config

gw = opengateway.Gateway(config())
with gw.chat.completions.create(
    model="mock/mock-gpt",
    messages=[{"role": "user", "content": "Tell me a story"}],
    stream=True,
    stream_options={"include_usage": True},
) as stream:
    for chunk in stream:
        if chunk.choices:
            print(chunk.choices[0].delta.content or "", end="", flush=True)
        if chunk.usage:
            print(f"\n[{chunk.usage.completion_tokens} tokens, ${chunk.usage.cost:.6f} via {stream.route.provider}]")
