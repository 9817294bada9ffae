"""execute(call) -> Outcome: how a checked Call becomes HTTP requests.

One call for one user, `batch` for several; never prints, never exits. For a
method that is not idempotent (open, pause, close), a failure that may have
reached the portal is followed by one timeman.status check per user before
anything is re-sent: users already in the target state are settled, users
whose status cannot be read are reported as OUTCOME_UNKNOWN and never sent
again, and only the rest is re-sent.
"""

import json
from typing import Callable

from . import batch, tls
from .call import Call
from .methods import STATUS_METHOD
from .outcome import ExitStatus, OintError, Outcome, OutcomeUnknown, RequestFailure
from .transport import Answer, Client

_KIND_STATUS = {"ok": ExitStatus.OK, "api_error": ExitStatus.API_ERROR, "failed": ExitStatus.REQUEST_FAILED}


def execute(call: Call, *, log: Callable[[str], None] | None = None, transport=None) -> Outcome:
    """`log`: where --debug lines go (the caller masks them); `transport`: an
    httpx transport instead of the network (unit tests)."""
    if call.test:
        return plan(call)
    try:
        client = Client(call.settings, call.endpoint.base, log=log, transport=transport, mask=call.redactor)
    except OintError as exc:
        return Outcome.failed(exc)
    try:
        return _many(call, client) if call.many else _one(call, client)
    except RequestFailure as exc:
        code = "OUTCOME_UNKNOWN" if isinstance(exc, OutcomeUnknown) else "REQUEST_FAILED"
        return Outcome.failed(exc, {"error": code, "error_description": call.redactor(exc.message)})
    finally:
        client.close()


def _one(call: Call, client: Client) -> Outcome:
    uid = call.user_ids[0] if call.user_ids else ""
    params = {"USER_ID": uid, **call.rest_params} if uid else call.rest_params
    ep, method = call.endpoint, call.method
    confirm = None
    if method.confirm_status:
        def confirm(payload: dict):
            record = _statuses(client, call, [uid])[uid]
            if record is None:
                raise OutcomeUnknown(_unknown_text(call))
            if record.get("STATUS") == method.confirm_status:
                return Answer(200, {}, {"result": record}, ep.url(STATUS_METHOD), notes=(_settled_text(call),))
            return payload

    answer = client.call(ep.url(method.rest), ep.payload(params), confirm)
    messages = answer.notes + ((answer.problem,) if answer.kind != "ok" else ())
    data = answer.adv() if call.settings.adv_response else answer.body
    return Outcome(_KIND_STATUS[answer.kind], data, messages)


def _many(call: Call, client: Client) -> Outcome:
    ep, method = call.endpoint, call.method
    results: dict[str, dict] = {}
    status = ExitStatus.OK
    for cmd in batch.commands(method.rest, call.user_ids, call.rest_params):
        confirm = None
        if method.confirm_status:
            def confirm(payload: dict):
                pending = {batch.uid(k): v for k, v in payload["cmd"].items()}
                remaining = {}
                for uid, record in _statuses(client, call, list(pending)).items():
                    if record is None:
                        results[uid] = {"error": "OUTCOME_UNKNOWN", "error_description": _unknown_text(call)}
                    elif record.get("STATUS") == method.confirm_status:
                        results[uid] = {"result": record, "note": _settled_text(call)}
                    else:
                        remaining[batch.key(uid)] = pending[uid]
                if not remaining:
                    return Answer(200, {}, batch.EMPTY, ep.url("batch"))
                return {**payload, "cmd": remaining}

        try:
            answer = client.call(ep.url("batch"), ep.payload(batch.request(cmd)), confirm)
        except RequestFailure as exc:
            code = "OUTCOME_UNKNOWN" if isinstance(exc, OutcomeUnknown) else "REQUEST_FAILED"
            for k in cmd:
                results.setdefault(batch.uid(k), {"error": code, "error_description": call.redactor(exc.message)})
            continue
        if answer.kind != "ok":
            error = answer.body if answer.kind == "api_error" else {
                "error": "REQUEST_FAILED", "error_description": call.redactor(answer.problem)}
            for k in cmd:
                results.setdefault(batch.uid(k), error)
            continue
        done, errors = batch.split(answer.body)
        for k in cmd:
            if batch.uid(k) in results:  # settled by a status check during a retry
                continue
            if k in errors:
                results[batch.uid(k)] = _error_entry(errors[k])
            elif k in done:
                results[batch.uid(k)] = {"result": done[k]}
            else:
                results[batch.uid(k)] = {"error": "NO_ANSWER", "error_description": "the batch answered nothing for this user"}
    data = {uid: results[uid] for uid in call.user_ids}
    messages = []
    for uid, entry in data.items():
        if "error" in entry:
            code = entry.get("error")
            status = max(status, ExitStatus.REQUEST_FAILED if code in ("REQUEST_FAILED", "OUTCOME_UNKNOWN")
                         else ExitStatus.API_ERROR)
            desc = entry.get("error_description") or ""
            messages.append(f"user {uid}: " + ": ".join(str(p) for p in (code, desc) if p not in (None, "")))
        elif "note" in entry:
            messages.append(f"user {uid}: {entry['note']}")
    return Outcome(ExitStatus(status), data, tuple(messages))


