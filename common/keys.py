"""Redis key names. Every key carries the ``{votes}`` hash tag so that a move
between lists, or a Lua script over several of them, stays in one cluster slot
(ElastiCache Serverless always runs in cluster mode)."""

QUEUE = "{votes}:queue"
DEAD_LETTERS = "{votes}:dead"
CLAIMS = "{votes}:claims"  # set of batch ids ("<owner>:<n>") that may hold a processing list


def processing(batch_id: str) -> str:
    return f"{{votes}}:processing:{batch_id}"


def lease(owner: str) -> str:
    return f"{{votes}}:lease:{owner}"


def batch_owner(batch_id: str) -> str:
    return batch_id.rpartition(":")[0]
POLLS = "{votes}:polls"  # hash: poll id -> its definition (JSON), as vote_fn serves it
OPEN_POLL = "{votes}:poll:open"  # the open poll's id; absent when none is open
