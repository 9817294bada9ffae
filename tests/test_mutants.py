"""Tests written to kill mutants a mutation run left alive: each pins a behaviour a user
relies on that no other test would notice breaking. The docstring says which change
of the code it catches. Real oint processes against the sandbox portal or a scripted
one (tests/scripted.py); pure functions directly where the behaviour is pure."""

import json
import re
import socket
import zlib
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from conftest import assert_no_secret, oint_on, run_oint, user_docs
from scripted import RESET, Script, answer, batch_answer, closed, commands, run_timeless

from oint_py.parse.timeparse import TimeError, to_atom

STOP = ("bitrix24", "StopTimekeeping", "--url")
STATUS = ("bitrix24", "GetTimekeepingStatus", "--url")


# -- --time ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "typed,sent",
    [
        ("2026-05-26T14:13:07+05:30", "2026-05-26T14:13:07+05:30"),  # India
        ("2026-05-26T14:13:07+0545", "2026-05-26T14:13:07+05:45"),  # Nepal
        ("2026-05-26T14:13:07-09:30", "2026-05-26T14:13:07-09:30"),  # Marquesas
        ("2026-05-26T14:13:07+05:59", "2026-05-26T14:13:07+05:59"),
    ],
)
def test_offset_minutes_are_sent_as_typed(typed, sent):
    """Kills: the offset's minutes dropped or misread (+05:30 sent as +05:00)."""
    assert to_atom(typed) == sent


@pytest.mark.parametrize("bad", ["2026-05-26T14:13:07+05:60", "2026-05-26T14:13:07+0599", "2026-05-26T14:13:07+24:00"])
def test_offset_out_of_range_is_refused(bad):
    """Kills: the offset-minutes (or hours) range check loosened, or off by one."""
    with pytest.raises(ValueError, match="out of range"):
        to_atom(bad)


def test_offset_minutes_reach_the_portal():
    r = run_oint(*STOP, "https://h/rest/1/abcd/", "--time", "2026-05-26T14:13:07+05:30", "--report", "r", "--test")
    assert r.code == 0, r.err
    assert r.json()["requests"][0]["body"]["TIME"] == "2026-05-26T14:13:07+05:30"


BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    "day,clock,says",
    [
        ("2026-03-29", "02:30", "does not exist"),  # spring forward: 02:00 -> 03:00
        ("2026-10-25", "02:30", "happens twice"),  # fall back: 03:00 -> 02:00
    ],
)
def test_clock_time_in_a_dst_gap_or_overlap_is_refused_not_guessed(day, clock, says):
    """Kills: `--time HH:MM` (today) given a zone without the gap/overlap check."""
    now = datetime.fromisoformat(f"{day}T12:00:00+00:00")
    with pytest.raises(TimeError, match=says):
        to_atom(clock, now=now, zone=BERLIN)
    assert to_atom("03:30", now=now, zone=BERLIN).startswith(f"{day}T03:30:00+0")  # an ordinary hour is fine


def test_clock_time_takes_todays_offset_in_the_zone():
    """Kills: today's date taken in UTC, not in the zone (23:30 UTC is already tomorrow in Tokyo)."""
    now = datetime(2026, 5, 26, 23, 30, tzinfo=timezone.utc)
    assert to_atom("08:00", now=now, zone=ZoneInfo("Asia/Tokyo")) == "2026-05-27T08:00:00+09:00"
    assert to_atom("08:00", now=now, zone=ZoneInfo("America/New_York")) == "2026-05-26T08:00:00-04:00"


# -- retries and what may have been applied ----------------------------------------
@pytest.mark.parametrize("code", [504, 524, 598, 599])
def test_a_gateway_timeout_on_a_close_is_never_re_sent_even_when_the_status_says_open(portal, code):
    """The proxy gave up; the portal may still be closing the day, so a status of OPENED proves
    nothing. Kills: any of 504/524/598/599 taken as "not applied" (the close re-sent)."""
    portal.inject(f"status:{code}")
    r = oint_on(portal, "--userid", 5)
    assert r.code == 4, r.err
    assert r.json()["error"] == "OUTCOME_UNKNOWN"
    assert "not sent again" in r.err
    assert len(portal.calls("timeman.close")) == 1
    assert len(portal.calls("timeman.status")) == 1


