"""The sandbox answers as a real portal does: raw HTTP to an in-process sandbox (not through oint),
each test against the REST docs (bitrix24/b24restdocs) or the server code as docs/sandbox.md cites
them. Peers (fast-bitrix24) run unmodified against it."""

import json
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import cli_runner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from oint_py.sandbox.portal import OPERATING_WINDOW

MSK = timezone(timedelta(hours=3))


def send(portal, method: str, body=None, *, user: int = 1, form: str | None = None, query: str = ""):
    """POST to the webhook of `user`: a JSON body, or a form body as PHP clients send; (status, JSON)."""
    url = portal.webhook(user) + method + (f"?{query}" if query else "")
    if form is not None:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        resp = httpx.post(url, content=form.encode(), headers=headers, timeout=30)
    else:
        resp = httpx.post(url, json=body or {}, timeout=30)
    return resp.status_code, resp.json()


def fixed(moment: datetime):
    return lambda: moment


def day_at(portal, uid: int, start: datetime, status: str = "OPENED") -> None:
    portal.days[uid] = portal._record(status, start)


# -- 4. a TIME of the right shape that is no real moment: rolled over as PHP does, then refused by the date check --
@pytest.mark.parametrize(
    "method, sent",
    [
        ("timeman.close", "2026-02-30T10:00:00+03:00"),  # March 2
        ("timeman.close", "2026-02-28T24:00:00+03:00"),  # March 1, 00:00
        ("timeman.close", "2026-02-28T10:00:00+25:00"),  # February 27 in the day's +03:00
        ("timeman.close", "2026-13-28T10:00:00+03:00"),  # 2027-01-28
        ("timeman.open", "2026-02-30T10:00:00+03:00"),
        ("timeman.open", "2026-02-28T10:00:00+25:00"),
    ],
)
def test_a_time_that_is_no_real_moment_answers_wrong_datetime(make_portal, method, sent):
    portal = make_portal(users=5, now=fixed(datetime(2026, 2, 28, 12, 0, tzinfo=MSK)), opened=False)
    day_at(portal, 2, datetime(2026, 2, 28, 9, 0, tzinfo=MSK))
    # a close goes to the open day; an open to user 3, who has none (an open day would be a REOPEN, refused for its
    # TIME with code TIME before any date check: see test_sandbox_decisions.py)
    uid = 2 if method == "timeman.close" else 3
    status, answer = send(portal, method, {"USER_ID": uid, "TIME": sent, "REPORT": "forgot"})
    assert (status, answer["error"]) == (400, "WRONG_DATETIME")
    assert portal.days[2]["STATUS"] == "OPENED"
    assert portal.days.get(3) is None or portal.days[3]["STATUS"] != "OPENED"


JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(
        ["2026-02-30T10:00:00+03:00", "1", "-1", "0", "all", "Y", "%", "9" * 30, "\u0000", "\ud800", "$result[²][9" * 3]
    ),
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
KNOWN_KEYS = st.sampled_from(
    ["USER_ID", "TIME", "REPORT", "LAT", "LON", "FILTER", "filter", "cmd", "halt", "start", "sort", "order",
     "select", "auth", "ACTIVE", ">ID", "ID", "state", "client_id", "code"]
)  # fmt: skip
# TIME-shaped text, real moments or not: any digits, with or without a zone
TIME_LIKE = st.from_regex(
    r"\A[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}T[0-9]{1,2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}(:?[0-9]{2})?|[A-Za-z/_]{1,20})?\Z"
)
VALUE = st.one_of(JSON_VALUE, TIME_LIKE, st.integers(min_value=1, max_value=70))
PARAMS = st.dictionaries(KNOWN_KEYS, VALUE, max_size=6) | st.dictionaries(st.text(max_size=12), VALUE, max_size=4)
REFERENCES = st.sampled_from(  # the docs' linked calls, well and badly formed
    ["$result[0][0][ID]", "$result[²]", "$result[a][99999999999999999999999]", "x$result_next[0]y", "$result[0]"]
)
METHODS = st.sampled_from(
    ["user.get", "server.time", "timeman.status", "timeman.settings", "timeman.open", "timeman.close",
     "timeman.pause", "batch", "timeman_close", "nope.nope", "_m_timeman_close"]
)  # fmt: skip
COMMAND = st.builds(
    lambda method, pairs: method + "?" + "&".join(f"{k}={v}" for k, v in pairs),
    METHODS,
    st.lists(st.tuples(KNOWN_KEYS | st.text(max_size=12), TIME_LIKE | st.text(max_size=12) | REFERENCES), max_size=4),
)


