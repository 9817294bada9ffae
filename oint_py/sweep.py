"""Every active user, and only where it changes something: `--userid all`,
`--if-needed` and `--plan`.

- active_users(): `user.get` filtered on ACTIVE = true. The first page is a
  plain call (its answer tells `total`); the other pages are batch commands
  `user.get?FILTER[ACTIVE]=true&start=50`, 50 pages a request. A listing
  that fails anywhere ends the run before anything is changed.
- run(): each user's timeman.status, read in batches of 50; a decision per
  user (what --if-needed calls for; for the close of an EXPIRED day, a TIME on
  the day's own open date and a REPORT); the changes sent per user through
  confirm.send, so an ambiguous failure is settled by status and nobody is
  changed twice. One entry per user and a summary line. With --plan the
  decisions are the answer and nothing is sent.

Never prints: `progress(what, done, total)` is told how far it got.
"""

import re
from dataclasses import dataclass, field, replace
from typing import Callable

from . import batch, bounds
from .answer import Answer, Kind
from .confirm import RestClient, about, answer_entry, failure, send
from .methods import BY_KEY, DEFAULT_REPORT, STATUS_METHOD
from .model import Call
from .outcome import ExitStatus, Outcome, error_words

Progress = Callable[[str, int, int], None]

USER_METHOD = "user.get"
ACTIVE = {"FILTER": {"ACTIVE": True}}  # the first page's JSON body
_ACTIVE_QUERY = {"FILTER[ACTIVE]": "true"}  # the same filter in a batch command's query
PAGE = 50  # users a page of user.get
_ATOM = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
_STATUS = BY_KEY["gettimekeepingstatus"]

# what each method is called for under --if-needed (timeman.open: wherever the day is not OPENED)
_NEEDED = {"timeman.close": ("OPENED", "PAUSED", "EXPIRED"), "timeman.pause": ("OPENED",)}
# each method's action as a plan says it, as the progress bar says it, and once done
WORDS = {"timeman.close": ("close", "closing", "closed"), "timeman.open": ("open", "opening", "opened"),
         "timeman.pause": ("pause", "pausing", "paused")}


# -- the listing ---------------------------------------------------------------
def active_users(call: Call, client: RestClient, progress: Progress | None = None) -> tuple[list[str], Outcome | None]:
    """(the active users' IDs, None), or ([], the Outcome that ends the run)."""
    ep = call.endpoint
    answer = client.call(ep.url(USER_METHOD), ep.payload(ACTIVE))
    if answer.kind is not Kind.OK:
        return [], _not_listed(call, answer)
    total, ids = answer.body.get("total"), _ids(answer.body.get("result"))
    if ids is None or not _count(total):
        return [], _unusable("its first page is not a Bitrix24 list of users")
    if total > bounds.MAX_USERS:
        return [], _unusable(f"it counts {total:,} active users, more than the {bounds.MAX_USERS:,} "
                             "oint-py lists in one run")
    if progress:
        progress("listing users", len(ids), total)
    # the other pages by `total`, not by following `next` one page at a time: 50 of them a request
    pages = {str(at): batch.line(USER_METHOD, {**_ACTIVE_QUERY, "start": at}) for at in range(PAGE, total, PAGE)}
    for cmd in batch.chunks(pages):
        answer = client.call(ep.url("batch"), ep.payload(batch.request(cmd)))
        if answer.kind is not Kind.OK:
            return [], _not_listed(call, answer)
        done, errors = batch.split(answer.body)
        for k in cmd:
            if k in errors:
                error = errors[k] if isinstance(errors[k], dict) else {}
                return [], _not_listed(call, Answer(200, {}, error, "", Kind.API_ERROR,
                                                    error_words(error.get("error"), error.get("error_description"))))
            page = _ids(done.get(k))
            if page is None:
                return [], _unusable(f"its page from start={batch.uid(k)} is not a Bitrix24 list of users")
            ids += page
        if progress:
            progress("listing users", min(len(ids), total), total)
    return list(dict.fromkeys(ids)), None


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _ids(page) -> list[str] | None:
    """The IDs of a page of users; None when it is not one."""
    if not isinstance(page, list) or len(page) > PAGE:
        return None
    ids = [str(user.get("ID")) if isinstance(user, dict) else "" for user in page]
    if not all(i.isascii() and i.isdigit() and int(i) > 0 for i in ids):
        return None
    return [str(int(i)) for i in ids]  # "07" is user 7: one user, changed once


