"""Cost report: tag calls, watch each one end, then total the ledger by model and tag."""

import opengateway
from _mock import config

gw = opengateway.Gateway(config())
gw.on_request_end(lambda record: print(f"  ended {record.id}: {record.status}, ${record.cost.total_usd if record.cost else 0:.6f}"))

for team, n in (("search", 3), ("support", 2)):
    for i in range(n):
        gw.chat.completions.create(
            model="mock/mock-gpt", messages=[{"role": "user", "content": f"{team} {i}"}], tags=[team], user=f"{team}-bot"
        )
gw.flush()

print(f"{'model':<20} {'tag':<10} {'requests':>8} {'tokens':>8} {'cost USD':>10}")
for row in gw.usage(by=["model", "tag"], since="24h"):
    tokens = row.prompt_tokens + row.completion_tokens
    print(f"{row.group.model:<20} {row.group.tag:<10} {row.requests:>8} {tokens:>8} {row.total_cost_usd:>10.6f}")
