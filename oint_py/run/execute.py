"""execute(call) -> Outcome: how a checked Call becomes HTTP requests.

One call for one user, `batch` for several; never prints, never exits. A
method that is not idempotent (open, pause, close) is re-sent after an
ambiguous failure only where timeman.status says it has not taken effect
(rest/client.py: the rule, for one user or per user in a batch). Its answer is
judged by the record it returns (confirm.shown), not by the HTTP status: a
200 whose record shows the change not made is exit 3, with an error added.
"""

from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from oint_py.files.signals import NotReached, stopped
from oint_py.methods import STATUS_METHOD
from oint_py.model import Call
from oint_py.net import tls
from oint_py.net.transport import Client
from oint_py.outcome import ExitStatus, OintError, Outcome, OutcomeUnknown, RequestFailure
from oint_py.rest import batch
from oint_py.rest.answer import Answer, Kind
from oint_py.rest.client import (
    Applied,
    Payload,
    RestClient,
    Shown,
    failed_entry,
    judge,
    settled_text,
    shown,
    statuses,
    unknown_text,
)

if TYPE_CHECKING:
    import httpx

    from oint_py.files.signals import Stop
    from oint_py.rest.client import Caller
    from oint_py.run.sweep import Listing

_KIND_STATUS = {Kind.OK: ExitStatus.OK, Kind.API_ERROR: ExitStatus.API_ERROR, Kind.FAILED: ExitStatus.REQUEST_FAILED}


def execute(
    call: Call,
    *,
    log: Callable[[str], None] | None = None,
    transport: "httpx.BaseTransport | None" = None,
    progress: Callable[[str, int, int], None] | None = None,
    record: Callable[[dict[str, Any]], None] | None = None,
    stop: "Stop | None" = None,
) -> Outcome:
    """`log`: where --debug lines go (the caller masks them); `transport`: an
    httpx transport instead of the network (unit tests); `progress(what, done,
    total)`: told how far a run over many users got; `record(entries)`: given
    every user's entry so far after each batch; `stop`: a files.signals.Stop, looked
    at between batches."""
    if call.test:
        return preview(call)
    ep = call.endpoint
    client: Caller | None = None
    try:
        with ExitStack() as held:
            if call.many and call.method.changes_state and not call.plan:  # one such run per portal at a time
                from oint_py.files import lock

                with _before_any_change(stop):
                    held.enter_context(lock.held(ep.base, stop))
            # a webhook's secret is in its path: a portal's own move that keeps that path may be followed
            client = RestClient(
                Client(
                    call.settings,
                    ep.base,
                    log=log,
                    transport=transport,
                    mask=call.redactor,
                    moves_with=None if ep.token else urlsplit(ep.base).path,
                    stop=stop,
                )
            )
            if call.auth_file:  # an app's auth file: the token is renewed there when the portal says it expired
                from oint_py.auth.authfile import Renewing

                client = Renewing(client, call.auth_file, call.settings, log)
            held.enter_context(closing(client))
            outcome = _run(call, client, progress, record, stop)
    except RequestFailure as exc:
        return _auth_notes(client, Outcome.failed(exc, failed_entry(exc, call.redactor)))
    except OintError as exc:
        return _auth_notes(client, Outcome.failed(exc))
    except _Stopped:
        from oint_py.run import sweep

        return _auth_notes(client, sweep.stopped_early(stop))
    outcome = _auth_notes(client, outcome)
    if client.waited:  # the REST client's own lines (an auth file's Renewing hands the name on to it)
        outcome = outcome.replace(messages=(*outcome.messages, *client.waited))
    if client.moved:
        new = client.moved + urlsplit(ep.base).path
        outcome = outcome.replace(
            messages=(*outcome.messages, call.redactor(f"the portal moved to {new}: update --url"))
        )
    return outcome


def _auth_notes(client: "Caller | None", outcome: Outcome) -> Outcome:
    """An auth file's lines (a renewed pair kept elsewhere than the file, a portal not moved) before the
    outcome's own; exit 6 at least when the file does not hold the live pair."""
    notes = tuple(dict.fromkeys(getattr(client, "notes", ())))  # each once, however many renewals said it
    if not notes:
        return outcome
    if getattr(client, "unsaved", False):
        outcome = outcome.replace(status=max(outcome.status, ExitStatus.NOT_WRITTEN))
    return outcome.replace(messages=(*notes, *outcome.messages))


def _run(
    call: Call,
    client: "Caller",
    progress: Callable[[str, int, int], None] | None,
    record: Callable[[dict[str, Any]], None] | None,
    stop: "Stop | None",
) -> Outcome:
    if not call.many and not call.reads_first:
        return _one(call, client)
    from oint_py.run import sweep  # only runs over several users need it

    notes: tuple[str, ...] = ()
    if call.all_users:
        with _before_any_change(stop):
            listing, failed = sweep.active_users(call, client, progress)
        if failed:
            return sweep.stopped_early(stop) if stopped(stop) else failed
        if not listing.ids:
            return Outcome(
                ExitStatus.OK,
                {},
                listing.notes
                + _inactive(listing)
                + (f"{sweep.USER_METHOD}: the portal lists no active users; nothing was done",),
            )
        call = call.replace(user_ids=tuple(listing.ids))
        notes = listing.notes + _inactive(listing)
    outcome = sweep.run(call, client, progress, record, stop)
    return outcome.replace(messages=notes + outcome.messages)


