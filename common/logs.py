"""Plain, prefixed log lines for the functions (uvicorn configures only its own loggers)."""

from __future__ import annotations

import logging


def configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s")
