"""Waits until every page answers, prints the pages' URLs, then idles.

Every page answers: the vote page, the results page and its API answer 200, and the
worker's /readyz does (it reaches Valkey and PostgreSQL). It stays alive because the
Procfile runner stops everything when any process exits.
"""

from __future__ import annotations

import argparse
import signal
import time

import httpx2 as httpx


def ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local.announce", description=__doc__)
    parser.add_argument("--vote", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--worker", required=True)
    args = parser.parse_args()
    pages = (f"{args.vote}/", f"{args.result}/", f"{args.result}/api/results",
             f"{args.worker}/readyz")
    started = time.monotonic()
    while not all(ready(url) for url in pages):
        time.sleep(0.2)
    print(f"Ready in {time.monotonic() - started:.1f}s\n"
          f"  Vote:    {args.vote}\n"
          f"  Results: {args.result}\n"
          f"Press Ctrl-C to stop everything.", flush=True)
    signal.pause()


if __name__ == "__main__":
    main()
