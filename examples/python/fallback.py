"""Fallback: the alias's first target fails; the route shows every attempt. Errors are typed."""

import opengateway
from _mock import config

gw = opengateway.Gateway(config())
resp = gw.chat.completions.create(model="resilient", messages=[{"role": "user", "content": "Hi"}])
print(resp.choices[0].message.content)
for attempt in resp.route.attempts:
    print(f"  tried {attempt.provider}/{attempt.model}: {attempt.status} in {attempt.latency_ms} ms")

try:
    gw.chat.completions.create(model="mock/mock-gpt~status=429", messages=[{"role": "user", "content": "Hi"}])
except opengateway.RateLimitError as e:
    print(f"{type(e).__name__}: status {e.status_code} from {e.provider} after {len(e.attempts)} attempt(s)")
