"""A cold start's library floor: the baseline app (bench/baseline.py), after importing
the third-party modules that a function loads before its first 200 (``FLOOR_MODULES``,
comma-separated, in the order the function loaded them; bench/coldstart.py takes the
list from the function's own start under ``python -X importtime``).

What a function takes above its floor is its own code and its connections; a target
below the floor cannot be met with those libraries. This module imports nothing else.
"""

from __future__ import annotations

import contextlib
import importlib
import os

from starlette.applications import Starlette

from bench.baseline import create_app as baseline_app


def create_app() -> Starlette:
    for name in filter(None, os.environ.get("FLOOR_MODULES", "").split(",")):
        with contextlib.suppress(ImportError):  # an optional module the library tried too
            importlib.import_module(name)
    return baseline_app()
