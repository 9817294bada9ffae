"""Many users in one request: the shape of Bitrix24's `batch`.

Each command is `timeman.close?USER_ID=5&TIME=...` with the query URL-encoded
(a raw `+` in TIME would arrive as a space), at most BATCH_SIZE a request,
keyed `u<id>` (numeric keys would turn into a PHP list on the portal).
Pure functions: sending is execute.py's business.
"""

from urllib.parse import urlencode

from .bounds import BATCH_SIZE


def key(uid: str) -> str:
    return f"u{uid}"


def uid(command_key: str) -> str:
    return command_key[1:]


def commands(rest: str, ids, params: dict) -> list[dict]:
    """The `cmd` maps for `ids`, BATCH_SIZE users each."""
    ids = list(ids)
    chunks = [ids[i : i + BATCH_SIZE] for i in range(0, len(ids), BATCH_SIZE)]
    return [{key(u): f"{rest}?{urlencode({'USER_ID': u, **params})}" for u in chunk} for chunk in chunks]


def request(cmd: dict) -> dict:
    return {"halt": 0, "cmd": cmd}  # halt 0: one user's error does not stop the others


def as_map(value) -> dict:
    return value if isinstance(value, dict) else {}  # PHP sends empty maps as []


def split(body) -> tuple[dict, dict]:
    """(results, errors) of a batch answer's body, each keyed by command key."""
    inner = as_map(as_map(body).get("result"))
    return as_map(inner.get("result")), as_map(inner.get("result_error"))


EMPTY = {"result": {"result": [], "result_error": []}}  # what a batch of no commands answers
