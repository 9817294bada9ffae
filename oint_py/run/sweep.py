"""Every active user, and only where it changes something: `--userid all`,
`--if-needed` and `--plan`; and every run over many users, batch by batch.

- active_users(): `user.get` filtered on ACTIVE = true and ordered by ID. The
  first page is a plain call (its answer tells `total`); the other pages are
  batch commands `user.get?FILTER[ACTIVE]=true&start=50`, 50 pages a request.
  The pages must add up: the same `total` on every page, a full page before
  each `next`, IDs rising without a repeat, as many users as `total`. When
  they do not (the list shifted while it was read, or the portal pages badly),
  the users are listed once more by ID (`FILTER[>ID]` = the last one seen,
  `start=-1`), which no shift can defeat. A listing that fails anywhere, or
  that cannot be right even then, ends the run before anything is changed.
- run(): per batch of 50 users, each user's status read (with
  --if-needed or --plan), a decision per user (for the close of an EXPIRED
  day, a TIME on the day's own open date and a REPORT), the changes sent
  through rest.client.send_batch (an ambiguous failure is settled by status, and
  nobody is changed twice), and the record each answer returns judged
  (confirm.shown: the STATUS asked for, and for a close a TIME_FINISH that is
  this close's). A refusal is never read by its text: the user's status is
  read, and a change someone else made meanwhile is a skip. A method that
  acts first (Method.act_first: a close without --time) is sent to every user
  at once instead: a record showing the day closed before is a skip, and only
  the users whose answer shows no change (a refusal, another STATUS) are read
  and decided on, after the others. Each batch's entries go to `record`
  at once. A stop request (a signal) or a portal that cannot be reached for
  GONE_BATCHES batches in a row ends the loop; the users left are "not
  reached". With --plan nothing is sent.

Never prints: `progress(what, done, total)` is told how far it got.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from oint_py import bounds
from oint_py.files.signals import stopped
from oint_py.methods import BY_KEY, DEFAULT_REPORT, Method
from oint_py.model import Call
from oint_py.outcome import ExitStatus, OintError, Outcome, RequestFailure, error_words
from oint_py.rest import batch
from oint_py.rest.answer import Answer, Kind
from oint_py.rest.client import (
    NOT_REACHED,
    TRANSPORT_ERRORS,
    UNANSWERED,
    Entry,
    Payload,
    Shown,
    about,
    answer_entry,
    failure,
    send_batch,
    settled_text,
    shown,
    statuses,
)
from oint_py.rest.client import atom as _atom

if TYPE_CHECKING:
    from oint_py.files.signals import Stop
    from oint_py.rest.client import Caller

Progress = Callable[[str, int, int], None]
Record = Callable[[dict[str, Entry]], None]
Page = tuple[int, list[tuple[str, bool]], Any, Any]  # start, (ID, active) of its users, total, next: as answered

USER_METHOD = "user.get"
ACTIVE = {"FILTER": {"ACTIVE": True}, "sort": "ID", "order": "ASC"}  # the first page's JSON body
_PAGE_QUERY = {"FILTER[ACTIVE]": "true", "sort": "ID", "order": "ASC"}  # the same in a batch command's query
PAGE = 50  # users a page of user.get
GONE_BATCHES = 3  # batches in a row that reach no portal: it is gone, the rest is not reached


# -- the listing ---------------------------------------------------------------
@dataclass
class Listing:
    ids: list[str] = field(default_factory=list)  # active users, by ID
    inactive: list[str] = field(default_factory=list)  # listed, yet their own ACTIVE is false
    notes: tuple[str, ...] = ()  # what the listing had to do, for stderr


class _Wrong(Exception):
    """The listing cannot be right: why, in a sentence."""


def active_users(call: Call, client: "Caller", progress: Progress | None = None) -> tuple[Listing, Outcome | None]:
    """(the listing, None), or (an empty listing, the Outcome that ends the run)."""
    try:
        pages = _offset_pages(call, client, progress)
        if isinstance(pages, Outcome):
            return Listing(), pages
        why = _mismatch(pages)
        listing = _listing(record for _, page, _, _ in pages for record in page)
        if why:
            by_id = _by_id(call, client)
            if isinstance(by_id, Outcome):
                return Listing(), by_id
            listing = _listing(by_id)
            listing.notes = (f"{USER_METHOD}: {why}; the users were listed again by ID",)
    except _Wrong as exc:
        return Listing(), _unusable(str(exc))
    return listing, None


def _offset_pages(call: Call, client: "Caller", progress: Progress | None) -> list[Page] | Outcome:
    """[(start, records, total, next)], the first page's and then the others', 50 pages a batch request."""
    ep = call.endpoint
    answer = _ask(client, ep.url(USER_METHOD), ep.payload(ACTIVE))
    if answer.kind is not Kind.OK:
        return _not_listed(call, answer)
    total, first = answer.body.get("total"), _records(answer.body.get("result"), "its first page")
    if not _count(total):
        raise _Wrong("its first page is not a Bitrix24 list of users")
    if total > bounds.MAX_USERS:
        raise _Wrong(f"it counts {total:,} active users, more than the {bounds.MAX_USERS:,} oint-py lists in one run")
    pages: list[Page] = [(0, first, total, answer.body.get("next"))]
    if progress:
        progress("listing users", len(first), total)
    starts = {str(at): batch.line(USER_METHOD, {**_PAGE_QUERY, "start": at}) for at in range(PAGE, total, PAGE)}
    for cmd in batch.chunks(starts):
        answer = _ask(client, ep.url("batch"), ep.payload(batch.request(cmd)))
        if answer.kind is not Kind.OK:
            return _not_listed(call, answer)
        done, errors = batch.split(answer.body)
        totals, nexts = batch.paging(answer.body)
        for k in cmd:
            if k in errors:
                error = errors[k] if isinstance(errors[k], dict) else {}
                return _not_listed(
                    call,
                    Answer(
                        200,
                        {},
                        error,
                        "",
                        Kind.API_ERROR,
                        error_words(error.get("error"), error.get("error_description")),
                    ),
                )
            start = int(batch.uid(k))
            pages.append((start, _records(done.get(k), f"its page from start={start}"), totals.get(k), nexts.get(k)))
        if progress:
            progress("listing users", min(len(pages) * PAGE, total), total)
    return pages


def _mismatch(pages: list[Page]) -> str:
    """Why offset pages do not add up to one listing; "" when they do."""
    total, last = pages[0][2], 0
    for start, records, count, after in pages:
        if count != total:
            return f"its count changed while it was read ({total:,} at first, {count!r} at start={start})"
        expected = min(PAGE, total - start)
        if len(records) != expected:
            return f"its page from start={start} holds {len(records)} users, not {expected}"
        if after != (start + PAGE if start + PAGE < total else None):
            return f"its page from start={start} points on to next={after!r}"
        for uid, _ in records:
            if int(uid) <= last:
                return f"it lists user {uid} after user {last} (a repeat, or a list that moved)"
            last = int(uid)
    return ""


def _by_id(call: Call, client: "Caller") -> list[tuple[str, bool]] | Outcome:
    """Every active user's record by ID paging: each page those above the last ID seen. Sequential."""
    ep = call.endpoint
    found: list[tuple[str, bool]]
    found, last = [], 0
    while True:
        answer = _ask(
            client,
            ep.url(USER_METHOD),
            ep.payload({"FILTER": {"ACTIVE": True, ">ID": last}, "sort": "ID", "order": "ASC", "start": -1}),
        )
        if answer.kind is not Kind.OK:
            return _not_listed(call, answer)
        page = _records(answer.body.get("result"), f"its page of IDs above {last}")
        for uid, _ in page:
            if int(uid) <= last:
                raise _Wrong(f"listed by ID, it gives user {uid} after user {last}")
            last = int(uid)
        found += page
        if len(found) > bounds.MAX_USERS:
            raise _Wrong(f"it lists more than the {bounds.MAX_USERS:,} active users oint-py lists in one run")
        if len(page) < PAGE:
            return found