class _Stopped(Exception):
    """A signal cut the run before anything was sent that changes a day."""


@contextmanager
def _before_any_change(stop: "Stop | None") -> Iterator[None]:
    """Within the block nothing is changed: a signal's cut (KeyboardInterrupt, or a wait a stop ended) ends the
    run as stopped by it."""
    try:
        yield
    except (KeyboardInterrupt, NotReached):
        if not stopped(stop):
            raise
        raise _Stopped from None


def _inactive(listing: "Listing") -> tuple[str, ...]:
    """The line about listed users the portal should not have listed (a sweep.Listing's inactive ones)."""
    from oint_py.run import sweep

    if not listing.inactive:
        return ()
    shown = ", ".join(listing.inactive[:10]) + (", ..." if len(listing.inactive) > 10 else "")
    return (
        f"{sweep.USER_METHOD}: {len(listing.inactive)} listed users are not ACTIVE (the portal ignored the "
        f"filter): {shown}; they were skipped",
    )


def _one(call: Call, client: "Caller") -> Outcome:
    uid = call.user_ids[0] if call.user_ids else ""
    params = {"USER_ID": uid, **call.rest_params} if uid else call.rest_params
    ep, method = call.endpoint, call.method
    confirm = None
    if method.confirm_status:

        def confirm(payload: Payload) -> Answer | Payload:
            record = statuses(client, call, [uid], batched=False)[uid]
            applied = judge(method, record)
            if applied is Applied.UNKNOWN:
                raise OutcomeUnknown(unknown_text(method, record))
            if applied is Applied.YES:
                return Answer(200, {}, {"result": record}, ep.url(STATUS_METHOD), notes=(settled_text(method),))
            return payload

    answer = client.call(ep.url(method.rest), ep.payload(params), confirm)
    messages = answer.notes + ((answer.problem,) if answer.kind is not Kind.OK else ())
    status = _KIND_STATUS[answer.kind]
    if method.confirm_status and answer.kind is Kind.OK and not answer.notes and not answer.accepted:
        answer, status, messages = _judge_one(call, answer, status, messages)
    data = answer.adv() if call.settings.adv_response else answer.body
    return Outcome(status, data, messages)


def _judge_one(
    call: Call, answer: Answer, status: ExitStatus, messages: tuple[str, ...]
) -> tuple[Answer, ExitStatus, tuple[str, ...]]:
    """A change the portal answered with a result, judged by its record: not made (another STATUS, or a close
    of a day closed before it, which a portal may answer with 200 and the old record) is exit 3, with the
    portal's answer and an error beside it; a close nothing dates is exit 0 with a note."""
    method, body = call.method, answer.body
    clock = body.get("time") if isinstance(body.get("time"), dict) else None  # date_start and date_finish
    verdict, why = shown(method, body.get("result"), call.rest_params.get("TIME"), clock)
    if verdict is Shown.MADE:
        return answer, status, messages
    if verdict is Shown.UNSURE:
        return answer, status, (*messages, f"{why}: it was {method.words[2]} by this call, or before it")
    code = "UNEXPECTED_STATUS" if verdict is Shown.OTHER else "ALREADY_CLOSED"
    hint = "; with --if-needed such a day is skipped" if verdict is Shown.ALREADY else ""
    body = {**body, "error": code, "error_description": why}
    return answer.replace(body=body), ExitStatus.API_ERROR, (*messages, f"{code}: {why}{hint}")


def preview(call: Call) -> Outcome:
    """--test: the requests that would be sent, secrets masked; nothing is sent.
    For --userid all and --if-needed: the first reads (what follows depends on their answers)."""
    from oint_py.run import sweep

    ep = call.endpoint
    if call.all_users:
        requests = [{"method": "POST", "url": ep.url(sweep.USER_METHOD), "body": ep.payload(sweep.ACTIVE)}]
    elif call.if_needed and not sweep.acts_first(call):
        requests = [
            {"method": "POST", "url": ep.url("batch"), "body": ep.payload(batch.request(cmd))}
            for cmd in batch.chunks(batch.lines(STATUS_METHOD, call.user_ids or [""], {}))
        ]
    elif call.many or call.if_needed:  # the if-needed close without --time: closes first
        requests = [
            {"method": "POST", "url": ep.url("batch"), "body": ep.payload(batch.request(cmd))}
            for cmd in batch.commands(call.method.rest, call.user_ids or [""], call.rest_params)
        ]
    else:
        body = {"USER_ID": call.user_ids[0], **call.rest_params} if call.user_ids else call.rest_params
        requests = [{"method": "POST", "url": ep.url(call.method.rest), "body": ep.payload(body)}]
    s = call.settings
    shown = {
        "requests": requests,
        **(
            {
                "then": "the requests that follow depend on the answers: the other pages of user.get (all), "
                "timeman.status in batches of 50 (--if-needed; a close without --time: of the users "
                "it was refused for), and the changes it decides on"
            }
            if call.all_users or call.if_needed
            else {}
        ),
        "headers": {"Content-Type": "application/json; charset=utf-8"},
        "proxy": s.proxy,
        "timeout": s.timeout,
        "retries": s.retries,
        "max_answer": s.max_answer,
        "tls_verify": (
            tls.describe(s.insecure, s.ca_bundle) if tls.needed(ep.base, s.proxy) else "not used (plain http)"
        ),
    }
    return Outcome(ExitStatus.OK, call.redactor.data(shown))
