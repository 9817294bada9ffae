"""Whether a call that may have reached the portal was applied, and the REST
call built on that: one attempt (transport.py), the retry policy (retry.py),
and, for a method that is not idempotent (open, pause, close), a status check
before anything is re-sent.

After a failure that may have reached the portal, one timeman.status check per
user decides: users already in the target state are settled, users whose
status cannot be read are reported as OUTCOME_UNKNOWN and never sent again,
and only the rest is re-sent, unless the portal may still be running the call
(we stopped waiting, a gateway timed out, a 303 said it was made): then
nothing is. A user is thus changed at most once.

Per-user commands go in batches of 50. Each user ends as an entry:
{"result": ...} (with a "note" when a status check settled it), or
{"error": CODE, "error_description": ...}.

A change the portal answered is judged by the record it returns, never by the
HTTP status or an error's text (shown()): a portal answers a close of a day
closed long ago with 200 and the old record, or with a refusal of its own.
"""

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from oint_py import bounds
from oint_py.files.signals import NotReached, stopped
from oint_py.methods import STATUS_METHOD, Method
from oint_py.model import Call
from oint_py.net.transport import Client, Failure, Reply, Trouble
from oint_py.outcome import ExitStatus, OutcomeUnknown, RequestFailure, Unreachable, hint
from oint_py.rest import batch
from oint_py.rest.answer import Answer, Kind, classify
from oint_py.rest.retry import Step, verdict

# confirm(payload): after a failure that may have reached the portal, the Answer that
# ends the call (the status shows it applied), or the payload of what was not applied;
# raises OutcomeUnknown when nobody can tell
Payload = dict[str, Any]  # a request's JSON body
Entry = dict[str, Any]  # one user's end: {"result": ...} or {"error": CODE, "error_description": ...}
Confirm = Callable[[Payload], "Answer | Payload"]

if TYPE_CHECKING:
    from typing import Protocol

    class Caller(Protocol):
        """What the run sends its calls through: a RestClient, or an auth file's Renewing around one."""

        @property
        def moved(self) -> str | None: ...

        @property
        def waited(self) -> list[str]: ...

        def is_stopped(self) -> bool: ...

        def call(
            self, url: str, payload: Payload, confirm: Confirm | None = None, retries: int | None = None
        ) -> Answer: ...

        def close(self) -> None: ...


class RestClient:
    """A portal's REST calls: attempts through `client`, retried by the policy,
    settled by status where they may have been applied."""

    def __init__(self, client: Client):
        self.client = client
        self.moved: str | None = None  # the new origin a webhook's portal moved to, once seen
        self.operating_reset_at: dict[str, float] = {}  # per method URL: the last time.operating_reset_at seen
        self.waited: list[str] = []  # the operating-limit waits, for stderr once the run is done (said once)

    def close(self) -> None:
        self.client.close()

    def is_stopped(self) -> bool:
        """Whether the run was stopped (a signal): after it no change is started, nor a token renewed."""
        return stopped(getattr(self.client, "stop", None))

    def call(self, url: str, payload: Payload, confirm: Confirm | None = None, retries: int | None = None) -> Answer:
        """POST `payload` to `url`; re-send on 5xx, throttling and connection errors
        as retry.verdict says. `confirm` is given for calls that are not
        idempotent; `retries` overrides the settings' number. Raises
        RequestFailure when no answer came, OutcomeUnknown when the call may
        have been applied and nobody can tell."""
        retries = self.client.settings.retries if retries is None else retries
        if confirm is not None and self.is_stopped():  # a change: none is started after a stop
            raise NotReached("not sent: the run was stopped before it")
        attempt = 0
        while True:
            sent = self.client.attempt(url, payload)
            if (
                isinstance(sent, Failure)
                and sent.trouble is Trouble.STOPPED
                and (confirm is None or not sent.maybe_applied)  # a read, or nothing sent: known not applied
            ):
                raise NotReached(sent.message)
            result = self._read(sent) if isinstance(sent, Reply) else sent
            ruling = verdict(result, attempt, retries)
            if ruling.throttled:
                self.client.bucket.fill()
            problem = result.message if isinstance(result, Failure) else result.problem
            if ruling.settle and confirm is not None:
                settled = _settle(confirm, payload, problem, ruling.in_flight)
                if isinstance(settled, Answer):
                    return settled
                payload = settled
            if ruling.step is Step.ANSWER and isinstance(result, Answer):  # verdict answers an Answer only
                return result
            if ruling.step is Step.GIVE_UP:
                if isinstance(result, Failure):
                    gone = result.trouble in UNREACHABLE
                    raise (Unreachable if gone else RequestFailure)(f"{problem}{ruling.why}")
                return result.replace(kind=Kind.FAILED, problem=f"{problem or f'HTTP {result.code}'}{ruling.why}")
            attempt += 1
            if isinstance(result, Answer) and result.operating_limited and not self.waited:
                self.waited.append(
                    f"the portal's operating time limit for {url.rsplit('/', 1)[-1]} was reached: "
                    f"waited {ruling.wait:.0f} s for it to reset (time.operating_reset_at)"
                )
            self.client.log(f"  retry {attempt}/{retries} in {ruling.wait:.2f} s: {problem}")
            if not self.client.pause(ruling.wait):  # a stop: what waited to be sent again was not applied
                raise NotReached(f"{problem}; the run was stopped while it waited to send again: not sent again")

    def _read(self, reply: Reply) -> Answer:
        """A reply as a Bitrix24 answer."""
        self.moved = reply.moved or self.moved
        body, kind, problem = classify(
            reply.code, reply.content, reply.headers.get("content-type", ""), self.client.mask
        )
        answer = Answer(reply.code, reply.headers, body, reply.url, kind, problem, accepted=reply.accepted)
        seen = answer.time_block_reset()
        if seen is not None and (reply.url in self.operating_reset_at or len(self.operating_reset_at) < 64):
            self.operating_reset_at[reply.url] = seen
        return answer.replace(operating_reset_at=seen or self.operating_reset_at.get(reply.url))