def test_a_plain_5xx_on_a_close_is_re_sent_after_the_status_shows_it_not_applied(portal):
    """The other side of the gateway rule. Kills: every 5xx taken as "maybe still running"."""
    portal.inject("status:502")
    r = oint_on(portal, "--userid", 5)
    assert r.code == 0, r.err
    assert len(portal.calls("timeman.close")) == 2
    assert portal.days[5]["STATUS"] == "CLOSED"


def _readme_backoff():
    """(base, cap) of the backoff, from the README's Bounds table."""
    import re

    text = user_docs()
    m = re.search(r"backoff ([\d.]+) s doubling to ([\d.]+) s", text)
    return float(m[1]), float(m[2])


def test_backoff_doubles_from_its_base_up_to_its_cap(tmp_path, portal):
    """Each wait lies in [50%, 100%] of min(cap, base * 2**n), with base and cap from README's
    Bounds; the harness's jitter alternates its two ends, so every other wait is the full step.
    Kills: a backoff that shrinks, stays flat, starts elsewhere or is capped elsewhere."""
    base, cap = _readme_backoff()
    retries = 9  # reaches the cap: base * 2**6 = cap for 0.25 and 8
    portal.inject(*["status:500"] * retries)  # not a throttling answer: no leaky-bucket waits between
    r, sleeps = run_timeless(tmp_path, *STATUS, portal.webhook(), "--userid", 1, "--retries", retries)
    assert r.code == 0, r.err
    assert len(sleeps) == retries
    tops = [min(cap, base * 2**n) for n in range(retries)]
    assert all(top / 2 <= slept <= top for slept, top in zip(sleeps, tops)), (sleeps, tops)
    assert sleeps[1::2] == pytest.approx(tops[1::2]), (sleeps, tops)


