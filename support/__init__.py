"""What the tests and the benchmarks share: real Valkey, PostgreSQL and function processes,
waits for conditions, plain HTTP, and the oracles that say what the pipeline must have
counted. Not part of the app: the images never ship it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