def _settle(confirm: Confirm, payload: Payload, why: str, in_flight: bool) -> "Answer | Payload":
    """Ask `confirm` about a call that may have been applied: the Answer when it
    has, else the payload of what has not. Raises OutcomeUnknown when nobody can
    tell, and when the portal may still be running what the status does not show."""
    try:
        settled = confirm(payload)
    except OutcomeUnknown as exc:
        raise OutcomeUnknown(f"{why}; {exc.message}") from None
    if isinstance(settled, Answer) or not in_flight:
        return settled
    raise OutcomeUnknown(
        f"{why}; the status does not show it applied, but the portal may still be running "
        "it: it was not sent again. Check with GetTimekeepingStatus before repeating it"
    )


TRANSPORT_ERRORS = ("REQUEST_FAILED", "OUTCOME_UNKNOWN")
UNANSWERED = ("NO_ANSWER", "BAD_ANSWER")  # a batch that ran but gave a user no readable answer: maybe applied
# troubles that say no portal is there: a run over many users stops after a few batches of them
UNREACHABLE = {Trouble.RESOLVE, Trouble.CONNECT, Trouble.CONNECT_TIMEOUT, Trouble.TIMEOUT}


class Applied(Enum):
    """What a status read after an ambiguous failure says of the call."""

    YES = "settled"  # the status shows it applied: it is not sent again
    NO = "resend"  # the status proves it was not: what was not applied may be re-sent
    UNKNOWN = "unknown"  # no status, or one that cannot tell: never sent again


NOT_REACHED = "NOT_REACHED"  # the entry of a call a stop kept from being sent (sweep.py: "not reached")


def failed_entry(exc: RequestFailure, redact: Callable[[str], str]) -> Entry:
    """The entry of a call that got no usable answer."""
    code = (
        "OUTCOME_UNKNOWN"
        if isinstance(exc, OutcomeUnknown)
        else NOT_REACHED
        if isinstance(exc, NotReached)
        else "REQUEST_FAILED"
    )
    return {"error": code, "error_description": redact(exc.message)}


def answer_entry(answer: Answer, redact: Callable[[str], str]) -> Entry:
    """The entry of an answer that is not a result: the portal's error as it sent it,
    or REQUEST_FAILED with what was wrong with the answer."""
    if answer.kind is Kind.API_ERROR:
        error: Entry = answer.body  # classify: an object with "error"
        return error
    return {"error": "REQUEST_FAILED", "error_description": redact(answer.problem)}