def _listing(records: Iterable[tuple[str, bool]]) -> Listing:
    listing = Listing()
    for uid, active in records:
        (listing.ids if active else listing.inactive).append(uid)
    return listing


def _ask(client: "Caller", url: str, payload: Payload) -> Answer:
    """A read of the listing; no answer at all (a dropped connection, retries spent) is a failed one,
    so that the run ends saying the users could not be listed and nothing was changed."""
    try:
        return client.call(url, payload)
    except RequestFailure as exc:
        return Answer(0, {}, None, url, Kind.FAILED, exc.message)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _records(page: object, what: str) -> list[tuple[str, bool]]:
    """[(ID, whether the record's own ACTIVE is true)] of a page of users; _Wrong when it is not one."""
    if not isinstance(page, list) or len(page) > PAGE:
        raise _Wrong(f"{what} is not a Bitrix24 list of users")
    records = []
    for user in page:
        uid = str(user.get("ID")) if isinstance(user, dict) else ""
        if not (uid.isascii() and uid.isdigit()):
            raise _Wrong(f"{what} is not a Bitrix24 list of users")
        if len(uid) > bounds.MAX_ID_DIGITS:  # before int(): a 5,000-digit "ID" is no user, and costs time
            raise _Wrong(f"{what} holds a user ID of {len(uid):,} digits (more than {bounds.MAX_ID_DIGITS})")
        if int(uid) <= 0:
            raise _Wrong(f"{what} is not a Bitrix24 list of users")
        records.append((str(int(uid)), _active(user.get("ACTIVE", True))))  # "07" is user 7: one user, changed once
    return records