def test_a_connect_timeout_is_retried(tmp_path):
    """A portal whose accept queue is full never completes the handshake: a connect timeout,
    which can have reached nothing, so it is retried like a refused connection.
    Kills: ConnectTimeout not retried."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    try:
        for _ in range(8):  # fill the backlog so further SYNs are dropped
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(server.getsockname())
            fillers.append(c)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/rest/1/abcdefgh/"
        r = run_oint(*STOP, url, "--userid", 1, "--timeout", "0.3", "--retries", 2)
    finally:
        for c in fillers:
            c.close()
        server.close()
    assert r.code == 4, r.err
    assert "timed out connecting" in r.err
    assert "[3 attempts]" in r.err
    assert r.json()["error"] == "REQUEST_FAILED"  # nothing was sent: not an unknown outcome


def test_an_over_size_answer_is_not_downloaded_again():
    """Kills: an answer past --max-answer retried (64 MiB fetched again on every attempt)."""
    with Script(lambda req: answer({"result": {"STATUS": "OPENED", "PAD": "x" * 4000}})) as s:
        r = run_oint(*STATUS, s.url, "--max-answer", "1K", "--retries", 3)
    assert r.code == 4
    assert "larger than 1,024 bytes" in r.err
    assert len(s.requests) == 1


@pytest.mark.parametrize("wrap", ["zlib", "raw"])
def test_deflate_answers_are_read_with_or_without_the_zlib_header(wrap):
    """RFC 9110's deflate is zlib-wrapped; some servers send raw deflate. Both must read.
    Kills: the zlib-header test broken (one of the two unreadable)."""
    data = json.dumps({"result": {"STATUS": "OPENED", "NOTE": "déflaté " * 50}}).encode()
    if wrap == "zlib":
        packed = zlib.compress(data)
    else:
        z = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        packed = z.compress(data) + z.flush()
    with Script(
        lambda req: (200, [("Content-Type", "application/json"), ("Content-Encoding", "deflate")], packed)
    ) as s:
        r = run_oint(*STATUS, s.url)
    assert r.code == 0, r.err
    assert r.json()["result"]["NOTE"].startswith("déflaté")


# -- batches -------------------------------------------------------------------------
def test_batch_whose_settling_status_cannot_be_read_is_outcome_unknown_per_user(tmp_path):
    """A close batch dropped and no status readable: each user OUTCOME_UNKNOWN (exit 4), not re-sent.
    Kills: OUTCOME_UNKNOWN and REQUEST_FAILED swapped in a batch."""
    with Script(lambda req: RESET) as s:
        r, _ = run_timeless(tmp_path, *STOP, s.url, "--userid", "1,2")
    assert r.code == 4
    assert {uid: e["error"] for uid, e in r.json().items()} == {"1": "OUTCOME_UNKNOWN", "2": "OUTCOME_UNKNOWN"}
    closes = [req for req in s.requests if any(c.startswith("timeman.close") for c in commands(req).values())]
    assert len(closes) == 1


def test_batch_answered_with_a_gateway_timeout_settles_what_it_can_and_never_re_sends(tmp_path):
    """A close batch answered 524: user 1's status shows CLOSED (settled), user 2's OPENED, which
    proves nothing while the portal may still be running the batch: OUTCOME_UNKNOWN, not re-sent.
    Kills: OUTCOME_UNKNOWN and REQUEST_FAILED swapped in a batch; the in-flight rule lost in batches."""
    closes = []

    def respond(req):
        cmd = commands(req)
        if all(c.startswith("timeman.status") for c in cmd.values()):
            return batch_answer({"u1": {"STATUS": "CLOSED"}, "u2": {"STATUS": "OPENED"}})
        closes.append(cmd)
        return 524, [("Content-Type", "text/html")], b"<html>A timeout occurred</html>"

    with Script(respond) as s:
        r, _ = run_timeless(tmp_path, *STOP, s.url, "--userid", "1,2")
    assert r.code == 4
    data = r.json()
    assert data["1"]["result"]["STATUS"] == "CLOSED" and "note" in data["1"]
    assert data["2"]["error"] == "OUTCOME_UNKNOWN" and "GetTimekeepingStatus" in data["2"]["error_description"]
    assert len(closes) == 1


def test_batch_of_reads_that_never_gets_an_answer_is_request_failed_per_user(tmp_path):
    """Kills: the same swap the other way (a read that failed reported as an unknown outcome)."""
    with Script(lambda req: RESET) as s:
        r, sleeps = run_timeless(tmp_path, *STATUS, s.url, "--userid", "1,2", "--retries", 2)
    assert r.code == 4
    assert {uid: e["error"] for uid, e in r.json().items()} == {"1": "REQUEST_FAILED", "2": "REQUEST_FAILED"}
    assert len(s.requests) == 3


def test_batch_status_check_settles_some_users_re_sends_others_and_leaves_the_unknown(tmp_path):
    """The heart of "changed at most once": a close batch for users 1-4 is dropped; the status
    check shows 1 CLOSED (settled, with a note), 2 OPENED (re-sent, alone with 4), 3 unreadable
    (OUTCOME_UNKNOWN, never re-sent) and 4 PAUSED (re-sent)."""
    status = {"u1": {"STATUS": "CLOSED"}, "u2": {"STATUS": "OPENED"}, "u4": {"STATUS": "PAUSED"}}
    closes, made = [], {}

    def respond(req):
        cmd = commands(req)
        if all(c.startswith("timeman.status") for c in cmd.values()):
            return batch_answer(
                {k: v for k, v in status.items() if k in cmd},
                {k: {"error": "ERROR_CORE", "error_description": "x"} for k in cmd if k not in status},
            )
        closes.append(sorted(cmd))
        if len(closes) == 1:
            return RESET
        made.update({k: closed() for k in cmd})
        return batch_answer({k: made[k] for k in cmd})

    with Script(respond) as s:
        r, _ = run_timeless(tmp_path, *STOP, s.url, "--userid", "1,2,3,4")
    assert closes == [["u1", "u2", "u3", "u4"], ["u2", "u4"]]
    data = r.json()
    assert data["1"]["result"]["STATUS"] == "CLOSED" and "not sent again" in data["1"]["note"]
    assert data["2"] == {"result": made["u2"]} and data["4"] == {"result": made["u4"]}
    assert data["3"]["error"] == "OUTCOME_UNKNOWN"
    assert r.code == 4
    assert "user 3: OUTCOME_UNKNOWN" in r.err and "user 1: " in r.err


def test_batch_status_check_finding_everyone_done_sends_nothing_more(tmp_path):
    """Kills: a settled batch re-sent anyway (an empty or full second close)."""
    closes = []

    def respond(req):
        cmd = commands(req)
        if all(c.startswith("timeman.status") for c in cmd.values()):
            return batch_answer({k: {"STATUS": "CLOSED"} for k in cmd})
        closes.append(cmd)
        return RESET

    with Script(respond) as s:
        r, _ = run_timeless(tmp_path, *STOP, s.url, "--userid", "1,2")
    assert r.code == 0, r.err
    assert len(closes) == 1
    assert all(e["result"]["STATUS"] == "CLOSED" and "note" in e for e in r.json().values())


def test_a_whole_batch_refused_gives_every_user_the_portals_error(tmp_path):
    """Kills: a whole-batch error answer lost, or reported as a transport failure (exit 4)."""
    error = {"error": "INVALID_CREDENTIALS", "error_description": "Invalid request credentials"}
    with Script(lambda req: answer(error, 401)) as s:
        r, _ = run_timeless(tmp_path, *STOP, s.url, "--userid", "1,2")
    assert r.code == 3
    assert r.json() == {"1": error, "2": error}
    assert len(s.requests) == 1
    assert "user 1: INVALID_CREDENTIALS" in r.err and "user 2: INVALID_CREDENTIALS" in r.err


def test_a_whole_batch_answered_with_a_page_that_is_not_json_fails_every_user(tmp_path):
    """Kills: a whole-batch non-answer taken for the portal's refusal (exit 3) or for success."""
    with Script(lambda req: (200, [("Content-Type", "text/html")], b"<html>maintenance</html>")) as s:
        r, _ = run_timeless(tmp_path, *STATUS, s.url, "--userid", "1,2")
    assert r.code == 4
    assert all(e["error"] == "REQUEST_FAILED" and "maintenance" in e["error_description"] for e in r.json().values())