def send_batch(
    client: "Caller", call: Call, method: Method, cmd: dict[str, str], clocks: dict[str, Any] | None = None
) -> tuple[dict[str, Entry], bool]:
    """One batch request of at most BATCH_SIZE commands ({key(uid): command});
    ({uid: entry}, whether the portal could not be reached at all). `clocks`, when given, gets
    {uid: the portal's clock as it ran that user's command} (result_time[key]: date_start, date_finish)."""
    ep = call.endpoint
    results: dict[str, Entry] = {}
    confirm = None
    if method.confirm_status:

        def confirm(payload: Payload) -> "Answer | Payload":
            pending = {batch.uid(k): v for k, v in payload["cmd"].items()}
            remaining = {}
            for uid, record in statuses(client, call, list(pending), batched=True).items():
                applied = judge(method, record)
                if applied is Applied.UNKNOWN:
                    results[uid] = {"error": "OUTCOME_UNKNOWN", "error_description": unknown_text(method, record)}
                elif applied is Applied.YES:
                    results[uid] = {"result": record, "note": settled_text(method)}
                else:
                    remaining[batch.key(uid)] = pending[uid]
            if not remaining:
                return Answer(200, {}, batch.EMPTY, ep.url("batch"))
            return {**payload, "cmd": remaining}

    unreachable = _collect(client, call, cmd, confirm, results, clocks)
    return results, unreachable


def _collect(
    client: "Caller",
    call: Call,
    cmd: dict[str, str],
    confirm: Confirm | None,
    results: dict[str, Entry],
    clocks: dict[str, Any] | None = None,
) -> bool:
    """One batch request; each of its users' entries into `results` (kept where a status check settled it).
    True when the portal could not be reached at all."""
    ep = call.endpoint
    try:
        answer = client.call(ep.url("batch"), ep.payload(batch.request(cmd)), confirm)
    except RequestFailure as exc:
        for k in cmd:
            results.setdefault(batch.uid(k), failed_entry(exc, call.redactor))
        return isinstance(exc, Unreachable)
    if answer.kind is not Kind.OK:
        error = answer_entry(answer, call.redactor)
        for k in cmd:
            results.setdefault(batch.uid(k), error)
        return False
    done, errors = batch.split(answer.body)
    if clocks is not None:
        started = batch.as_map(batch.as_map(batch.as_map(answer.body).get("result")).get("result_time"))
        clocks.update({batch.uid(k): batch.as_map(started.get(k)) for k in cmd})
    for k in cmd:
        if batch.uid(k) in results:  # settled by a status check during a retry
            continue
        if k in errors:
            results[batch.uid(k)] = error_entry(errors[k])
        elif k in done:
            results[batch.uid(k)] = {"result": done[k]}
        else:
            results[batch.uid(k)] = {
                "error": "NO_ANSWER",
                "error_description": "the batch answered nothing for this user",
            }
    return False


def error_entry(value: object) -> Entry:
    """One user's entry of a batch's result_error, as {"error", "error_description"} whatever the portal sent."""
    if isinstance(value, dict) and "error" in value:
        return value
    return {
        "error": "BAD_ANSWER",
        "error_description": f"the batch answered this user's error as {json.dumps(value)[:200]}",
    }


def statuses(client: "Caller", call: Call, uids: list[str], *, batched: bool) -> dict[str, Entry | None]:
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
    if answer.kind is not Kind.OK:
        return dict.fromkeys(uids)
    if batched:
        done, _ = batch.split(answer.body)
        found = {uid: done.get(batch.key(uid)) for uid in uids}
    else:
        found = {uids[0]: answer.body.get("result")}
    return {uid: record if isinstance(record, dict) and "STATUS" in record else None for uid, record in found.items()}


def failure(uid: str, entry: Entry) -> tuple[ExitStatus, str]:
    """An error entry's exit status (4 when no answer came, 3 when the portal
    refused) and its stderr line `user N: CODE: description`."""
    code = entry.get("error")
    status = ExitStatus.REQUEST_FAILED if code in TRANSPORT_ERRORS else ExitStatus.API_ERROR
    desc = entry.get("error_description") or ""
    return status, about(
        uid, (": ".join(str(p) for p in (code, desc) if p not in (None, "")) or "an error with no code") + hint(code)
    )


def about(uid: str, text: str) -> str:
    """A stderr line about one user: `user N: text` ("" is the caller's own user: no prefix)."""
    return f"user {uid}: {text}" if uid else text