def _active(value: object) -> bool:
    """A record's own ACTIVE: false, "N", "false" and 0 are inactive (a portal that ignored the filter)."""
    return not (value is False or value == 0 or str(value).strip().lower() in ("n", "false", "0"))


def _not_listed(call: Call, answer: Answer) -> Outcome:
    holder = "the app's token" if call.endpoint.token else "the webhook"
    if answer.error == "insufficient_scope":
        return Outcome(
            ExitStatus.API_ERROR,
            answer.body,
            (
                f"{USER_METHOD}: insufficient_scope: {holder} lacks the user scope (user, or user_basic), which "
                "--userid all needs to list the portal's users; add the scope or give the user IDs. Nothing was changed",
            ),
        )
    status = ExitStatus.API_ERROR if answer.kind is Kind.API_ERROR else ExitStatus.REQUEST_FAILED
    data = answer_entry(answer, call.redactor)
    return Outcome(
        status, data, (f"{USER_METHOD}: {answer.problem}; the users could not be listed, nothing was changed",)
    )


def _unusable(why: str) -> Outcome:
    """An answer that cannot be a listing of the portal's users."""
    text = f"{USER_METHOD}: {why}; nothing was changed"
    return Outcome(ExitStatus.REQUEST_FAILED, {"error": "REQUEST_FAILED", "error_description": text}, (text,))


# -- deciding ------------------------------------------------------------------
class Decision(Enum):
    ACT = "act"  # send the change
    SKIP = "skip"  # nothing to change
    FAIL = "fail"  # its status could not be read, or a needed change cannot be made: a failure


@dataclass(frozen=True)
class Choice:
    """What is to happen to one user."""

    kind: Decision
    before: str | None  # STATUS read first
    params: dict[str, Any] = field(default_factory=dict)  # REST fields besides USER_ID
    reason: str = ""  # for SKIP
    error: Entry | None = None  # for FAIL


def _fail(before: str | None, code: str, why: str) -> Choice:
    return Choice(Decision.FAIL, before, error={"error": code, "error_description": why})


def decide(call: Call, entry: Entry) -> Choice:
    """One user's Choice, from the status entry read for them."""
    if "error" in entry:
        return Choice(Decision.FAIL, None, error=entry)
    method, params = call.method, call.rest_params
    record: Any = entry.get("result")  # the portal's JSON: a dict wherever STATUS is read from it
    status = record.get("STATUS") if isinstance(record, dict) else None
    if not isinstance(status, str):
        return _fail(None, "NO_STATUS", f"{_status_method(method).rest} gave no STATUS")
    known = _status_method(method).statuses
    if call.if_needed and known and status not in known:  # it cannot say the day needs nothing: never a skip
        return _fail(
            None,
            "UNKNOWN_STATUS",
            f"{_status_method(method).rest} gave STATUS {status[:40]!r}, not one of "
            f"{', '.join(known)}; nothing was sent",
        )
    if call.if_needed and not _needed(method, status):
        return Choice(
            Decision.SKIP, status, reason=method.skip_why.format(status=status) + method.skip_notes.get(status, "")
        )
    if not method.dated_by_start:
        return Choice(Decision.ACT, status, params)
    if call.if_needed and status == "EXPIRED":
        return _expired(record, params.get("TIME"), params.get("REPORT") or DEFAULT_REPORT)
    if "TIME" in params and call.if_needed:
        params = {**params, "REPORT": params.get("REPORT") or DEFAULT_REPORT}
    return _not_before_start(Choice(Decision.ACT, status, params), record)


