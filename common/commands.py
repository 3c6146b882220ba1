"""The size of one Redis command: ElastiCache refuses a request with more than 3,999
arguments, the command's name included. Valkey and Redis have no such limit, so nothing
run locally would catch a command that grows with its input: every call that sends one
argument per item (a vote, a dead letter) sizes its chunks with these.
"""

MAX_ARGUMENTS = 3_999


def script_room(keys: int, args: int) -> int:
    """How many more arguments a script call with ``keys`` keys and ``args`` arguments
    may carry: EVALSHA, the script's hash and the number of keys come first."""
    return MAX_ARGUMENTS - 3 - keys - args
