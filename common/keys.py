"""Redis key names. Every key carries the ``{votes}`` hash tag so that a move
between lists, or a Lua script over several of them, stays in one cluster slot
(ElastiCache Serverless always runs in cluster mode)."""

QUEUE = "{votes}:queue"
DEAD_LETTERS = "{votes}:dead"
CLAIMS = "{votes}:claims"  # set of drain owners that may hold a processing list


def processing(owner: str) -> str:
    return f"{{votes}}:processing:{owner}"


def lease(owner: str) -> str:
    return f"{{votes}}:lease:{owner}"
