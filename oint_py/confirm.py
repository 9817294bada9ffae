"""Per-user commands sent in batches of 50, and the one confirm-by-status rule.

For a method that is not idempotent (open, pause, close), a failure that may
have reached the portal is followed by one timeman.status check per user
before anything is re-sent: users already in the target state are settled,
users whose status cannot be read are reported as OUTCOME_UNKNOWN and never
sent again, and only the rest is re-sent. A user is thus changed at most once.

Each user ends as an entry: {"result": ...} (with a "note" when a status check
settled it), or {"error": CODE, "error_description": ...}.
"""

import json
from typing import Callable

from . import batch
from .call import Call
from .methods import STATUS_METHOD, Method
from .outcome import ExitStatus, OutcomeUnknown, RequestFailure, hint
from .transport import Answer, Client

TRANSPORT_ERRORS = ("REQUEST_FAILED", "OUTCOME_UNKNOWN")


def send(client: Client, call: Call, method: Method, per_user: dict[str, str],
         progress: Callable[[int], None] | None = None) -> dict[str, dict]:
    """Send {uid: command} in batches; return {uid: entry}. `progress(n)`: n
    more users have their answer."""
    ep = call.endpoint
    results: dict[str, dict] = {}
    for cmd in batch.chunks(per_user):
        confirm = None
        if method.confirm_status:
            def confirm(payload: dict):
                pending = {batch.uid(k): v for k, v in payload["cmd"].items()}
                remaining = {}
                for uid, record in statuses(client, call, list(pending), batched=True).items():
                    verdict = judge(method, record)
                    if verdict == "unknown":
                        results[uid] = {"error": "OUTCOME_UNKNOWN", "error_description": unknown_text(method, record)}
                    elif verdict == "settled":
                        results[uid] = {"result": record, "note": settled_text(method)}
                    else:
                        remaining[batch.key(uid)] = pending[uid]
                if not remaining:
                    return Answer(200, {}, batch.EMPTY, ep.url("batch"))
                return {**payload, "cmd": remaining}

        _collect(client, call, cmd, confirm, results)
        if progress:
            progress(len(cmd))
    return results


def _collect(client: Client, call: Call, cmd: dict, confirm, results: dict[str, dict]) -> None:
    """One batch request; each of its users' entries into `results` (kept where a status check settled it)."""
    ep = call.endpoint
    try:
        answer = client.call(ep.url("batch"), ep.payload(batch.request(cmd)), confirm)
    except RequestFailure as exc:
        code = "OUTCOME_UNKNOWN" if isinstance(exc, OutcomeUnknown) else "REQUEST_FAILED"
        for k in cmd:
            results.setdefault(batch.uid(k), {"error": code, "error_description": call.redactor(exc.message)})
        return
    if answer.kind != "ok":
        error = answer.body if answer.kind == "api_error" else {
            "error": "REQUEST_FAILED", "error_description": call.redactor(answer.problem)}
        for k in cmd:
            results.setdefault(batch.uid(k), error)
        return
    done, errors = batch.split(answer.body)
    for k in cmd:
        if batch.uid(k) in results:  # settled by a status check during a retry
            continue
        if k in errors:
            results[batch.uid(k)] = error_entry(errors[k])
        elif k in done:
            results[batch.uid(k)] = {"result": done[k]}
        else:
            results[batch.uid(k)] = {"error": "NO_ANSWER",
                                     "error_description": "the batch answered nothing for this user"}


def error_entry(value) -> dict:
    """One user's entry of a batch's result_error, as {"error", "error_description"} whatever the portal sent."""
    if isinstance(value, dict) and "error" in value:
        return value
    return {"error": "BAD_ANSWER", "error_description": f"the batch answered this user's error as {json.dumps(value)[:200]}"}


def statuses(client: Client, call: Call, uids: list[str], *, batched: bool) -> dict[str, dict | None]:
    """timeman.status of each user ("" is the webhook's own; at most one batch
    of them), asked once and never retried; None where it could not be read."""
    ep = call.endpoint
    if batched:
        url, payload = ep.url("batch"), ep.payload(batch.request(batch.commands(STATUS_METHOD, uids, {})[0]))
    else:
        url, payload = ep.url(STATUS_METHOD), ep.payload({"USER_ID": uids[0]} if uids[0] else {})
    try:
        answer = client.call(url, payload, retries=0)
    except RequestFailure:
        return dict.fromkeys(uids)
    if answer.kind != "ok":
        return dict.fromkeys(uids)
    if batched:
        done, _ = batch.split(answer.body)
        found = {uid: done.get(batch.key(uid)) for uid in uids}
    else:
        found = {uids[0]: answer.body.get("result")}
    return {uid: record if isinstance(record, dict) and "STATUS" in record else None for uid, record in found.items()}


def failure(uid: str, entry: dict) -> tuple[ExitStatus, str]:
    """An error entry's exit status (4 when no answer came, 3 when the portal
    refused) and its stderr line `user N: CODE: description`."""
    code = entry.get("error")
    status = ExitStatus.REQUEST_FAILED if code in TRANSPORT_ERRORS else ExitStatus.API_ERROR
    desc = entry.get("error_description") or ""
    return status, about(uid, (": ".join(str(p) for p in (code, desc) if p not in (None, "")) or "an error with no code")
                         + hint(code))


def about(uid: str, text: str) -> str:
    """A stderr line about one user: `user N: text` ("" is the caller's own user: no prefix)."""
    return f"user {uid}: {text}" if uid else text


def judge(method: Method, record: dict | None) -> str:
    """The one confirm-by-status rule, for a call that may have reached the portal:
    "settled" (the status shows it applied), "resend" (the status proves it was
    not), or "unknown" (no status, or one that cannot tell: never sent again)."""
    if record is None:
        return "unknown"
    if record.get("STATUS") == method.confirm_status:
        return "settled"
    return "resend" if method.resend_unapplied else "unknown"


def settled_text(method: Method) -> str:
    return (f"{method.rest} may have reached the portal before the failure; {STATUS_METHOD} shows "
            f"STATUS={method.confirm_status}, so it was not sent again")


def unknown_text(method: Method, record: dict | None = None) -> str:
    why = (f"{STATUS_METHOD} shows STATUS={record.get('STATUS')}, which it may itself have caused"
           if record is not None else f"{STATUS_METHOD} could not be read to tell")
    return (f"{method.rest} may have reached the portal before the failure, and {why}: it was not sent again. "
            "Check with GetTimekeepingStatus before repeating it")