def _needed(method: Method, status: str) -> bool:
    return status in method.needed if method.needed else status != method.confirm_status


def _status_method(method: Method) -> Method:
    return BY_KEY[method.status_method.lower()]


def _expired(record: dict[str, Any], given: str | None, report: str) -> Choice:
    """The close of a day left open before today: the portal wants a TIME on the day's own
    open date and a REPORT. --time's clock goes on that date in the offset of the day's
    TIME_START (the portal compares the dates in the day's zone); without --time, the
    portal's TIME_FINISH_DEFAULT. A day that cannot be closed is a failure: it stays open."""
    start, default = _atom(record.get("TIME_START")), _atom(record.get("TIME_FINISH_DEFAULT"))
    if start is None:
        return _fail(
            "EXPIRED",
            "NOT_CLOSED",
            f"the day expired, and its TIME_START {record.get('TIME_START')!r} is "
            "not a date to close it on; it stays open",
        )
    if given:
        moment = f"{start[:10]}T{given[11:19]}{start[19:]}"
    elif default is not None:
        moment = default
    else:
        return _fail(
            "EXPIRED",
            "NOT_CLOSED",
            f"the day expired on {start[:10]} and the portal states no "
            "TIME_FINISH_DEFAULT; it stays open. Give --time HH:MM to close it "
            "at that time on its own date",
        )
    return _not_before_start(Choice(Decision.ACT, "EXPIRED", {"TIME": moment, "REPORT": report}), {"TIME_START": start})


def _not_before_start(step: Choice, record: dict[str, Any]) -> Choice:
    """A close is never sent for a moment before the day's start."""
    start, end = _atom(record.get("TIME_START")), step.params.get("TIME")
    if start is None or end is None or datetime.fromisoformat(end) >= datetime.fromisoformat(start):
        return step
    return _fail(
        step.before,
        "BEFORE_START",
        f"the close at {end} would come before the day's start at {start}; it was not sent, and the day stays open",
    )


# -- running -------------------------------------------------------------------
class End(Enum):
    """How a run over many users ended."""

    DONE = "done"
    STOPPED = "stopped"  # a signal: stop sending
    GONE = "gone"  # the portal could not be reached for GONE_BATCHES batches in a row
    HALTED = "halted"  # the token could not be renewed (an auth file's chain: exit 7, or 4): nothing more can be sent


@dataclass
class Tally:
    """The entries so far and the counts a summary gives. An entry is added once and never changed
    afterwards: the run's record (output.recorder) writes each entry once, when its batch ends."""

    entries: dict[str, Entry] = field(default_factory=dict)
    # unsure: acted on without a status read first (close first), whose answer was lost: maybe done before the run
    counts: dict[str, int] = field(
        default_factory=lambda: {"acted": 0, "skipped": 0, "failed": 0, "not reached": 0, "unsure": 0}
    )
    changed: bool = False  # the current batch's change was answered: a failure after it may leave it applied

    def add(self, uid: str, entry: Entry, kind: str) -> None:
        if entry.get("error") == NOT_REACHED:  # a stop kept its change (or its status read) from being sent
            entry, kind = {"action": "not reached"}, "not reached"
        self.entries[uid] = entry
        self.counts[kind] += 1


