"""--time: what people type becomes PHP ATOM, the format the portal accepts."""

from datetime import datetime, timedelta, timezone

import pytest
from conftest import oint_on, run_oint

from oint_py.parse.timeparse import to_atom

UTC3 = timezone(timedelta(hours=3))
NOW = datetime(2026, 5, 26, 10, 0, 0, tzinfo=UTC3)


@pytest.mark.parametrize(
    "typed,sent",
    [
        ("2026-05-26T14:13:07+03:00", "2026-05-26T14:13:07+03:00"),
        ("2026-05-26T14:13:07+0300", "2026-05-26T14:13:07+03:00"),
        ("2026-05-26T14:13:07-05", "2026-05-26T14:13:07-05:00"),
        ("2026-05-26T11:13:07Z", "2026-05-26T11:13:07+00:00"),
        ("2026-05-26 14:13:07.123456+03:00", "2026-05-26T14:13:07+03:00"),
        ("2026-05-26t14:13+03:00", "2026-05-26T14:13:00+03:00"),
    ],
)
def test_explicit_offsets(typed, sent):
    assert to_atom(typed) == sent


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "yesterday",
        "2026-05-26",
        "2026-13-01T10:00:00",
        "2026-05-26T25:00:00",
        "26.05.2026 14:13",
        "2026-05-26T14:13:07+25:00",
        "14:61",
        "1e9",
    ],
)
def test_garbage_is_refused_with_the_accepted_forms(bad):
    with pytest.raises(ValueError, match="expected YYYY-MM-DD"):
        to_atom(bad)


@pytest.mark.parametrize(
    "typed,sent",
    [
        ("2026-05-26T14:13:07", "2026-05-26T14:13:07+02:00"),  # summer: CEST
        ("2026-01-15T14:13:07", "2026-01-15T14:13:07+01:00"),  # winter: CET
        ("2026-05-26 14:13:07.5", "2026-05-26T14:13:07+02:00"),
    ],
)
def test_naive_time_gets_this_machines_offset_for_that_date(typed, sent):
    r = run_oint(
        "bitrix24", "StopTimekeeping", "--url", "https://h/rest/1/abcd/", "--time", typed, "--test", TZ="Europe/Berlin"
    )
    assert r.code == 0, r.err
    assert r.json()["requests"][0]["body"]["TIME"] == sent


def test_clock_time_means_today():
    r = run_oint(
        "bitrix24", "StopTimekeeping", "--url", "https://h/rest/1/abcd/", "--time", "18:05", "--test", TZ="Asia/Tokyo"
    )
    sent = r.json()["requests"][0]["body"]["TIME"]
    today = datetime.now(timezone(timedelta(hours=9))).date().isoformat()
    assert sent == f"{today}T18:05:00+09:00"


def _on(day: str):
    """A portal clock fixed at 17:00 on `day`, in UTC+03:00 (the seed's portal is in Minsk)."""
    moment = datetime.fromisoformat(f"{day}T17:00:00+03:00")
    return lambda: moment


def test_seed_example_closes_the_day_it_was_written_for(make_portal):
    """The seed's documented result for its own example is WRONG_DATETIME_FORMAT. On a portal whose
    day is 2026-05-26, the same command closes the day."""
    portal = make_portal(now=_on("2026-05-26"))
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.base,
        "--userid",
        "1",
        "--time",
        "2026-05-26T14:13:07",
        "--report",
        "Time off",
        "--token",
        portal.token,
        TZ="Europe/Minsk",
    )
    assert r.code == 0, r.out
    assert r.json()["result"]["TIME_FINISH"] == "2026-05-26T14:13:07+03:00"
    assert portal.calls("timeman.close")[0]["params"]["TIME"] == "2026-05-26T14:13:07+03:00"


def test_seed_example_on_another_day_is_refused_for_its_date_not_its_format(make_portal):
    portal = make_portal(now=_on("2026-05-27"))
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.base,
        "--userid",
        "1",
        "--time",
        "2026-05-26T14:13:07",
        "--report",
        "Time off",
        "--token",
        portal.token,
        TZ="Europe/Minsk",
    )
    assert r.code == 3
    assert r.json()["error"] == "WRONG_DATETIME"


def test_same_form_for_today_closes_the_day(portal):
    typed = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.base,
        "--userid",
        "1",
        "--time",
        typed,
        "--report",
        "Time off",
        "--token",
        portal.token,
    )
    assert r.code == 0, r.out
    assert r.json()["result"]["STATUS"] == "CLOSED"


def test_time_without_report_is_the_portals_report_needed(portal):
    r = oint_on(portal, "--time", "now")
    assert r.code == 3
    assert r.json()["error"] == "REPORT_NEEDED"


def test_bad_time_is_refused_before_anything_is_sent(portal):
    r = oint_on(portal, "--time", "2026-05-26T14:13:07.5Zed")
    assert r.code == 5 and "--time" in r.err
    assert portal.calls() == []
