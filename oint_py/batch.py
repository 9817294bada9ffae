"""Many users in one call: Bitrix24's `batch`, 50 commands a request.

Each command is `timeman.close?USER_ID=5&TIME=...` with the query URL-encoded
(a raw `+` in TIME would arrive as a space). The client's leaky bucket keeps
the requests under the portal's limit, and throttled batches are re-sent by the
HTTP core. The output is one JSON object keyed by user ID, each holding that
user's result or error.
"""

from urllib.parse import urlencode

from .errors import API_ERROR, OK, REQUEST_FAILED, RequestFailure
from .methods import STATUS_METHOD, Method
from .run import BATCH_SIZE
from .transport import Answer


def _key(uid: str) -> str:
    return f"u{uid}"  # numeric keys would turn into a PHP list on the portal


def commands(method: Method, ids: list[str], params: dict, rest: str | None = None) -> list[dict]:
    rest = rest or method.rest
    chunks = [ids[i : i + BATCH_SIZE] for i in range(0, len(ids), BATCH_SIZE)]
    return [{_key(uid): f"{rest}?{urlencode({'USER_ID': uid, **params})}" for uid in chunk} for chunk in chunks]


def _as_map(value) -> dict:
    return value if isinstance(value, dict) else {}  # empty maps arrive as []


def batch_params(cmd: dict) -> dict:
    return {"halt": 0, "cmd": cmd}  # halt 0: one user's error does not stop the others


def _send(client, ep, cmd: dict, confirm=None, retries=None) -> Answer:
    return client.call(ep, "batch", batch_params(cmd), confirm=confirm, retries=retries)


def run_batch(client, ep, method: Method, ids: list[str], params: dict) -> tuple[dict, int]:
    results: dict[str, dict] = {}
    worst = OK
    for cmd in commands(method, ids, params):
        confirm = _confirmer(client, ep, method, results) if method.confirm_status else None
        try:
            answer = _send(client, ep, cmd, confirm)
        except RequestFailure as exc:
            for key in cmd:
                results.setdefault(key[1:], {"error": "REQUEST_FAILED", "error_description": exc.message})
            worst = max(worst, REQUEST_FAILED)
            continue
        if answer.kind != "ok":
            error = answer.body if isinstance(answer.body, dict) and "error" in answer.body else {
                "error": "REQUEST_FAILED", "error_description": answer.problem}
            for key in cmd:
                results.setdefault(key[1:], error)
            worst = max(worst, API_ERROR if answer.kind == "api_error" else REQUEST_FAILED)
            continue
        inner = _as_map(answer.body.get("result"))
        done, errors = _as_map(inner.get("result")), _as_map(inner.get("result_error"))
        for key in cmd:
            uid = key[1:]
            if uid in results:  # settled by a status check during a retry
                continue
            if key in errors:
                results[uid] = errors[key]
                worst = max(worst, API_ERROR)
            elif key in done:
                results[uid] = {"result": done[key]}
            else:
                results[uid] = {"error": "NO_ANSWER", "error_description": "the batch answered nothing for this user"}
                worst = max(worst, API_ERROR)
    return {uid: results[uid] for uid in ids}, worst


def _confirmer(client, ep, method: Method, results: dict):
    """After an ambiguous failure of a non-idempotent batch: ask timeman.status
    for its users; those already in the target state are settled and left out
    of the re-sent batch."""

    def confirm(payload: dict):
        cmd = payload["cmd"]
        uids = [key[1:] for key in cmd]
        try:
            answer = _send(client, ep, commands(method, uids, {}, rest=STATUS_METHOD)[0], retries=0)
        except RequestFailure:
            return None
        if answer.kind != "ok":
            return None
        statuses = _as_map(_as_map(answer.body.get("result")).get("result"))
        remaining = {}
        for key, command in cmd.items():
            status = statuses.get(key)
            if isinstance(status, dict) and status.get("STATUS") == method.confirm_status:
                results[key[1:]] = {"result": status, "note": f"confirmed by {STATUS_METHOD}, not sent again"}
            else:
                remaining[key] = command
        if not remaining:
            answer.body = {"result": {"result": [], "result_error": []}}
            return answer
        return {**payload, "cmd": remaining}

    return confirm