def run(
    call: Call,
    client: "Caller",
    progress: Progress | None = None,
    record: Record | None = None,
    stop: "Stop | None" = None,
) -> Outcome:
    """Batch by batch: read the statuses (--if-needed, --plan), decide per user, then (unless --plan) make
    the changes; or, for a method that acts first, send the changes at once and read only the refused
    users' statuses, after the others. `record(entries)` is given every user's entry so far after each
    batch; `stop` (a files.signals.Stop) is looked at between batches."""
    uids = list(call.user_ids) if call.user_ids or call.many else [""]  # "": the webhook's own user
    refused: list[str]
    halted: OintError | None
    tally, end, streak, refused, halted = Tally(), End.DONE, 0, [], None
    what = "reading statuses" if call.plan else call.method.words[1] if call.reads_first else "sending"
    for chunk, first in _chunks(uids, acts_first(call), refused):
        tally.changed = False
        if stopped(stop):
            end = End.STOPPED
            break
        if streak >= GONE_BATCHES:
            end = End.GONE
            break
        try:
            unreachable = _first(call, client, chunk, tally, refused) if first else _batch(call, client, chunk, tally)
        except KeyboardInterrupt as exc:
            if stop is None or stop.signal is None:
                raise
            if not _unapplied(exc, tally):  # else (a stop during a renewal, the batch refused 401): not reached
                _cut(call, chunk, tally)
            end = End.STOPPED
            break
        except RequestFailure:
            raise
        except OintError as exc:  # an auth file's token that cannot be renewed (authfile.Renewing): the batches
            # before were applied, so the run ends like one stopped, with their entries, not with this line alone
            if not _unapplied(exc, tally):  # else nothing of this batch was applied: "not reached"
                _cut(
                    call,
                    chunk,
                    tally,
                    f"the run ended while {call.method.rest} was being sent for this user, as the "
                    "access token was refused or could not be renewed",
                )
            end, halted = End.HALTED, exc
            break
        streak = streak + 1 if unreachable else 0
        if record is not None:
            record(tally.entries)
        if progress:
            progress(what, len(tally.entries), len(uids))
    if end is End.DONE and stopped(stop):  # the signal came during the last batch
        end = End.STOPPED
    for uid in uids:
        if uid not in tally.entries:
            tally.add(uid, {"action": "not reached"}, "not reached")
    tally.entries = {uid: tally.entries[uid] for uid in uids}  # in the order asked, refused users included
    return _report(call, tally, end, stop, halted)


def _unapplied(exc: BaseException, tally: Tally) -> bool:
    """Whether nothing of the current batch was applied: the call an auth file's renewal ended was never sent
    or was refused with 401 (authfile.Renewing marks it `unapplied`), and no change of the batch was answered."""
    return bool(getattr(exc, "unapplied", False)) and not tally.changed


def acts_first(call: Call) -> bool:
    """Close first: no TIME to check against the day's start, nothing to plan."""
    return call.if_needed and call.method.act_first and not call.plan and "TIME" not in dict(call.rest_params)


def _chunks(uids: list[str], first: bool, refused: list[str]) -> Iterator[tuple[list[str], bool]]:
    """(up to BATCH_SIZE users, whether to act first): every user, then those whose change was refused."""
    for at in range(0, len(uids), bounds.BATCH_SIZE):
        yield uids[at : at + bounds.BATCH_SIZE], first
    while refused:
        chunk, refused[:] = refused[: bounds.BATCH_SIZE], refused[bounds.BATCH_SIZE :]
        yield chunk, False


def _first(call: Call, client: "Caller", chunk: list[str], tally: Tally, refused: list[str]) -> bool:
    """The change sent to every user of a batch without reading first. A record showing the day closed before
    this run is a skip; a user whose answer shows no change (any refusal, such as an expired day's, or another
    STATUS) goes to `refused`, to be read and decided on like any other."""
    method = call.method
    clocks: dict[str, dict[str, Any]] = {}
    cmd = batch.commands(method.rest, chunk, call.rest_params)[0]
    results, unreachable = send_batch(client, call, method, cmd, clocks)
    tally.changed = True
    unanswered = [uid for uid in chunk if results[uid].get("error") in UNANSWERED]
    # the answered users are recorded first: a failure of the status read below (a renewal that fails, a stop)
    # must not turn an answer the portal gave into an unknown outcome
    for uid in [uid for uid in chunk if uid not in unanswered]:
        _settle_first(call, uid, results[uid], clocks.get(uid), tally, refused)
    # the batch may have run their change: a status that shows it made settles it, as for a lost answer
    for uid, now in _shown_done(call, client, unanswered).items():
        results[uid] = {"result": now, "note": settled_text(method)}
    for uid in unanswered:
        _settle_first(call, uid, results[uid], clocks.get(uid), tally, refused)
    return unreachable