def judge(method: Method, record: dict[str, Any] | None) -> Applied:
    """The one confirm-by-status rule, for a call that may have reached the portal."""
    if record is None:
        return Applied.UNKNOWN
    if record.get("STATUS") == method.confirm_status:
        return Applied.YES
    return Applied.NO if method.resend_unapplied else Applied.UNKNOWN


class Shown(Enum):
    """What the record a change's answer returned shows of it."""

    MADE = "made"  # the change, made by this call
    ALREADY = "already"  # a close made before this call: an older TIME_FINISH, or no day at all
    UNSURE = "unsure"  # CLOSED, but the answer gives no clock to tell when: by this call, or before it
    OTHER = "other"  # not the STATUS asked for: the change was not made


_ATOM = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:([+-]\d{2}):?(\d{2})|Z)$")


def atom(value: object) -> str | None:
    """A portal's date as YYYY-MM-DDTHH:MM:SS+HH:MM: `+0300` and `Z` are read too; None when it is not one."""
    m = _ATOM.match(value) if isinstance(value, str) else None
    if m is None:
        return None
    text = f"{m[1]}{m[2]}:{m[3]}" if m[2] else f"{m[1]}+00:00"
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return None
    return text


def _moment(value: object) -> datetime | None:
    text = atom(value)
    return None if text is None else datetime.fromisoformat(text)


def shown(method: Method, record: object, sent: str | None, clock: object) -> tuple[Shown, str]:
    """What `record`, the result of `method` sent with TIME `sent` (None: none) and run at the portal's
    `clock` (its answer's time block, `date_start` and `date_finish`; a bare date_start will do), shows; and
    why, in words. A close is this call's only when its TIME_FINISH is the TIME sent, or without one falls
    between the command's date_start and date_finish, give or take CLOSE_SLACK: an earlier one was closed
    before it; a later one (a close sent before with a TIME still to come) was not made by it either."""
    fields = record if isinstance(record, dict) else {}
    status = fields.get("STATUS")
    if status != method.confirm_status:
        return Shown.OTHER, (
            f"the portal answered STATUS={status} after {method.rest}, not {method.confirm_status}: "
            f"the day is not {method.words[2]} as asked"
        )
    if not method.finish_dated:
        return Shown.MADE, ""
    raw = fields.get("TIME_FINISH")
    if raw in (None, ""):
        return Shown.ALREADY, f"{method.rest} answered STATUS={status} with no TIME_FINISH: no day was closed by it"
    finish = _moment(raw)
    if finish is None:
        return Shown.UNSURE, f"{method.rest} answered a TIME_FINISH that is no date ({str(raw)[:40]!r})"
    if sent is not None:
        if finish == _moment(sent):
            return Shown.MADE, ""
        return Shown.ALREADY, f"the day was CLOSED at {raw} before this close, which sent {sent}; nothing was changed"
    block = clock if isinstance(clock, dict) else {"date_start": clock}
    now = _moment(block.get("date_start"))
    if now is None:
        return (
            Shown.UNSURE,
            f"the portal's answer gives no clock (date_start) to tell whether its close at {raw} is this one",
        )
    slack = timedelta(seconds=bounds.CLOSE_SLACK)
    end = _moment(block.get("date_finish")) or now
    if now - slack <= finish <= max(end, now) + slack:
        return Shown.MADE, ""
    if finish > now:
        return Shown.ALREADY, (
            f"the day was CLOSED at {raw}, a time this close did not set (the portal's clock said "
            f"{block.get('date_start')}): an earlier close with a later TIME; nothing was changed"
        )
    return Shown.ALREADY, (
        f"the day was CLOSED at {raw}, before this close (the portal's clock said {block.get('date_start')}); "
        "nothing was changed"
    )


def settled_text(method: Method) -> str:
    return (
        f"{method.rest} may have reached the portal before the failure; {STATUS_METHOD} shows "
        f"STATUS={method.confirm_status}, so it was not sent again"
    )


def unknown_text(method: Method, record: dict[str, Any] | None = None) -> str:
    why = (
        f"{STATUS_METHOD} shows STATUS={record.get('STATUS')}, which it may itself have caused"
        if record is not None
        else f"{STATUS_METHOD} could not be read to tell"
    )
    return (
        f"{method.rest} may have reached the portal before the failure, and {why}: it was not sent again. "
        "Check with GetTimekeepingStatus before repeating it"
    )