def _not_listed(call: Call, answer: Answer) -> Outcome:
    holder = "the app's token" if call.endpoint.token else "the webhook"
    if answer.error == "insufficient_scope":
        return Outcome(ExitStatus.API_ERROR, answer.body, (
            f"{USER_METHOD}: insufficient_scope: {holder} lacks the user scope (user, or user_basic), which "
            "--userid all needs to list the portal's users; add the scope or give the user IDs. Nothing was changed",))
    status = ExitStatus.API_ERROR if answer.kind is Kind.API_ERROR else ExitStatus.REQUEST_FAILED
    data = answer_entry(answer, call.redactor)
    return Outcome(status, data, (f"{USER_METHOD}: {answer.problem}; the users could not be listed, "
                                  "nothing was changed",))


def _unusable(why: str) -> Outcome:
    """An answer that cannot be a listing of the portal's users."""
    text = f"{USER_METHOD}: {why}; nothing was changed"
    return Outcome(ExitStatus.REQUEST_FAILED, {"error": "REQUEST_FAILED", "error_description": text}, (text,))


# -- deciding ------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """What is to happen to one user: act (send `params`), skip (why) or fail (its status could not be read)."""

    kind: str  # act | skip | fail
    before: str | None  # STATUS read first
    params: dict = field(default_factory=dict)  # REST fields besides USER_ID
    reason: str = ""  # for skip
    error: dict | None = None  # for fail
    warn: bool = False  # a skip that leaves a day open: said on stderr too


def decide(call: Call, entry: dict) -> Step:
    """One user's Step, from the timeman.status entry read for them."""
    if "error" in entry:
        return Step("fail", None, error=entry)
    record = entry.get("result")
    status = record.get("STATUS") if isinstance(record, dict) else None
    if not isinstance(status, str):
        return Step("fail", None, error={"error": "NO_STATUS", "error_description": f"{STATUS_METHOD} gave no STATUS"})
    rest, params = call.method.rest, call.rest_params
    if not call.if_needed:
        return Step("act", status, params)
    if rest == "timeman.open":
        if status == "OPENED":
            return Step("skip", status, reason="the day is already open")
        return Step("act", status, params)
    if status not in _NEEDED[rest]:
        reason = f"the day is {status}, not open" if rest == "timeman.close" else (
            f"the day is {status}; only an open day is paused"
            + (" (pausing a closed day would re-open it)" if status == "CLOSED" else ""))
        return Step("skip", status, reason=reason)
    if rest == "timeman.pause":
        return Step("act", status, params)
    report = params.get("REPORT") or DEFAULT_REPORT
    if status != "EXPIRED":
        return Step("act", status, {**params, "REPORT": report} if "TIME" in params else params)
    return _expired(record, params.get("TIME"), report)


def _expired(record: dict, given: str | None, report: str) -> Step:
    """The close of a day left open before today: the portal wants a TIME on the day's own
    open date and a REPORT. --time's clock goes on that date in the offset of the day's
    TIME_START (the portal compares the dates in the day's zone); without --time, the
    portal's TIME_FINISH_DEFAULT."""
    start, default = record.get("TIME_START"), record.get("TIME_FINISH_DEFAULT")
    if not (isinstance(start, str) and _ATOM.fullmatch(start)):
        return Step("skip", "EXPIRED", reason=f"the day expired, and its TIME_START {start!r} is not a date to "
                                               "close it on", warn=True)
    if given:
        moment = f"{start[:10]}T{given[11:19]}{start[19:]}"
    elif isinstance(default, str) and _ATOM.fullmatch(default):
        moment = default
    else:
        return Step("skip", "EXPIRED", reason=f"the day expired on {start[:10]} and the portal states no "
                                               "TIME_FINISH_DEFAULT; give --time HH:MM to close it at that time "
                                               "on its own date", warn=True)
    return Step("act", "EXPIRED", {"TIME": moment, "REPORT": report})


