"""Many users in one call (batch), the portal's rate limit, and retries that
never flip a workday twice."""

import pytest
from conftest import SharedClock, oint_on, run_oint


def test_list_of_users_is_one_batch_keyed_by_user(portal):
    r = oint_on(portal, "--userid", "1,2,3")
    assert r.code == 0, r.err
    data = r.json()
    assert list(data) == ["1", "2", "3"]
    assert all(v["result"]["STATUS"] == "CLOSED" for v in data.values())
    (call,) = portal.calls()
    assert call["method"] == "batch" and call["params"]["halt"] == 0
    assert len(call["params"]["cmd"]) == 3


def test_time_with_a_plus_survives_the_batch_query_string(portal):
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.webhook(),
        "--userid",
        "4,5",
        "--time",
        "now",
        "--report",
        "Конец дня",
    )
    assert r.code == 0, r.out
    assert r.json()["4"]["result"]["TIME_FINISH"][19] in "+-"


def test_users_from_a_file_with_comments(portal, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("# forgotten workdays\n10\n11  # night shift\n\n12\n", encoding="utf-8")
    r = oint_on(portal, "--userid", f"@{ids}", method="GetTimekeepingStatus")
    assert r.code == 0, r.err
    assert list(r.json()) == ["10", "11", "12"]


def test_one_user_failing_makes_the_exit_code_3(portal):
    r = oint_on(portal, "--userid", "20,99999,21")
    assert r.code == 3
    data = r.json()
    assert data["20"]["result"]["STATUS"] == "CLOSED"
    assert data["99999"] == {"error": "", "error_description": "User not found"}
    assert data["21"]["result"]["STATUS"] == "CLOSED"


def test_more_than_50_users_are_split_into_batches_of_50(portal):
    r = run_oint(
        "bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--userid", ",".join(str(i) for i in range(1, 121))
    )
    assert r.code == 0, r.err
    assert len(r.json()) == 120
    assert [len(c["params"]["cmd"]) for c in portal.calls("batch")] == [50, 50, 20]
    assert all(portal.days[i]["STATUS"] == "CLOSED" for i in range(1, 121))


def test_stays_under_the_portals_leaky_bucket(make_portal, monkeypatch):
    """3,000 users are 60 batches: more than the portal's burst of 50 (draining 2/s) can take at once.
    oint's own bucket spaces them, so the portal never has to refuse one."""
    SharedClock().install(monkeypatch)  # the portal's bucket drains only by what oint waits
    portal = make_portal(rate_limit=(50, 2), users=3000)
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.webhook(),
        "--userid",
        ",".join(str(i) for i in range(1, 3001)),
        "--retries",
        0,
    )
    assert r.code == 0, r.err
    assert len(portal.calls("batch")) == 60
    assert portal.throttled == 0


def test_a_refusal_for_the_rate_limit_slows_the_rest_to_the_drain_rate(make_portal, monkeypatch):
    """A portal whose bucket is smaller than oint assumes (or that another process shares) refuses
    a batch: from then on oint believes the portal, not its own count, and sends at the drain rate,
    so one retry is all the run needs."""
    SharedClock().install(monkeypatch)  # the portal's bucket drains only by what oint waits
    portal = make_portal(rate_limit=(10, 5), users=1000)
    r = run_oint(
        "bitrix24",
        "GetTimekeepingStatus",
        "--url",
        portal.webhook(),
        "--userid",
        ",".join(str(i) for i in range(1, 1001)),
        "--retries",
        1,
    )
    assert r.code == 0, r.err
    assert portal.throttled == 1
    assert len(portal.calls("batch")) == 21


def test_throttled_batches_are_retried(make_portal):
    # a tight portal (burst 2, 1/s): the third batch is refused with 503 QUERY_LIMIT_EXCEEDED and re-sent
    portal = make_portal(rate_limit=(2, 1))
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.webhook(),
        "--userid",
        ",".join(str(i) for i in range(1, 151)),
        "--retries",
        6,
    )
    assert r.code == 0, r.err
    assert len(portal.calls("batch")) > 3
    assert all(portal.days[i]["STATUS"] == "CLOSED" for i in range(1, 151))


def test_one_id_in_list_form_keeps_keyed_output(portal):
    r = oint_on(portal, "--userid", "7,", method="GetTimekeepingStatus")
    assert list(r.json()) == ["7"]


@pytest.mark.parametrize(
    "method,rest,expected",
    [
        ("PauseTimekeeping", "timeman.pause", "PAUSED"),
        ("StopTimekeeping", "timeman.close", "CLOSED"),
    ],
)
def test_applied_then_dropped_is_not_sent_twice(portal, method, rest, expected):
    """The portal applies the call and drops the connection: oint asks timeman.status
    and does not re-send (a second pause would resume the day)."""
    portal.inject("apply-reset")
    r = run_oint("bitrix24", method, "--url", portal.webhook(), "--userid", 30)
    assert r.code == 0, r.err
    assert r.json()["result"]["STATUS"] == expected
    assert len(portal.calls(rest)) == 1
    assert len(portal.calls("timeman.status")) == 1
    assert "was not sent again" in r.err
    assert portal.days[30]["STATUS"] == expected