def _settle_first(
    call: Call, uid: str, result: Entry, clock: dict[str, Any] | None, tally: Tally, refused: list[str]
) -> None:
    """One user's entry after a change sent first: into `tally`, or into `refused` to be read and decided on."""
    method = call.method
    if "error" in result and result["error"] not in (*TRANSPORT_ERRORS, NOT_REACHED):
        refused.append(uid)
        return
    if "error" not in result and "note" not in result:
        verdict, why = shown(method, result.get("result"), None, clock)
        if verdict is Shown.OTHER:
            refused.append(uid)
            return
        if verdict is Shown.ALREADY:  # as a status read first would have said: the same entry either way
            step = Choice(Decision.SKIP, "CLOSED", reason=method.skip_why.format(status="CLOSED"))
            tally.add(uid, *_entry(call, step, None))
            return
        if verdict is Shown.UNSURE:
            result = {**result, "note": why}
    if "error" not in result and "note" in result:  # its answer was lost, or does not date the close
        result = {
            **result,
            "note": f"{result['note']}. Its status before this run was not read ({method.words[0]} "
            f"first): it was {method.words[2]} by this run, or already before it",
        }
        tally.counts["unsure"] += 1
    tally.add(uid, *_entry(call, Choice(Decision.ACT, None, dict(call.rest_params)), result, clock))


def _cut(call: Call, chunk: list[str], tally: Tally, why: str | None = None) -> None:
    """The users of a request cut in flight by a stop (or `why`): nobody can tell whether it was applied."""
    why = why or (
        f"the run was stopped while {call.method.rest} was in flight for this user, with no answer "
        f"within {bounds.STOP_GRACE:g} s"
    )
    unknown = {
        "error": "OUTCOME_UNKNOWN",
        "error_description": f"{why}: it may have been "
        f"applied. Check with {_status_method(call.method).name}, or re-run with --if-needed",
    }
    for uid in chunk:
        if uid not in tally.entries:
            tally.add(
                uid, {"action": "failed", "status_before": None, **unknown} if call.reads_first else unknown, "failed"
            )


def _batch(call: Call, client: "Caller", chunk: list[str], tally: Tally) -> bool:
    """One batch of users read, decided and changed; their entries into `tally`. True when no portal answered."""
    method = call.method
    clocks: dict[str, dict[str, Any]] = {}
    if not call.reads_first:
        cmd = batch.commands(method.rest, chunk, call.rest_params)[0]
        results, unreachable = send_batch(client, call, method, cmd, clocks)
        for uid in chunk:
            entry = _judged(method, results[uid], call.rest_params.get("TIME"), clocks.get(uid))
            tally.add(uid, entry, "failed" if "error" in entry else "acted")
        return unreachable
    read, unreachable = send_batch(
        client, call, _status_method(method), batch.commands(_status_method(method).rest, chunk, {})[0]
    )
    steps = {uid: decide(call, read[uid]) for uid in chunk}
    unchecked = _unchecked(call, read, steps) if call.plan and not call.if_needed else {}
    results = {}  # {uid: entry}, as send_batch gives
    refused: list[str] = []
    if not call.plan and not unreachable:
        todo = {uid: batch.user_line(method.rest, uid, s.params) for uid, s in steps.items() if s.kind is Decision.ACT}
        if todo:
            results, unreachable = send_batch(client, call, method, batch.chunks(todo)[0], clocks)
            tally.changed = True
            refused = _done_meanwhile(call, steps, results, clocks)

    def record(uid: str) -> None:
        entry, kind = _entry(call, steps[uid], results.get(uid), clocks.get(uid))
        if uid in unchecked:
            entry["unchecked"] = unchecked[uid]
        tally.add(uid, entry, kind)

    # the answered users are recorded before the refused ones' status is read: a failure of that read (a renewal
    # that fails, a stop) must not turn an answer the portal gave into an unknown outcome
    for uid in [uid for uid in steps if uid not in refused]:
        record(uid)
    for uid in _shown_done(call, client, refused):
        _skip_meanwhile(method, steps, results, uid)
    for uid in refused:
        record(uid)
    return unreachable


def _unchecked(call: Call, read: dict[str, Entry], steps: dict[str, Choice]) -> dict[str, str]:
    """--plan without --if-needed calls every user: where the status says the call changes nothing, why."""
    needed = call.replace(if_needed=True)
    found: dict[str, str] = {}
    for uid, step in steps.items():
        would = decide(needed, read[uid]) if step.kind is Decision.ACT else None
        if would is not None and would.kind is Decision.SKIP:
            found[uid] = f"{would.reason}; without --if-needed it is called anyway"
    return found