# -- --userid all: the listing ---------------------------------------------------------
def _users(start, n):
    return [{"ID": str(i)} for i in range(start, start + n)]


def listing(first, pages):
    """A portal with 120 active users: `first` answers the first user.get, `pages(req)` the batch of the rest."""

    def respond(req):
        if req["method"] == "user.get":
            return first
        cmd = commands(req)
        if any(c.startswith("user.get") for c in cmd.values()):
            return pages(req)
        return batch_answer({k: {"STATUS": "CLOSED"} for k in cmd})  # a change: the test asserts none came

    return respond


FIRST = answer({"result": _users(1, 50), "next": 50, "total": 120})


@pytest.mark.parametrize(
    "first,code",
    [
        (answer({"error": "ACCESS_DENIED", "error_description": "no"}, 403), 3),  # the portal refused
        ((502, [("Content-Type", "text/html")], b"<html>502 Bad Gateway</html>"), 4),  # no answer
        (answer({"result": "x", "total": 1}), 4),  # not a list of users
        (RESET, 4),  # no answer at all
    ],
)
def test_listing_exit_codes(tmp_path, first, code):
    """3 when the portal refused the listing, 4 when no usable listing came.
    Kills: exit codes 3 and 4 swapped in the listing."""
    with Script(listing(first, None)) as s:
        r, _ = run_timeless(tmp_path, *STOP, s.url, "--userid", "all", "--retries", 1)
    assert r.code == code, r.err
    assert "nothing was changed" in r.err
    assert not [req for req in s.requests if req["method"] != "user.get"]


@pytest.mark.parametrize(
    "pages,code,says",
    [
        (lambda req: answer({"error": "INTERNAL", "error_description": "down"}, 500), 4, "could not be listed"),
        (lambda req: (200, [], b"<html>oops</html>"), 4, "could not be listed"),
        (lambda req: answer([1, 2]), 4, "could not be listed"),
        (lambda req: answer({"result": "nope"}), 4, "is not a Bitrix24 list of users"),
        (lambda req: answer({"result": {"result": [], "result_error": []}}), 4, "is not a Bitrix24 list of users"),
        (lambda req: batch_answer({k: {"ID": "1"} for k in commands(req)}), 4, "is not a Bitrix24 list of users"),
        (
            lambda req: batch_answer({k: _users(51, 50) + _users(200, 1) for k in commands(req)}),
            4,
            "not a Bitrix24 list",
        ),
        (lambda req: batch_answer({k: [{"ID": "x1"}] for k in commands(req)}), 4, "is not a Bitrix24 list of users"),
        (
            lambda req: batch_answer(
                {}, {k: {"error": "ACCESS_DENIED", "error_description": "page"} for k in commands(req)}
            ),
            3,
            "ACCESS_DENIED",
        ),
        (lambda req: batch_answer({}, {k: "broken" for k in commands(req)}), 3, "could not be listed"),
        (lambda req: RESET, 4, "could not be listed"),
    ],
)
def test_later_pages_that_fail_or_are_malformed_end_cleanly_and_change_nothing(tmp_path, pages, code, says):
    """Kills: a later user.get page that fails or is malformed crashing (exit 99) or being
    skipped (a partial listing acted on)."""
    with Script(listing(FIRST, pages)) as s:
        r, _ = run_timeless(tmp_path, *STOP, s.url, "--userid", "all", "--if-needed", "--retries", 1)
    assert r.code == code, r.err
    assert says in r.err and "nothing was changed" in r.err
    assert_no_secret(r.out, r.err)
    sent = [c for req in s.requests for c in commands(req).values()]
    assert not [c for c in sent if not c.startswith("user.get")]