# -- running -------------------------------------------------------------------
def run(call: Call, client: RestClient, progress: Progress | None = None) -> Outcome:
    """Read the statuses, decide per user, then (unless --plan) make the changes."""
    uids = list(call.user_ids) if call.user_ids or call.many else [""]  # "": the webhook's own user
    read = send(client, call, _STATUS, batch.lines(STATUS_METHOD, uids, {}),
                _tally(progress, "reading statuses", len(uids)))
    steps = {uid: decide(call, read[uid]) for uid in uids}
    rest = call.method.rest
    planned, doing, done = WORDS[rest]
    if call.plan:
        entries = {uid: _entry(step, planned, "skip") for uid, step in steps.items()}
        if not call.if_needed:  # every user is called: say where the status would not have it
            for uid, entry in entries.items():
                would = decide(replace(call, if_needed=True), read[uid]) if steps[uid].kind == "act" else None
                if would is not None and would.kind == "skip":
                    entry["unchecked"] = f"{would.reason}; without --if-needed it is called anyway"
        return _report(call, entries, steps)
    todo = {uid: batch.user_line(rest, uid, s.params) for uid, s in steps.items() if s.kind == "act"}
    results = send(client, call, call.method, todo, _tally(progress, doing, len(todo)))
    return _report(call, {uid: _entry(step, done, "skipped", results.get(uid)) for uid, step in steps.items()}, steps)


def _tally(progress: Progress | None, what: str, total: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    done = 0
    progress(what, 0, total)

    def step(n: int) -> None:
        nonlocal done
        done += n
        progress(what, done, total)

    return step


def _entry(step: Step, acted: str, skipped: str, result: dict | None = None) -> dict:
    """One user's part of the answer. `result`: the portal's entry for the change (None in a plan)."""
    if step.kind == "skip":
        return {"action": skipped, "status_before": step.before, "reason": step.reason}
    if step.kind == "fail":
        return {"action": "failed", "status_before": None, **step.error}
    entry = {"action": acted, "status_before": step.before, "time": step.params.get("TIME"),
             **({"report": step.params["REPORT"]} if "REPORT" in step.params else {})}
    entry = {**entry, **(result or {})}
    if result is not None and "error" in result:
        entry["action"] = "failed"  # after the portal's fields: an entry of its own cannot say otherwise
    return entry


def _report(call: Call, entries: dict[str, dict], steps: dict[str, Step]) -> Outcome:
    """The per-user answer, the stderr lines and the summary; the exit status of the worst failure."""
    status, messages, acted, skipped, failed = ExitStatus.OK, [], 0, 0, 0
    planned, _, done = WORDS[call.method.rest]
    for uid, entry in entries.items():
        if entry["action"] == "failed":
            failed += 1
            worse, line = failure(uid, entry)
            status = max(status, worse)
            messages.append(line)
        elif steps[uid].kind == "skip":
            skipped += 1
            if steps[uid].warn:
                messages.append(about(uid, f"skipped: {entry['reason']}"))
        else:
            acted += 1
            if "note" in entry:
                messages.append(about(uid, entry["note"]))
    if call.plan:
        summary = f"plan: {acted} to {planned}, {skipped} to skip, {failed} failed; nothing was changed"
        if not call.if_needed:
            unchecked = sum(1 for entry in entries.values() if "unchecked" in entry)
            summary += (f"; without --if-needed the status is not checked: every user is called, "
                        f"{unchecked} of them on a day it does not change (add --if-needed to skip those)")
    else:
        summary = f"{acted} {done}, {skipped} skipped, {failed} failed"
    data = entries if call.many else next(iter(entries.values()))
    return Outcome(ExitStatus(status), data, tuple(messages), summary, per_user=call.many)