def _error_entry(value) -> dict:
    """One user's entry of a batch's result_error, as {"error", "error_description"} whatever the portal sent."""
    if isinstance(value, dict) and "error" in value:
        return value
    return {"error": "BAD_ANSWER", "error_description": f"the batch answered this user's error as {json.dumps(value)[:200]}"}


def _statuses(client: Client, call: Call, uids: list[str]) -> dict[str, dict | None]:
    """timeman.status of each user ("" is the webhook's own), asked once and
    never retried; None where it could not be read."""
    ep = call.endpoint
    if call.many:
        url, payload = ep.url("batch"), ep.payload(batch.request(batch.commands(STATUS_METHOD, uids, {})[0]))
    else:
        url, payload = ep.url(STATUS_METHOD), ep.payload({"USER_ID": uids[0]} if uids[0] else {})
    try:
        answer = client.call(url, payload, retries=0)
    except RequestFailure:
        return dict.fromkeys(uids)
    if answer.kind != "ok":
        return dict.fromkeys(uids)
    if call.many:
        done, _ = batch.split(answer.body)
        found = {uid: done.get(batch.key(uid)) for uid in uids}
    else:
        found = {uids[0]: answer.body.get("result")}
    return {uid: record if isinstance(record, dict) and "STATUS" in record else None for uid, record in found.items()}


def _settled_text(call: Call) -> str:
    return (f"{call.method.rest} may have reached the portal before the failure; {STATUS_METHOD} shows "
            f"STATUS={call.method.confirm_status}, so it was not sent again")


def _unknown_text(call: Call) -> str:
    return (f"{call.method.rest} may have reached the portal before the failure, and {STATUS_METHOD} could not be "
            f"read to tell: it was not sent again. Check with GetTimekeepingStatus before repeating it")


def plan(call: Call) -> Outcome:
    """--test: the requests that would be sent, secrets masked; nothing is sent."""
    ep = call.endpoint
    if call.many:
        requests = [{"method": "POST", "url": ep.url("batch"), "body": ep.payload(batch.request(cmd))}
                    for cmd in batch.commands(call.method.rest, call.user_ids, call.rest_params)]
    else:
        body = {"USER_ID": call.user_ids[0], **call.rest_params} if call.user_ids else call.rest_params
        requests = [{"method": "POST", "url": ep.url(call.method.rest), "body": ep.payload(body)}]
    s = call.settings
    https = ep.base.startswith("https:") or (s.proxy or "").startswith("https:")
    shown = {
        "requests": requests,
        "headers": {"Content-Type": "application/json; charset=utf-8"},
        "proxy": s.proxy,
        "timeout": s.timeout,
        "retries": s.retries,
        "max_answer": s.max_answer,
        "tls_verify": tls.describe(s.insecure, s.ca_bundle) if https else "not used (plain http)",
    }
    return Outcome(ExitStatus.OK, call.redactor.data(shown))