def test_later_pages_complete_the_listing(tmp_path):
    """The control: pages 2 and 3 from the batch; every listed user's status is read."""
    pages = lambda req: batch_answer(
        {"u50": _users(51, 50), "u100": _users(101, 20)},
        totals={"u50": 120, "u100": 120},
        nexts={"u50": 100},
    )
    with Script(listing(FIRST, pages)) as s:
        r, _ = run_timeless(tmp_path, *STOP, s.url, "--userid", "all", "--if-needed")
    assert r.code == 0, r.err
    assert sorted(map(int, r.json())) == list(range(1, 121))


# -- options ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "typed,size",
    [
        ("64M", 64 * 2**20),
        ("64MB", 64 * 2**20),
        ("64m", 64 * 2**20),
        ("1K", 1024),
        ("2kb", 2048),
        ("1G", 2**30),
        ("1.5K", 1536),
        ("4096", 4096),
        ("4096B", 4096),
    ],
)
def test_max_answer_units_are_powers_of_1024(typed, size):
    """Kills: a unit's factor changed (64M read as 32 MiB)."""
    r = run_oint(*STATUS, "https://h/rest/1/abcd/", "--max-answer", typed, "--test")
    assert r.code == 0, r.err
    assert r.json()["max_answer"] == size


@pytest.mark.parametrize("pad,code", [(0, 0), (1, 4)])
def test_max_answer_is_the_largest_answer_accepted(pad, code):
    """An answer of exactly --max-answer bytes is read; one byte more is refused."""
    prefix, suffix = b'{"result": {"STATUS": "OPENED", "P": "', b'"}}'
    body = prefix + b"x" * (1024 - len(prefix) - len(suffix) + pad) + suffix
    with Script(lambda req: (200, [("Content-Type", "application/json")], body)) as s:
        r = run_oint(*STATUS, s.url, "--max-answer", "1K")
    assert r.code == code, r.err


@pytest.mark.parametrize("url", ["{base}/b24/rest/", "{base}/b24/rest/1/code/", "{base}/b24/rest/timeman.status"])
def test_token_on_a_portal_under_a_sub_path_calls_under_that_path(url):
    """Kills: the portal's sub-path dropped or kept wrongly when --token builds the address."""
    with Script(lambda req: answer({"result": {"STATUS": "OPENED"}})) as s:
        r = run_oint(*STATUS, url.format(base=s.base), "--token", "tok-1", "--userid", 3)
    assert r.code == 0, r.err
    assert [req["path"] for req in s.requests] == ["/b24/rest/timeman.status"]
    assert s.requests[0]["body"] == {"USER_ID": "3", "auth": "tok-1"}


def test_token_on_a_portal_at_its_root():
    with Script(lambda req: answer({"result": {"STATUS": "OPENED"}})) as s:
        r = run_oint(*STATUS, s.base, "--token", "tok-1")
    assert r.code == 0, r.err
    assert [req["path"] for req in s.requests] == ["/rest/timeman.status"]


# -- survivors of the sampled cosmic-ray run (tools/mutation.sh) ---------------------------
def test_now_is_this_moment_in_the_zone():
    """Kills: `now` read in another zone than the one given (zone or local_zone() -> and)."""
    moment = datetime(2026, 5, 26, 23, 30, 15, 999, tzinfo=timezone.utc)
    assert to_atom("now", now=moment, zone=ZoneInfo("Asia/Kolkata")) == "2026-05-27T05:00:15+05:30"


@pytest.mark.parametrize(
    "zone,day,clock,jump",
    [
        ("Europe/London", "2026-03-29", "01:30", "+00:00 to +01:00"),
        ("Europe/Berlin", "2026-03-29", "02:30", "+01:00 to +02:00"),
        ("America/St_Johns", "2026-03-08", "02:30", "-03:30 to -02:30"),
    ],
)
def test_the_gap_message_names_both_offsets(zone, day, clock, jump):
    """Kills: the offsets in the refusal misprinted (sign at zero, minutes)."""
    with pytest.raises(TimeError, match=re.escape(jump)):
        to_atom(f"{day}T{clock}", zone=ZoneInfo(zone))


