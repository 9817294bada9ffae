"""The sandbox decides a close, a pause and an open as the server code does (issue 22, part 2, items 1-3),
checked with raw HTTP, not through oint: Bitrix\\Timeman\\Rest answers a core action that fails without an
exception with 200 and the status record unchanged; pause always answers the record; open refuses a TIME on a
day it can only resume. Where the source leaves doubt (a close of a closed day) the sandbox plays both answers."""

from datetime import timedelta

import httpx
import pytest
from conftest import Clock, ConsoleScript, cli_runner

from oint_py.sandbox.portal import _atom


def rest(portal, method: str, **params) -> httpx.Response:
    return httpx.post(portal.webhook() + method, json=params, timeout=10)


def closed_hours_ago(portal, uid: int, hours: float = 3) -> dict:
    """A day of today closed `hours` ago."""
    now = portal.now()
    day = dict(portal._record("CLOSED", now - timedelta(hours=8)), TIME_FINISH=_atom(now - timedelta(hours=hours)))
    portal.days[uid] = day
    return dict(day)


@pytest.fixture
def clock():
    return Clock()


# -- 1: a close of a day that is not open -------------------------------------------------------------------
def test_close_of_a_closed_day_answers_200_with_the_unchanged_record(make_portal, clock):
    portal = make_portal(users=5, now=clock)
    day = closed_hours_ago(portal, 2)
    clock.advance(60)
    r = rest(portal, "timeman.close", USER_ID="2")
    assert r.status_code == 200
    assert r.json()["result"] == day == portal.days[2]
    assert r.json()["time"]["date_start"] == _atom(portal.now())  # the portal's clock: after the old TIME_FINISH
    assert not portal.applied["timeman.close"]


def test_close_of_a_user_with_no_day_answers_200_closed(make_portal):
    portal = make_portal(users=5, opened=False)
    r = rest(portal, "timeman.close", USER_ID="3")
    assert (r.status_code, r.json()["result"]) == (200, {"STATUS": "CLOSED"})
    assert 3 not in portal.days and not portal.applied["timeman.close"]


def test_close_of_a_closed_day_in_a_batch_gives_the_record_and_the_commands_clock(make_portal, clock):
    portal = make_portal(users=5, now=clock)
    day = closed_hours_ago(portal, 2)
    r = rest(portal, "batch", halt=0, cmd={"u2": "timeman.close?USER_ID=2", "u3": "timeman.close?USER_ID=3"})
    body = r.json()["result"]
    assert r.status_code == 200 and body["result_error"] == []
    assert body["result"]["u2"] == day and body["result"]["u3"]["STATUS"] == "CLOSED"
    assert body["result"]["u3"]["TIME_FINISH"] == body["result_time"]["u3"]["date_start"]  # closed now
    assert body["result_time"]["u2"]["date_start"] > day["TIME_FINISH"]


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_close_of_a_closed_day_can_be_refused_instead(make_portal, lang):
    portal = make_portal(users=5, closed_close="refuse", lang=lang)
    closed_hours_ago(portal, 2)
    for uid in ("2", "999999"):
        r = rest(portal, "timeman.close", USER_ID=uid)
        assert r.status_code == 400
    r = rest(portal, "timeman.close", USER_ID="2")
    assert r.json()["error_description"] not in ("Workday is not opened", "Рабочий день не начат")
    from oint_py.sandbox.portal import NOT_CLOSABLE

    assert (r.json()["error_description"] == NOT_CLOSABLE) is (lang == "en")
    assert portal.days[2]["STATUS"] == "CLOSED" and not portal.applied["timeman.close"]


def test_close_of_a_closed_day_still_checks_its_time(make_portal):
    portal = make_portal(users=5)
    closed_hours_ago(portal, 2)
    assert rest(portal, "timeman.close", USER_ID="2", TIME="18:00").json()["error"] == "WRONG_DATETIME_FORMAT"
    r = rest(portal, "timeman.close", USER_ID="2", TIME="2020-01-01T18:00:00+00:00")
    assert r.json()["error"] == "WRONG_DATETIME"


