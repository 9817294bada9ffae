"""Runs one method of the table: options in, JSON and an exit code out.

This is the only place that knows how a method call becomes HTTP requests:
one call for one user, `batch` for several, a timeman.status check before
re-sending a call that may already have taken effect.
"""

from . import output, redact, timeparse
from .errors import API_ERROR, OK, REQUEST_FAILED, RequestFailure, UsageFailure
from .methods import STATUS_METHOD, Method
from .settings import Settings

BATCH_SIZE = 50  # Bitrix24's limit of commands in one batch


def user_ids(value: str | None) -> tuple[list[str] | None, bool]:
    """--userid: one ID, a list `1,2,3`, or `@file` (one ID a line, # comments).
    Returns (ids, many): many is True for the list forms, whose output is keyed by user."""
    if value is None or not value.strip():
        return None, False
    text, many = value.strip(), False
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8-sig") as fh:
                text = fh.read()
        except OSError as exc:
            raise UsageFailure(f"--userid: cannot read {text[1:]!r}: {exc.strerror or exc}") from None
        text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
        many = True
    parts = [p for p in text.replace(",", " ").split() if p]
    many = many or "," in value or len(parts) > 1
    bad = [p for p in parts if not (p.isascii() and p.isdigit() and int(p) > 0)]
    if bad:
        raise UsageFailure(f"--userid: {bad[0]!r} is not a user ID (a positive whole number)")
    if not parts:
        raise UsageFailure("--userid: no user IDs given")
    return list(dict.fromkeys(parts)), many


def rest_params(method: Method, values: dict) -> dict:
    """The REST fields of the call except USER_ID, validated before anything is sent."""
    params = {}
    for p in method.params:
        if p.rest and p.rest != "USER_ID" and values.get(p.option) not in (None, ""):
            value = values[p.option]
            if p.rest == "TIME":
                try:
                    value = timeparse.to_atom(value)
                except ValueError as exc:
                    raise UsageFailure(str(exc)) from None
            params[p.rest] = value
    return params


def execute(method: Method, values: dict, settings: Settings, *, debug=False, test=False, out=None) -> int:
    """values: CLI option -> string, e.g. {"--url": ..., "--userid": ...}."""
    from .transport import endpoint

    ep = endpoint(values.get("--url") or "", values.get("--token"))
    ids, many = user_ids(values.get("--userid"))
    params = rest_params(method, values)
    if out:
        out = output.check_out(out)
    if test:
        return _show_request(method, ep, ids, many, params, settings)
    if settings.dontwait:
        from .jobs import start

        output.emit(start(method, values, settings, debug=debug, out=out))
        return OK

    from .transport import Client

    client = Client(settings, log=output.debug if debug else None)
    try:
        if many:
            from .batch import run_batch

            data, code = run_batch(client, ep, method, ids, params)
            output.emit(data, out)
            return code
        if ids:
            params = {"USER_ID": ids[0], **params}
        answer = client.call(ep, method.rest, params, confirm=_confirmer(client, ep, method, params))
    except RequestFailure as exc:
        output.emit({"error": "REQUEST_FAILED", "error_description": redact.redact(exc.message)}, out)
        raise
    finally:
        client.close()
    for note in answer.notes:
        output.warn(note)
    output.emit(answer.adv() if settings.adv_response else answer.body, out)
    if answer.kind == "ok":
        return OK
    output.warn(answer.problem)
    return API_ERROR if answer.kind == "api_error" else REQUEST_FAILED


def _confirmer(client, ep, method: Method, params: dict):
    """For a call that is not idempotent: after an ambiguous failure, ask
    timeman.status whether the call already took effect before re-sending."""
    if not method.confirm_status:
        return None

    def confirm(payload):
        status_params = {"USER_ID": params["USER_ID"]} if "USER_ID" in params else {}
        try:
            answer = client.call(ep, STATUS_METHOD, status_params, retries=0)
        except RequestFailure:
            return None
        result = answer.body.get("result") if answer.kind == "ok" else None
        if isinstance(result, dict) and result.get("STATUS") == method.confirm_status:
            answer.notes.append(
                f"{method.rest} may have reached the portal before the failure; "
                f"{STATUS_METHOD} shows STATUS={method.confirm_status}, so it was not sent again"
            )
            return answer
        return None

    return confirm


def _show_request(method, ep, ids, many, params, settings) -> int:
    """--test: what would be sent, secrets masked; nothing is sent."""
    if many:
        from .batch import batch_params, commands

        requests = [{"method": "POST", "url": ep.url("batch"), "body": ep.payload(batch_params(cmd))}
                    for cmd in commands(method, ids, params)]
    else:
        body = {"USER_ID": ids[0], **params} if ids else params
        requests = [{"method": "POST", "url": ep.url(method.rest), "body": ep.payload(body)}]
    shown = {
        "requests": requests,
        "headers": {"Content-Type": "application/json; charset=utf-8"},
        "proxy": settings.proxy,
        "timeout": settings.timeout,
        "retries": settings.retries,
        "tls_verify": "off" if settings.insecure else (settings.ca_bundle or "system"),
    }
    output.say(redact.redact(output.dumps(shown)))
    return OK