def test_start_after_an_applied_then_dropped_call(make_portal):
    portal = make_portal(opened=False)
    portal.inject("apply-reset")
    r = oint_on(portal, "--userid", 31, method="StartTimekeeping")
    assert r.code == 0, r.err
    assert len(portal.calls("timeman.open")) == 1
    assert portal.days[31]["STATUS"] == "OPENED"


def test_close_that_never_arrived_is_re_sent(portal):
    portal.inject("reset")  # dropped before the portal applied anything
    r = oint_on(portal, "--userid", 32)
    assert r.code == 0, r.err
    assert len(portal.calls("timeman.close")) == 2
    assert portal.days[32]["STATUS"] == "CLOSED"


@pytest.mark.parametrize("opened", [True, False])
def test_pause_whose_status_cannot_tell_is_never_re_sent(make_portal, opened):
    """A pause dropped before it arrived leaves an OPENED day; an applied pause on a CLOSED day
    resumes it: OPENED too. The status cannot tell them apart, so the pause is not sent again."""
    portal = make_portal(opened=opened)
    if not opened:
        portal.days[32] = portal._record("CLOSED", portal.now())
    portal.inject("reset" if opened else "apply-reset")
    r = oint_on(portal, "--userid", 32, method="PauseTimekeeping")
    assert r.code == 4
    assert r.json()["error"] == "OUTCOME_UNKNOWN" and "STATUS=OPENED" in r.err
    assert len(portal.calls("timeman.pause")) == 1
    assert portal.days[32]["STATUS"] == "OPENED"


def test_batch_pause_applied_then_dropped_is_not_sent_twice(portal):
    portal.inject("apply-reset")
    r = oint_on(portal, "--userid", "40,41,42", method="PauseTimekeeping")
    assert r.code == 0, r.err
    assert all(portal.days[i]["STATUS"] == "PAUSED" for i in (40, 41, 42))
    sent = [sorted({cmd.split("?")[0] for cmd in c["params"]["cmd"].values()}) for c in portal.calls("batch")]
    assert sent == [["timeman.pause"], ["timeman.status"]]  # one status check, no second pause
    assert all(v["result"]["STATUS"] == "PAUSED" for v in r.json().values())


def test_siblings_share_the_options_and_exit_codes(portal):
    for name in ("StartTimekeeping", "PauseTimekeeping", "GetTimekeepingStatus", "GetTimekeepingSettings"):
        r = run_oint("bitrix24", name, "--url", portal.webhook(), "--userid", 50, "--adv-response")
        assert r.code == 0, (name, r.err)
        assert r.json()["code"] == 200
    r = oint_on(portal, "--userid", 99999, method="GetTimekeepingSettings")
    assert r.code == 3


def test_sandbox_command_runs_a_portal_users_can_script_against():
    r = run_oint(
        "sandbox",
        "--port",
        0,
        "--background",
        "--stop-after",
        60,
        "--fail",
        "status:503",
        "--rate-limit",
        "50/2",
        "--users",
        20,
    )
    assert r.code == 0, r.err
    info = r.json()
    assert info["webhook"].endswith("/rest/1/sandbox/") and info["users"] == 20
    # the injected 503 is retried, then the day closes
    r = run_oint("bitrix24", "StopTimekeeping", "--url", info["webhook"], "--userid", 20, "--debug")
    assert r.code == 0, r.err
    assert "HTTP 503" in r.err and r.json()["result"]["STATUS"] == "CLOSED"
    # token auth works on the same portal; user 21 does not exist there
    r = run_oint("bitrix24", "StopTimekeeping", "--url", info["sandbox"], "--token", info["token"], "--userid", 21)
    assert r.code == 3 and r.json()["error_description"] == "User not found"
    # a second sandbox on the same port is refused with a clear message
    port = info["sandbox"].rsplit(":", 1)[1]
    r = run_oint("sandbox", "--port", port, "--background", "--rate-limit", "off")
    assert r.code == 5 and "cannot listen" in r.err


@pytest.mark.parametrize(
    "args", [["--rate", "50/2"], ["--rate-limit", "x"], ["--rate-limit", "0/0"], ["--port", "many"], ["--bogus"]]
)
def test_sandbox_bad_switch_is_an_option_error(args):
    r = run_oint("sandbox", *args)
    assert r.code == 5 and r.err.startswith("oint: sandbox: ") and "Traceback" not in r.err
