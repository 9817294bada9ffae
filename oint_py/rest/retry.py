"""The retry policy, as a pure function: from one attempt's result and its number
to a Verdict. It sends nothing, reads no status and sleeps not: rest.client.RestClient.call
does what a verdict says.

- An answer of the portal (below 500, not throttled) is the answer. Two of
  them say the call may have been applied though it is not a plain answer:
  one that is not Bitrix24's (an HTML page with 200), and an error after a 303
  that said the call was made; those are settled by status first.
- 429 and QUERY_LIMIT_EXCEEDED (and the like) were refused before anything
  was done: re-sent, never settled, honouring Retry-After.
- 5xx may have been applied: settled by status, then re-sent what was not
  applied; a gateway timeout (504, 524, 598, 599) may still be running, so
  nothing is re-sent after it.
- A failure with no answer: re-sent where another attempt may help (a name
  that does not resolve: once at most); settled where the request may have
  left.
- Waits grow: BACKOFF_BASE doubling per attempt up to BACKOFF_CAP, with
  jitter in [50%, 100%]; a Retry-After longer than RETRY_AFTER_CAP ends the
  retries instead of blocking a cron job.
- 429 OPERATION_TIME_LIMIT (the method's operating time is used up): the wait
  is until the portal's operating_reset_at, when known, under the same cap;
  past it the call gives up with the time to retry.
"""

import random
import time
from enum import Enum

from oint_py import bounds
from oint_py.net.transport import Failure, Trouble
from oint_py.record import Record
from oint_py.rest.answer import GATEWAY_TIMEOUTS, Answer, Kind

RESOLVE_RETRIES = 1  # a host name that did not resolve is tried once more, then reported


class Step(Enum):
    ANSWER = "answer"  # the answer is final: return it
    RETRY = "retry"  # wait `wait` seconds, then send (what is not applied) again
    GIVE_UP = "give up"  # no more attempts: the last result, with `why`


class Verdict(Record):
    step: Step
    settle: bool = False  # the call may have been applied: ask the status before going on
    in_flight: bool = False  # ... and may still be running: whatever the status says, never re-send
    wait: float = 0.0
    why: str = ""  # for GIVE_UP: what to add to the last problem
    throttled: bool = False  # the portal said its limit is reached


def backoff(attempt: int, jitter: float | None = None) -> float:
    """The wait before attempt `attempt + 1`: doubling, capped, with jitter in [0.5, 1]."""
    factor = random.uniform(0.5, 1.0) if jitter is None else jitter
    growth: int = 2**attempt  # attempt >= 0: an int
    return min(bounds.BACKOFF_CAP, bounds.BACKOFF_BASE * growth) * factor


def retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils  # only for the rare HTTP-date form

    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def verdict(result: "Answer | Failure", attempt: int, retries: int, jitter: float | None = None) -> Verdict:
    """What follows attempt number `attempt` (0 for the first) of at most `retries` re-sends."""
    if isinstance(result, Failure):
        settle = result.maybe_applied
        if not result.retryable:
            return Verdict(Step.GIVE_UP, settle, result.in_flight)
        allowed = min(retries, RESOLVE_RETRIES) if result.trouble is Trouble.RESOLVE else retries
        return _again(attempt, allowed, settle, result.in_flight, None, jitter)
    throttled = result.throttled
    made_then_failed = result.accepted and result.kind is not Kind.OK  # a 303 said it was made; then no answer
    if result.code < 500 and not throttled and not made_then_failed:
        return Verdict(Step.ANSWER, settle=result.kind is Kind.FAILED)
    settle = result.accepted or not throttled
    in_flight = result.accepted or result.code in GATEWAY_TIMEOUTS
    asked = retry_after(result.headers)
    if result.operating_limited and result.operating_reset_at is not None:
        asked = max(asked or 0.0, result.operating_reset_at - time.time())
        if asked > bounds.RETRY_AFTER_CAP:
            at = time.strftime("%H:%M:%S UTC", time.gmtime(result.operating_reset_at))
            why = f" (the method's operating time limit on the portal resets at {at}: retry then)"
            return Verdict(Step.GIVE_UP, settle, in_flight, why=why, throttled=True)
    ruling = _again(attempt, retries, settle, in_flight, asked, jitter, throttled)
    if result.operating_limited and ruling.step is Step.GIVE_UP and result.operating_reset_at is None:
        why = " (the method's operating time limit on the portal: it lets calls through within 10 minutes)"
        return ruling.replace(why=ruling.why + why)
    return ruling


def _again(
    attempt: int,
    retries: int,
    settle: bool,
    in_flight: bool,
    asked: float | None,
    jitter: float | None,
    throttled: bool = False,
) -> Verdict:
    wait = backoff(attempt, jitter)
    if asked is not None:
        wait = max(wait, asked)
    if attempt >= retries or (asked or 0) > bounds.RETRY_AFTER_CAP:
        why = "" if attempt >= retries else f" (the portal asked to wait {asked:g} s)"
        return Verdict(
            Step.GIVE_UP,
            settle,
            in_flight,
            why=f" [{attempt + 1} attempt{'s' if attempt else ''}]{why}",
            throttled=throttled,
        )
    return Verdict(Step.RETRY, settle, in_flight, wait, throttled=throttled)