@pytest.fixture(scope="module")
def hostile_portal():
    from conftest import _portal

    portal = _portal(users=60, admins=(1,), opened=False)
    with httpx.Client(timeout=30) as client:  # one kept-alive connection for all the examples
        yield portal, client
    portal.stop()


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=METHODS,
    params=PARAMS,
    commands=st.one_of(st.dictionaries(st.text(max_size=6), COMMAND, max_size=60), st.lists(COMMAND, max_size=55)),
    as_form=st.booleans(),
    user=st.sampled_from([1, 2, None]),
)
@example(
    method="timeman.open",
    params={"TIME": "2026-02-30T10:00:00+03:00", "REPORT": "r"},
    commands={},
    as_form=False,
    user=1,
)
@example(method="timeman.status", params={"auth": ["x"]}, commands={}, as_form=False, user=None)
def test_no_request_crashes_the_sandbox(hostile_portal, method, params, commands, as_form, user):
    """Random keys, values, types, nesting, huge numbers and odd unicode at every method and at batch,
    by webhook and by token (user None): every answer is JSON, a result or an error, and never the 500
    that marks a sandbox bug."""
    portal, client = hostile_portal
    body = dict(params, cmd=commands) if method == "batch" else params
    url = portal.webhook(user) + method if user else f"{portal.base}/rest/{method}"
    if as_form:
        form = "&".join(f"{k}={v}" for k, v in _flat(body))
        resp = client.post(url, content=form.encode("utf-8", "surrogatepass"), headers={"Content-Type": "x"})
    else:
        resp = client.post(url, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    answer = resp.json()
    assert resp.status_code != 500, answer
    assert "result" in answer or "error" in answer


def _flat(value, prefix=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flat(v, f"{prefix}[{k}]" if prefix else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _flat(v, f"{prefix}[{i}]")
    else:
        yield prefix, value


def test_a_body_that_is_not_json_or_a_bad_length_is_a_json_refusal(portal):
    resp = httpx.post(portal.webhook() + "timeman.status", content=b"{", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"] == "INVALID_REQUEST"
    nested = b"[" * 100000 + b"]" * 100000
    resp = httpx.post(portal.webhook() + "user.get", content=nested, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"] == "INVALID_REQUEST"


# -- 5. time zones as the server does them ------------------------------------------------------------
def test_open_checks_the_date_in_times_own_zone(make_portal):
    """23:30 UTC on March 10 is already March 11 in Moscow, still March 10 in New York."""
    portal = make_portal(users=5, now=fixed(datetime(2026, 3, 10, 23, 30, tzinfo=timezone.utc)), opened=False)
    status, answer = send(portal, "timeman.open", {"USER_ID": 2, "TIME": "2026-03-11T01:00:00+03:00", "REPORT": "r"})
    assert status == 200 and answer["result"]["TIME_START"] == "2026-03-11T01:00:00+03:00"
    status, answer = send(portal, "timeman.open", {"USER_ID": 3, "TIME": "2026-03-10T18:00:00-05:00", "REPORT": "r"})
    assert status == 200 and answer["result"]["TIME_START"] == "2026-03-10T18:00:00-05:00"
    status, answer = send(portal, "timeman.open", {"USER_ID": 4, "TIME": "2026-03-10T23:00:00+03:00", "REPORT": "r"})
    assert (status, answer["error"]) == (400, "WRONG_DATETIME")


def test_close_converts_time_to_the_offset_the_day_started_in(make_portal):
    portal = make_portal(users=5, now=fixed(datetime(2026, 3, 10, 20, 30, tzinfo=timezone.utc)), opened=False)
    day_at(portal, 2, datetime(2026, 3, 10, 9, 0, tzinfo=MSK))
    day_at(portal, 3, datetime(2026, 3, 10, 9, 0, tzinfo=MSK))
    status, answer = send(portal, "timeman.close", {"USER_ID": 2, "TIME": "2026-03-10T20:00:00Z", "REPORT": "r"})
    assert status == 200 and answer["result"]["TIME_FINISH"] == "2026-03-10T23:00:00+03:00"
    assert answer["result"]["DURATION"] == "14:00:00"
    # the same date as the start, written in UTC, is March 11 in the day's own zone
    status, answer = send(portal, "timeman.close", {"USER_ID": 3, "TIME": "2026-03-10T22:30:00+00:00", "REPORT": "r"})
    assert (status, answer["error"]) == (400, "WRONG_DATETIME")
    assert portal.days[3]["STATUS"] == "OPENED"


# -- 6. TIME formats as PHP's ATOM parsing takes them --------------------------------------------------------
@pytest.mark.parametrize("sent", ["2026-03-10T17:00:00Z", "2026-03-10T20:00:00+0300", "2026-03-10T20:00:00+03"])
def test_time_formats_php_accepts(make_portal, sent):
    portal = make_portal(users=3, now=fixed(datetime(2026, 3, 10, 20, 30, tzinfo=MSK)), opened=False)
    day_at(portal, 2, datetime(2026, 3, 10, 9, 0, tzinfo=MSK))
    status, answer = send(portal, "timeman.close", {"USER_ID": 2, "TIME": sent, "REPORT": "r"})
    assert status == 200, answer
    assert answer["result"]["TIME_FINISH"] == "2026-03-10T20:00:00+03:00"


@pytest.mark.parametrize(
    "sent", ["2026-03-10T20:00:00", "2026-03-10T20:00:00.5+03:00", "2026-03-10 20:00:00+03:00", "2026-03-10", 20]
)
def test_time_formats_php_refuses(make_portal, sent):
    portal = make_portal(users=3, now=fixed(datetime(2026, 3, 10, 20, 30, tzinfo=MSK)), opened=False)
    day_at(portal, 2, datetime(2026, 3, 10, 9, 0, tzinfo=MSK))
    status, answer = send(portal, "timeman.close", {"USER_ID": 2, "TIME": sent, "REPORT": "r"})
    assert (status, answer["error"]) == (400, "WRONG_DATETIME_FORMAT")


# -- 7. settings' ADMIN; pause on a forgotten day --------------------------------------------------------
def test_settings_say_admin_only_for_the_callers_own(portal):
    assert send(portal, "timeman.settings")[1]["result"]["ADMIN"] is True
    assert "ADMIN" not in send(portal, "timeman.settings", {"USER_ID": 5})[1]["result"]
    assert send(portal, "timeman.settings", user=5)[1]["result"]["ADMIN"] is False


def test_pause_on_an_expired_day_answers_the_status_unchanged(make_portal):
    portal = make_portal(users=3, now=fixed(datetime(2026, 3, 10, 12, 0, tzinfo=MSK)), opened=False)
    day_at(portal, 2, datetime(2026, 3, 9, 9, 0, tzinfo=MSK))
    before = send(portal, "timeman.status", {"USER_ID": 2})[1]["result"]
    status, answer = send(portal, "timeman.pause", {"USER_ID": 2})
    assert status == 200 and answer["result"] == before
    assert before["STATUS"] == "EXPIRED" and "TIME_FINISH_DEFAULT" in before


# -- 8. user.get: every filter works or is refused --------------------------------------------------------
@pytest.mark.parametrize(
    "body, ids",
    [
        ({"FILTER": {"ID": 5}}, [5]),
        ({"filter": {"ID": "5"}}, [5]),
        ({"FILTER": {"ID": [5, 7]}}, [5, 7]),
        ({"FILTER": {"@ID": [7, 5]}}, [5, 7]),
        ({"FILTER": {">ID": 115}}, [116, 117, 118, 119, 120]),
        ({"FILTER": {">=ID": 119, "ACTIVE": True}}, [119]),
        ({"FILTER": {"<ID": 3}}, [1, 2]),
        ({"FILTER": {"!ID": 1, "<=ID": 3}}, [2, 3]),
        ({"FILTER": {"!@ID": [1, 2], "<ID": 5}}, [3, 4]),
        ({"FILTER": {"ACTIVE": False}}, [120]),
        ({"FILTER": {"ACTIVE": "N"}}, [120]),
        ({"FILTER": {"%LAST_NAME": "11", "<ID": 112}}, [11, 110, 111]),
        ({"FILTER": {"=%LAST_NAME": "11%", "<ID": 112}}, [11, 110, 111]),
        ({"FILTER": {"USER_TYPE": "extranet"}}, []),
        ({"ID": 5}, [5]),  # the older form: the fields beside the parameters
        ({"FILTER": {"ID": 5}, "sort": "ID", "order": "DESC"}, [5]),
        ({"FILTER": {">ID": 117}, "order": {"ID": "DESC"}}, [120, 119, 118]),
    ],
)
def test_user_get_filters_apply(make_portal, body, ids):
    portal = make_portal(users=120)
    portal.inactive.add(120)
    status, answer = send(portal, "user.get", body)
    assert status == 200, answer
    assert [int(u["ID"]) for u in answer["result"]] == ids


@pytest.mark.parametrize(
    "body", [{"FILTER": {"EMAIL": "a@b.c"}}, {"FILTER": {"UF_DEPARTMENT": 1}}, {"FILTER": ["ID"]}, {"sort": "EMAIL"}]
)
def test_user_get_refuses_a_filter_it_cannot_apply(portal, body):
    status, answer = send(portal, "user.get", body)
    assert status == 400 and answer["error"] in ("INVALID_FILTER", "INVALID_ARG_VALUE")


def test_user_get_filters_in_a_form_body_a_query_and_a_batch(portal):
    assert [u["ID"] for u in send(portal, "user.get", form="FILTER[ID]=5")[1]["result"]] == ["5"]
    assert [u["ID"] for u in send(portal, "user.get", query="FILTER%5B%3EID%5D=298")[1]["result"]] == ["299", "300"]
    batch = send(portal, "batch", {"cmd": {"a": "user.get?FILTER[ID]=7&FILTER[ACTIVE]=true"}})[1]["result"]
    assert [u["ID"] for u in batch["result"]["a"]] == ["7"]


def test_user_get_start_rounds_down_to_a_page(portal):
    answer = send(portal, "user.get", {"start": 70})[1]
    assert answer["result"][0]["ID"] == "51" and len(answer["result"]) == 50
    assert answer["next"] == 100 and answer["total"] == 300


# -- 9. batch as the docs describe it -----------------------------------------------------------------
def test_batch_past_50_commands_ends_the_rest_with_length_exceeded(portal):
    cmd = {f"c{i}": "server.time" for i in range(53)}
    status, answer = send(portal, "batch", {"halt": 0, "cmd": cmd})
    result = answer["result"]
    assert status == 200 and len(result["result"]) == 50
    assert set(result["result_error"]) == {"c50", "c51", "c52"}
    assert result["result_error"]["c51"] == {
        "error": "ERROR_BATCH_LENGTH_EXCEEDED",
        "error_description": "Max batch length exceeded",
    }
    assert set(result["result_time"]) == {f"c{i}" for i in range(50)}


def test_a_nested_batch_is_refused_per_command(portal):
    status, answer = send(portal, "batch", {"cmd": {"in": "batch?cmd[a]=server.time", "ok": "server.time"}})
    result = answer["result"]
    assert status == 200 and result["result_error"]["in"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"
    assert list(result["result"]) == ["ok"] and list(result["result_time"]) == ["ok"]


def test_batch_takes_cmd_as_a_list_and_times_only_what_succeeded(portal):
    status, answer = send(portal, "batch", {"cmd": ["timeman.status?USER_ID=2", "timeman.status?USER_ID=99999"]})
    result = answer["result"]
    assert status == 200
    assert result["result"] == [{**portal.days[2]}]  # PHP writes the array [0 => ...] as a list
    assert list(result["result_error"]) == ["1"]
    assert isinstance(result["result_time"], list) and len(result["result_time"]) == 1  # [0 => ...] again


def test_batch_passes_an_answer_on_to_a_later_command(portal):
    """The docs' linked calls: `$result[key][field]` in a later command is that value of an earlier answer."""
    cmd = {
        "first": "user.get?FILTER[>ID]=10&SORT=ID&ORDER=ASC&start=-1",
        "next": "user.get?FILTER[>ID]=$result[first][49][ID]&start=-1",
        "none": "user.get?FILTER[ID]=$result[nope][0][ID]",
    }
    result = send(portal, "batch", {"cmd": cmd})[1]["result"]["result"]
    assert result["first"][-1]["ID"] == "60" and result["next"][0]["ID"] == "61"
    assert result["none"] == []


def test_batch_with_the_documented_error_example_shape(portal):
    """All commands fail: every map empty is [] (PHP), result_time too."""
    status, answer = send(portal, "batch", {"cmd": {"a": "nope.nope"}, "halt": 1})
    assert status == 200
    assert answer["result"]["result"] == [] and answer["result"]["result_time"] == []


# -- 10. the limits of a cloud portal ----------------------------------------------------------------
def test_the_time_block_carries_the_operating_time(portal):
    answer = send(portal, "timeman.status", {"USER_ID": 2})[1]
    assert answer["time"]["operating"] > 0 and answer["time"]["operating_reset_at"] > answer["time"]["start"]


def test_a_method_past_its_operating_time_gets_429_until_the_oldest_basket_resets(make_portal):
    now = [1_800_000_000.0]
    portal = make_portal(users=5, clock=lambda: now[0])
    who = f"webhook 1/{portal.code}"
    portal.charge(who, "timeman.status", 300)
    now[0] += 120
    portal.charge(who, "timeman.status", 181)  # 481 s in the last 10 minutes
    status, answer = send(portal, "timeman.status")
    assert (status, answer["error"]) == (429, "OPERATION_TIME_LIMIT")
    assert send(portal, "timeman.settings")[0] == 200  # other methods go on
    assert send(portal, "timeman.status", user=2)[0] == 200  # ... and other webhooks
    now[0] += OPERATING_WINDOW - 120  # the first basket (300 s) leaves the count
    status, answer = send(portal, "timeman.status")
    assert status == 200 and 181 <= answer["time"]["operating"] < 182
    assert answer["time"]["operating_reset_at"] == int(1_800_000_000 + 120 + OPERATING_WINDOW)


def _limited(make_portal, monkeypatch, reset_in: float):
    """A sandbox on a fake clock where timeman.status of webhook 1 is past its operating time, with the
    oldest basket leaving the count in `reset_in` seconds; an oint RestClient that has seen one answer
    of that method (so it knows operating_reset_at), whose waits move the fake clock."""
    import types

    from oint_py.net import transport
    from oint_py.net.transport import Client
    from oint_py.rest import retry
    from oint_py.rest.client import RestClient
    from oint_py.settings import Settings

    now = [1_800_000_000.0]  # 2027-01-15 08:00:00 UTC
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds

    fake = types.SimpleNamespace(sleep=sleep, monotonic=lambda: now[0], time=lambda: now[0])
    monkeypatch.setattr(transport, "time", fake)
    monkeypatch.setattr(
        retry, "time", types.SimpleNamespace(time=lambda: now[0], gmtime=time.gmtime, strftime=time.strftime)
    )
    portal = make_portal(users=5, clock=lambda: now[0])
    client = RestClient(Client(Settings(), portal.base))
    url = portal.webhook() + "timeman.status"
    assert client.call(url, {"USER_ID": "2"}).kind == "ok"
    portal.charge(f"webhook 1/{portal.code}", "timeman.status", 481)
    now[0] += OPERATING_WINDOW - reset_in
    return client, url, waits


def test_oint_waits_for_operating_reset_at_within_its_bounds(make_portal, monkeypatch):
    client, url, waits = _limited(make_portal, monkeypatch, reset_in=30)
    answer = client.call(url, {"USER_ID": "2"})
    assert answer.kind == "ok" and answer.body["result"]["STATUS"] == "OPENED"
    assert 29 <= max(waits) <= 30
    assert client.waited == [
        "the portal's operating time limit for timeman.status was reached: waited 30 s for it to reset "
        "(time.operating_reset_at)"
    ]


def test_oint_stops_with_the_time_to_retry_past_its_bounds(make_portal, monkeypatch):
    client, url, waits = _limited(make_portal, monkeypatch, reset_in=300)
    answer = client.call(url, {"USER_ID": "2"})
    assert answer.kind == "failed" and answer.code == 429 and not waits
    assert answer.problem.endswith(
        "(the method's operating time limit on the portal resets at 08:10:00 UTC: retry then)"
    )


def test_oint_meeting_the_operating_limit_first_exits_4_saying_when(make_portal, monkeypatch):
    from conftest import ConsoleScript, clock_without_sleep

    from oint_py.net import transport

    monkeypatch.setattr(transport, "time", clock_without_sleep())
    portal = make_portal(users=5)
    portal.charge(f"webhook 1/{portal.code}", "timeman.status", 481)
    r = cli_runner().invoke(ConsoleScript(), ["bitrix24", "GetTimekeepingStatus", "--url", portal.webhook()])
    assert r.exit_code == 4
    assert "OPERATION_TIME_LIMIT" in r.stderr and "lets calls through within 10 minutes" in r.stderr
    assert len(portal.calls("timeman.status")) == 4  # 1 + the default 3 retries


def test_oint_sandbox_has_the_cloud_rate_limit_unless_off():
    from oint_py.sandbox.command import sandbox

    assert sandbox.make_context("sandbox", []).params["rate_limit"] == (50.0, 2.0)
    assert sandbox.make_context("sandbox", ["--rate-limit", "off"]).params["rate_limit"] is None
    assert sandbox.make_context("sandbox", ["--rate-limit", "250/5"]).params["rate_limit"] == (250.0, 5.0)


# -- 11. ACTIVE is the supervisor's confirmation; LAT/LON; the OAuth state ------------------------------------
def test_active_is_the_confirmation_not_whether_the_day_runs(make_portal):
    portal = make_portal(users=5, now=fixed(datetime(2026, 3, 10, 18, 0, tzinfo=MSK)), opened=False)
    day_at(portal, 2, datetime(2026, 3, 10, 9, 0, tzinfo=MSK))
    day_at(portal, 3, datetime(2026, 3, 10, 9, 0, tzinfo=MSK))
    closed = send(portal, "timeman.close", {"USER_ID": 2})[1]["result"]
    assert closed["STATUS"] == "CLOSED" and closed["ACTIVE"] is True  # a close now needs no confirmation
    late = send(portal, "timeman.close", {"USER_ID": 3, "TIME": "2026-03-10T16:00:00+03:00", "REPORT": "r"})[1]
    assert late["result"]["ACTIVE"] is False  # two hours back: awaits the supervisor
    opened = send(portal, "timeman.open", {"USER_ID": 4})[1]["result"]
    assert opened["ACTIVE"] is True
    assert send(portal, "timeman.pause", {"USER_ID": 4})[1]["result"]["ACTIVE"] is True


def test_an_expired_day_keeps_its_confirmation(make_portal):
    portal = make_portal(users=3, now=fixed(datetime(2026, 3, 10, 12, 0, tzinfo=MSK)), opened=False)
    day_at(portal, 2, datetime(2026, 3, 9, 9, 0, tzinfo=MSK))
    assert send(portal, "timeman.status", {"USER_ID": 2})[1]["result"]["ACTIVE"] is True


def test_lat_and_lon_are_stored_and_returned(make_portal):
    portal = make_portal(users=3, opened=False)
    opened = send(portal, "timeman.open", {"USER_ID": 2, "LAT": 53.548841, "LON": "9.987274"})[1]["result"]
    assert (opened["LAT_OPEN"], opened["LON_OPEN"]) == (53.548841, 9.987274)
    closed = send(portal, "timeman.close", {"USER_ID": 2, "LAT": -33.9, "LON": 18.4})[1]["result"]
    assert (closed["LAT_CLOSE"], closed["LON_CLOSE"], closed["LAT_OPEN"]) == (-33.9, 18.4, 53.548841)
    status = send(portal, "timeman.status", {"USER_ID": 2})[1]["result"]
    assert status["LAT_CLOSE"] == -33.9


def test_the_authorize_redirect_echoes_state(portal):
    resp = httpx.get(
        f"{portal.base}/oauth/authorize/", params={"client_id": portal.oauth.client_id, "state": "x y&z=1"}
    )
    assert resp.status_code == 302
    query = parse_qs(urlsplit(resp.headers["location"]).query)
    assert query["state"] == ["x y&z=1"] and query["code"]


# -- 12. the sandbox's help says what it does -------------------------------------------------------------
def test_the_forgotten_scenario_is_as_its_help_says(make_portal):
    from conftest import ConsoleScript

    shown = " ".join(cli_runner().invoke(ConsoleScript(), ["sandbox", "--help"]).output.split())
    assert "listed by user.get with ACTIVE false, left out by FILTER[ACTIVE]=true" in shown
    assert "--rate-limit" in shown and "50/2" in shown
    portal = make_portal(users=100, scenario="forgotten")
    everyone = send(portal, "user.get", {"start": 0})[1]
    active = send(portal, "user.get", {"FILTER": {"ACTIVE": True}})[1]
    assert everyone["total"] == 100 and active["total"] == 100 - len(portal.inactive) == 98
    assert {u["ACTIVE"] for u in everyone["result"]} == {True, False}


# -- peers: fast-bitrix24 runs unmodified against the sandbox -----------------------------------------------
def test_fast_bitrix24_lists_and_closes_through_the_sandbox(make_portal):
    fast_bitrix24 = pytest.importorskip("fast_bitrix24", reason="the test extra installs fast-bitrix24")
    portal = make_portal(users=130)
    portal.inactive.add(130)
    b = fast_bitrix24.Bitrix(portal.webhook(), verbose=False, ssl=False)
    users = b.get_all("user.get", {"FILTER": {"ACTIVE": True}})
    assert sorted(int(u["ID"]) for u in users) == list(range(1, 130))
    closed = b.call("timeman.close", [{"USER_ID": uid} for uid in (2, 3, 4)])
    assert [r["STATUS"] for r in closed] == ["CLOSED"] * 3
    assert all(portal.days[uid]["STATUS"] == "CLOSED" for uid in (2, 3, 4))


def test_b24pysdk_lists_users_by_filter_and_by_its_fast_id_paging(make_portal, certs):
    """The official SDK's own ways of listing users (a FILTER, the classic pages, the `>ID` window with
    start=-1 that as_list_fast sends) give exactly the sandbox's users."""
    import subprocess
    import sys

    from conftest import clean_env
    from test_tls_proxy import _b24pysdk_imports

    if not _b24pysdk_imports():
        pytest.skip("b24pysdk does not import on this Python")
    portal = make_portal(users=120, certfile=str(certs["cert"]), keyfile=str(certs["key"]))
    portal.inactive.add(7)
    script = (
        "from b24pysdk import BitrixWebhook, Client\n"
        "import json, sys\n"
        "client = Client(BitrixWebhook(domain=sys.argv[1], webhook_token=sys.argv[2]))\n"
        "print(json.dumps([u['ID'] for u in client.user.get(filter={'ID': 5}, admin_mode=True).result]))\n"
        "print(json.dumps([u['ID'] for u in client.user.get(filter={'ACTIVE': True}).as_list().result]))\n"
        "print(json.dumps([u['ID'] for u in client.user.get(filter={'ACTIVE': True}).as_list_fast().result]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, portal.base.split("://")[1], f"1/{portal.code}"],
        capture_output=True,
        text=True,
        env=clean_env(REQUESTS_CA_BUNDLE=str(certs["ca"])),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    one, paged, fast = (json.loads(line) for line in proc.stdout.splitlines())
    active = [str(uid) for uid in range(1, 121) if uid != 7]
    assert one == ["5"] and paged == active and sorted(fast, key=int) == active
    assert any(c["params"].get("start") == -1 for c in portal.calls("user.get"))


def _raw(portal, request: bytes) -> tuple[int, dict]:
    """One request as bytes on a socket of its own; (status, the answer's JSON)."""
    import socket

    with socket.create_connection(("127.0.0.1", portal.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    if not data.startswith(b"HTTP/"):  # a request with no version is HTTP/0.9's: its answer has no head
        return 400, json.loads(data)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower(), head
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"PUT /rest/1/x/timeman.status HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        b"DELETE /rest/1/x/timeman.status HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
    ],
    ids=["PUT", "DELETE", "no request line", "URI over 64 KiB"],
)
def test_what_the_http_server_refuses_itself_is_json_too(portal, request_bytes):
    """A review found them: the standard library's own refusals were HTML pages, not the JSON every answer
    of the sandbox (and of a portal) is."""
    status, answer = _raw(portal, request_bytes)
    assert status >= 400 and answer["error"] == f"HTTP_{status}", answer


def test_a_batch_command_nested_past_php_s_limit_is_dropped_not_a_crash(portal):
    """PHP drops a variable nested deeper than max_input_nesting_level (64); the sandbox recursed 50,000 levels
    and answered 500 "sandbox bug: RecursionError"."""
    deep = "FILTER" + "[x]" * 50000 + "=1"
    status, answer = send(portal, "batch", {"cmd": {"a": f"user.get?{deep}"}})
    assert status == 200, answer
    assert "a" in answer["result"]["result"], answer