def _done_meanwhile(
    call: Call, steps: dict[str, Choice], results: dict[str, Entry], clocks: dict[str, dict[str, Any]]
) -> list[str]:
    """A change someone else made after the status was read (another run, the user) is a skip: a close whose
    record shows the day closed before it (marked here), or any refusal (whatever its code or text) after which
    a status check shows the change made (the refused users returned, for the caller to read). Every other
    refusal stays the failure it is."""
    method = call.method
    refused = [
        uid
        for uid, entry in results.items()
        if "error" in entry and entry["error"] not in (*TRANSPORT_ERRORS, NOT_REACHED)  # a stop: nothing was sent
    ]
    before = [
        uid
        for uid, entry in results.items()
        if "error" not in entry
        and "note" not in entry
        and shown(method, entry.get("result"), steps[uid].params.get("TIME"), clocks.get(uid))[0] is Shown.ALREADY
    ]
    for uid in before:
        _skip_meanwhile(method, steps, results, uid)
    return refused


def _skip_meanwhile(method: Method, steps: dict[str, Choice], results: dict[str, Entry], uid: str) -> None:
    steps[uid] = Choice(
        Decision.SKIP,
        steps[uid].before,
        reason=f"the day is {method.confirm_status} by now: it was {method.words[2]} by someone else after its "
        "status was read",
    )
    results.pop(uid)


def _shown_done(call: Call, client: "Caller", uids: list[str]) -> dict[str, Entry]:
    """{uid: status record} of those of `uids` (one batch at most) whose status, read once, shows the
    method's change made; nothing is read for no users."""
    if not uids:
        return {}
    return {
        uid: now
        for uid, now in statuses(client, call, uids, batched=True).items()
        if now is not None and now.get("STATUS") == call.method.confirm_status
    }


def _judged(method: Method, result: Entry, sent: str | None, clock: dict[str, Any] | None) -> Entry:
    """A change's entry as the portal answered it, with an error when its record shows the change not made
    (UNEXPECTED_STATUS, or ALREADY_CLOSED: a close of a day closed before it) and a note when it cannot tell."""
    if not method.changes_state or "error" in result or "note" in result:
        return result
    verdict, why = shown(method, result.get("result"), sent, clock)
    if verdict is Shown.MADE:
        return result
    if verdict is Shown.UNSURE:
        return {**result, "note": f"{why}: it was {method.words[2]} by this run, or before it"}
    code = "UNEXPECTED_STATUS" if verdict is Shown.OTHER else "ALREADY_CLOSED"
    return {**result, "error": code, "error_description": why}


def _entry(call: Call, step: Choice, result: Entry | None, clock: dict[str, Any] | None = None) -> tuple[Entry, str]:
    """One user's part of the answer and how it counts. `result`: the portal's entry for the change (None when
    nothing was sent); `clock`: the portal's clock as it ran the change."""
    planned, _, done = call.method.words
    if step.kind is Decision.SKIP:
        return {
            "action": "skip" if call.plan else "skipped",
            "status_before": step.before,
            "reason": step.reason,
        }, "skipped"
    if step.kind is Decision.FAIL:
        assert step.error is not None  # a FAIL step always carries its error (decide, _fail)
        return {"action": "failed", "status_before": step.before, **step.error}, "failed"
    entry = {
        "action": planned if call.plan else done,
        "status_before": step.before,
        "time": step.params.get("TIME"),
        **({"report": step.params["REPORT"]} if "REPORT" in step.params else {}),
    }
    if call.plan or result is None:
        return entry, "acted"
    entry = {**entry, **_judged(call.method, result, step.params.get("TIME"), clock)}
    if "error" in entry:
        entry["action"] = "failed"  # after the portal's fields: an entry of its own cannot say otherwise
        return entry, "failed"
    return entry, "acted"


def _signal_name(number: int | None) -> str:
    import signal

    try:
        return signal.Signals(number).name  # type: ignore[arg-type]  # None: a ValueError, as below
    except ValueError:
        return f"signal {number}"


_SIGNAL_STATUS = {"SIGHUP": ExitStatus.HANGUP, "SIGINT": ExitStatus.INTERRUPTED, "SIGTERM": ExitStatus.TERMINATED}