def test_the_sandbox_command_takes_the_switch():
    runner = cli_runner()
    r = runner.invoke(ConsoleScript(), ["sandbox", "--help"])
    assert "--closed-close [record|refuse]" in r.output
    r = runner.invoke(ConsoleScript(), ["sandbox", "--closed-close", "maybe"])
    assert r.exit_code == 5


# -- 2: pause -----------------------------------------------------------------------------------------------
def test_pause_never_errs_and_answers_the_status_record(make_portal, clock):
    portal = make_portal(users=6, opened=False, now=clock)
    portal.days[2] = portal._record("OPENED", clock() - timedelta(hours=1))
    portal.days[3] = portal._record("PAUSED", clock() - timedelta(hours=1))
    closed_hours_ago(portal, 4)
    portal.days[5] = portal._record("OPENED", clock() - timedelta(days=1))  # EXPIRED
    answers = {uid: rest(portal, "timeman.pause", USER_ID=str(uid)) for uid in (1, 2, 3, 4, 5)}
    assert {uid: r.status_code for uid, r in answers.items()} == dict.fromkeys(answers, 200)
    shown = {uid: r.json()["result"]["STATUS"] for uid, r in answers.items()}
    assert shown == {1: "CLOSED", 2: "PAUSED", 3: "PAUSED", 4: "OPENED", 5: "EXPIRED"}
    assert answers[1].json()["result"] == {"STATUS": "CLOSED"} and 1 not in portal.days
    assert answers[4].json()["result"]["TIME_FINISH"] is None  # a completed day is resumed (the docs)
    assert {uid: r.json()["result"] for uid, r in answers.items()} == {
        uid: portal.days.get(uid, {"STATUS": "CLOSED"}) for uid in answers
    }
    assert set(portal.applied["timeman.pause"]) == {2, 4}


# -- 3: open ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["OPENED", "PAUSED", "CLOSED"])
def test_open_with_a_time_on_a_day_it_can_only_resume_is_refused_with_code_time(make_portal, clock, status):
    portal = make_portal(users=3, opened=False, now=clock)
    portal.days[2] = dict(portal._record(status, clock() - timedelta(hours=1)))
    before = dict(portal.days[2])
    r = rest(portal, "timeman.open", USER_ID="2", TIME=_atom(clock()), REPORT="late")
    assert r.status_code == 400
    assert r.json() == {"error": "TIME", "error_description": "Unable to set time, work day is paused"}
    assert portal.days[2] == before and not portal.applied["timeman.open"]


def test_open_without_time_resumes_reopens_or_changes_nothing(make_portal, clock):
    portal = make_portal(users=4, opened=False, now=clock)
    portal.days[1] = portal._record("OPENED", clock() - timedelta(hours=1))
    portal.days[2] = portal._record("PAUSED", clock() - timedelta(hours=1))
    closed_hours_ago(portal, 3)
    opened = dict(portal.days[1])
    answers = {uid: rest(portal, "timeman.open", USER_ID=str(uid)) for uid in (1, 2, 3, 4)}
    assert all(r.status_code == 200 and r.json()["result"]["STATUS"] == "OPENED" for r in answers.values())
    assert answers[1].json()["result"] == opened  # nothing to do: unchanged
    assert set(portal.applied["timeman.open"]) == {2, 3, 4}


def test_open_on_an_expired_day_keeps_the_forgotten_day(make_portal, clock):
    portal = make_portal(users=3, opened=False, now=clock)
    portal.days[2] = portal._record("OPENED", clock() - timedelta(days=1))
    for params in ({}, {"TIME": _atom(clock()), "REPORT": "x"}):
        r = rest(portal, "timeman.open", USER_ID="2", **params)
        assert r.status_code == 200
        assert r.json()["result"]["STATUS"] == "EXPIRED" and r.json()["result"] == portal.days[2]
    assert portal.days[2]["TIME_START"] == _atom(clock() - timedelta(days=1))  # the forgotten day is kept
    assert not portal.applied["timeman.open"]
