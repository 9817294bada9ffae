"""Many users in one request: the shape of Bitrix24's `batch`.

Each command is `timeman.close?USER_ID=5&TIME=...` with the query URL-encoded
(a raw `+` in TIME would arrive as a space), at most BATCH_SIZE a request,
keyed `u<id>` (numeric keys would turn into a PHP list on the portal).
Pure functions: sending is rest/client.py's business (send_batch).
"""

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from oint_py.bounds import BATCH_SIZE

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


def key(uid: str) -> str:
    return f"u{uid}"


def uid(command_key: str) -> str:
    return command_key[1:]


def line(rest: str, params: "Mapping[str, object]") -> str:
    """One command: the method and its URL-encoded query."""
    return f"{rest}?{urlencode(params)}"


def user_line(rest: str, uid: str, params: "Mapping[str, object]") -> str:
    """One user's command ("" is the caller's own user: no USER_ID)."""
    return line(rest, {"USER_ID": uid, **params} if uid else params)


def lines(rest: str, ids: "Iterable[str]", params: "Mapping[str, object]") -> dict[str, str]:
    """The same call for each user: {uid: command}."""
    return {u: user_line(rest, u, params) for u in ids}


def chunks(per_user: dict[str, str]) -> list[dict[str, str]]:
    """The `cmd` maps for {uid: command}, BATCH_SIZE users each, keyed by key(uid)."""
    items = list(per_user.items())
    return [{key(u): command for u, command in items[i : i + BATCH_SIZE]} for i in range(0, len(items), BATCH_SIZE)]


def commands(rest: str, ids: "Iterable[str]", params: "Mapping[str, object]") -> list[dict[str, str]]:
    """The `cmd` maps for `ids`, BATCH_SIZE users each."""
    return chunks(lines(rest, ids, params))


def request(cmd: dict[str, str]) -> dict[str, Any]:
    return {"halt": 0, "cmd": cmd}  # halt 0: one user's error does not stop the others


def as_map(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}  # PHP sends empty maps as []


def split(body: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """(results, errors) of a batch answer's body, each keyed by command key."""
    inner = as_map(as_map(body).get("result"))
    return as_map(inner.get("result")), as_map(inner.get("result_error"))


def paging(body: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """(result_total, result_next) of a batch answer's body, each keyed by command key: a list method's paging."""
    inner = as_map(as_map(body).get("result"))
    return as_map(inner.get("result_total")), as_map(inner.get("result_next"))


EMPTY: dict[str, Any] = {"result": {"result": [], "result_error": []}}  # what a batch of no commands answers