@pytest.mark.parametrize("typed", ["2026-05-26T14:13:07+23:59", "2026-05-26T14:13:07-23:00"])
def test_the_largest_offsets_are_accepted(typed):
    """Kills: the offset-hours range check off by one (+23:xx refused)."""
    assert to_atom(typed) == typed


def test_a_bad_user_id_is_named():
    """Kills: the message naming another entry than the first bad one."""
    r = run_oint(*STATUS, "https://h/rest/1/abcd/", "--userid", "1,x7,y8", "--test")
    assert r.code == 5 and "'x7' is not a user ID" in r.err


@pytest.mark.parametrize(
    "entry,shown",
    [
        ({"message": "denied"}, '{"message": "denied"}'),  # a map without "error": not a success
        ("z" * 500, '"' + "z" * 199),  # anything else, shown cut at 200 characters
    ],
)
def test_a_batch_users_error_entry_that_is_not_bitrix24s_is_bad_answer(tmp_path, entry, shown):
    """Kills: a user's result_error entry without an "error" key taken as it came (the user would
    count as done, exit 0), or its description cut elsewhere."""
    with Script(lambda req: batch_answer({"u2": {"STATUS": "OPENED"}}, {"u1": entry})) as s:
        r, _ = run_timeless(tmp_path, *STATUS, s.url, "--userid", "1,2")
    assert r.code == 3, r.err
    first = r.json()["1"]
    assert first["error"] == "BAD_ANSWER"
    assert first["error_description"] == "the batch answered this user's error as " + shown
    assert r.json()["2"] == {"result": {"STATUS": "OPENED"}}


def test_only_the_proxy_password_is_masked_in_a_config_structure():
    """Kills: other strings of a --config proxy structure (its Host) taken for passwords and masked."""
    config = {"proxy": {"Host": "proxy.example", "Port": 3128, "User": "someone", "Password": "pw-4f1e2d"}}
    r = run_oint(*STATUS, "https://h/rest/1/abcd/", "--test", "--config", json.dumps(config))
    assert r.code == 0, r.err
    assert r.json()["proxy"] == "http://someone:***@proxy.example:3128"


@pytest.mark.parametrize("ascii_only", [True, False])
def test_a_token_echoed_in_an_answer_is_masked_in_debug_in_its_json_escaped_forms(ascii_only):
    """A hostile portal echoes the token in its answer; --debug logs the answer's raw text, where
    the token stands JSON-escaped (ASCII-escaped or UTF-8). Kills: one of those forms not registered."""
    token = 'tök"en-77'
    body = json.dumps({"result": {"STATUS": "OPENED", "NOTE": f"<{token}>"}}, ensure_ascii=ascii_only).encode()
    with Script(lambda req: (200, [("Content-Type", "application/json")], body)) as s:
        r = run_oint(*STATUS, s.base, "--token", token, "--debug")
    assert r.code == 0, r.err
    escaped = json.dumps(token, ensure_ascii=ascii_only)[1:-1]
    assert [line for line in r.err.splitlines() if line.startswith("< {")], r.err
    assert escaped not in r.err and "ök" not in r.err and "00f6k" not in r.err


@pytest.mark.parametrize("option,value", [("--proxy", "http:// "), ("--url", "https://  ")])
def test_a_url_with_nothing_after_its_scheme_is_an_option_error(option, value):
    """Kills: the secret scan of such a URL crashing (exit 99) before the option is refused."""
    args = ["--url", "https://h/rest/1/abcd/", option, value] if option == "--proxy" else ["--url", value]
    r = run_oint("bitrix24", "GetTimekeepingStatus", *args, "--test")
    assert r.code == 5, r.err
    assert r.err.startswith(f"oint: {option}")


def test_a_proxy_without_a_scheme_is_http():
    """Kills: the `http://` put before a bare host:port broken (a crash, exit 99)."""
    r = run_oint(*STATUS, "https://h/rest/1/abcd/", "--proxy", "127.0.0.1:3128", "--test")
    assert r.code == 0, r.err
    assert r.json()["proxy"] == "http://127.0.0.1:3128"