def _report(call: Call, tally: Tally, end: End, stop: "Stop | None", halted: OintError | None = None) -> Outcome:
    """The per-user answer, the stderr lines and the summary; the exit status of the worst failure."""
    messages: list[str]
    failing: list[tuple[object, str]]  # (the error code, its line)
    status, messages, failing = ExitStatus.OK, [], []  # a streak of users failing the same way for want of an answer
    for uid, entry in tally.entries.items():
        if "error" in entry:
            worse, line = failure(uid, entry)
            status = max(status, worse)
            if failing and (entry.get("error") != failing[0][0] or entry.get("error") not in TRANSPORT_ERRORS):
                messages += _streak(failing)
                failing = []
            if entry.get("error") in TRANSPORT_ERRORS:
                failing.append((entry.get("error"), line))
            else:
                messages.append(line)
        elif "note" in entry:
            messages.append(about(uid, entry["note"]))
    messages += _streak(failing)
    counts = tally.counts
    if end is End.GONE:
        status = max(status, ExitStatus.REQUEST_FAILED)
        messages.append(
            f"the portal could not be reached for {GONE_BATCHES} batches in a row (no connection, "
            f"no name or no answer in time): {counts['not reached']} users not reached, nothing more "
            "was sent"
        )
    if halted is not None:  # its own exit (7: a person must authorise the app again) and its paragraph
        status = halted.status
        messages.append(halted.message)
    if end is End.STOPPED:
        assert stop is not None  # run() ends STOPPED only with a stop that has its signal
        status = _SIGNAL_STATUS.get(_signal_name(stop.signal), ExitStatus.INTERRUPTED)  # Windows' SIGBREAK: 130
    summary = _summary(call, tally, end, stop) if call.reads_first or end is not End.DONE else None
    data = tally.entries if call.many else next(iter(tally.entries.values()))
    return Outcome(ExitStatus(status), data, tuple(messages), summary, per_user=call.many)


def stopped_early(stop: "Stop | None") -> Outcome:
    """A signal ended the run before anything that changes a day was sent (waiting for the lock, listing users)."""
    assert stop is not None  # called only once files.signals.stopped(stop)
    name = _signal_name(stop.signal)
    return Outcome(
        _SIGNAL_STATUS.get(name, ExitStatus.INTERRUPTED),
        None,
        (
            f"stopped by {name} before any change was sent: nothing was changed; run the same command "
            "again to do the job",
        ),
    )


SHOWN = 3  # of a streak of users failing the same way for want of an answer (a portal gone): the rest in one line


def _streak(failing: list[tuple[object, str]]) -> list[str]:
    """The stderr lines of a streak of (code, line): all of a short one; of a long one its first and a count."""
    if len(failing) <= SHOWN:
        return [line for _, line in failing]
    return [failing[0][1], f"... and {len(failing) - 1} more users with {failing[0][0]} (see the record)"]


def _summary(call: Call, tally: Tally, end: End, stop: "Stop | None") -> str:
    planned, _, done = call.method.words
    counts = tally.counts
    if call.plan:
        line = (
            f"plan: {counts['acted']} to {planned}, {counts['skipped']} to skip, {counts['failed']} failed; "
            "nothing was changed"
        )
        if not call.if_needed:
            unchecked = sum(1 for entry in tally.entries.values() if "unchecked" in entry)
            line += (
                f"; without --if-needed the status is not checked: every user is called, {unchecked} of them "
                "on a day it does not change (add --if-needed to skip those)"
            )
        return line
    acted = f"{counts['acted']} {done}" if call.reads_first else f"{counts['acted']} sent"
    if counts["unsure"]:
        acted += f" ({counts['unsure']} of them by this run or before it: their answers were lost)"
    line = f"{acted}, {counts['skipped']} skipped, {counts['failed']} failed"
    if end is End.DONE:
        return line
    line += f", {counts['not reached']} not reached"
    again = " with --if-needed" if call.method.changes_state and not call.if_needed else ""
    if end is End.STOPPED:
        assert stop is not None  # run() ends STOPPED only with a stop that has its signal
        return f"stopped by {_signal_name(stop.signal)}: {line}; run the same command{again} again to finish the job"
    return f"{line}; run the same command{again} again to finish the job"
