"""Async fan-out: many concurrent calls on one AsyncGateway, and a cancelled one."""

import asyncio

import opengateway
from _mock import config


async def main() -> None:
    gw = opengateway.AsyncGateway(config())
    questions = [f"question {i}" for i in range(50)]
    answers = await asyncio.gather(
        *(gw.chat.completions.create(model="mock/mock-gpt", messages=[{"role": "user", "content": q}]) for q in questions)
    )
    print(f"{len(answers)} answers, {len({a.request_id for a in answers})} distinct request ids")
    print("last:", answers[-1].choices[0].message.content)

    slow = asyncio.create_task(
        gw.chat.completions.create(model="mock/mock-gpt~first_byte_delay_ms=5000", messages=[{"role": "user", "content": "slow"}])
    )
    await asyncio.sleep(0.2)
    slow.cancel()
    try:
        await slow
    except asyncio.CancelledError:
        pass
    await asyncio.sleep(0.2)  # the ledger settles the dropped request on its own thread
    await gw.flush()
    statuses = await gw.usage(by="status")
    print("by status:", {row.group.status: row.requests for row in statuses})


asyncio.run(main())
