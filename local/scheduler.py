"""Stands in for the cloud schedule: POSTs a scheduler event to the worker's /events.

Like the cloud function at reserved concurrency 1, one drain runs at a time: a tick that
finds the previous drain still running waits for it and is delivered as soon as it ends
(as Lambda holds a throttled asynchronous event); ticks never pile up.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import uuid

import httpx2 as httpx

log = logging.getLogger("scheduler")


def scheduler_event(schedule_arn: str) -> dict[str, object]:
    """The body EventBridge Scheduler delivers for a scheduled invocation."""
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
        "source": "aws.scheduler", "account": "000000000000",
        "time": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "local", "resources": [schedule_arn], "detail": "{}",
    }


async def tick(client: httpx.AsyncClient, url: str, timeout_s: float) -> bool:
    """One invocation; False if the worker could not be reached at all."""
    try:
        response = await client.post(url, json=scheduler_event(
            "arn:aws:scheduler:local:000000000000:schedule/default/worker-drain"),
            timeout=timeout_s)
    except httpx.ConnectError:
        return False
    except httpx.HTTPError as error:
        log.warning("worker did not answer: %r", error)
        return True
    if response.status_code != 200:
        log.warning("drain answered %s: %s", response.status_code, response.text)
    return True


async def run(url: str, every_s: float) -> None:
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient() as client:
        next_tick = loop.time()
        while True:
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            next_tick += every_s
            if not await tick(client, url, timeout_s=every_s * 4 + 10):
                next_tick = loop.time() + 0.2  # the worker is still starting: try again soon
            elif loop.time() > next_tick:  # the drain ran past the tick: it waited, now due
                log.info("previous drain ran past the tick: invoking at once")
                next_tick = loop.time()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local.scheduler", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--every", type=float, required=True, help="seconds between ticks")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(run(args.url, args.every))


if __name__ == "__main__":
    main()
