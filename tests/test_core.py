"""Unit tests of the HTTP core with httpx.MockTransport, and of the ways out of
the program that a portal cannot provoke (internal errors, Ctrl-C, a closed pipe)."""

import email.utils
import json
import os
import signal
import subprocess
import time

import httpx
import pytest
from conftest import OINT, SECRET_TOKEN, ConsoleScript, clean_env, cli_runner, clock_without_sleep

from oint_py import bounds
from oint_py.net import transport
from oint_py.net.transport import Client, LeakyBucket
from oint_py.outcome import ExitStatus, Outcome, RequestFailure, UsageError
from oint_py.parse.call import endpoint as parse_endpoint
from oint_py.redact import Redactor
from oint_py.rest import retry
from oint_py.rest.answer import Answer, classify
from oint_py.rest.client import RestClient
from oint_py.rest.retry import retry_after
from oint_py.run import execute
from oint_py.settings import Settings


def endpoint(url, token):
    return parse_endpoint(url, token, Redactor())


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(transport, "time", clock_without_sleep())


def client_with(handler, moves_with=None, **settings) -> tuple[RestClient, list[httpx.Request]]:
    seen = []

    def record(request):
        seen.append(request)
        answer = handler(request, len(seen))  # as from a socket: a body not yet read
        return httpx.Response(answer.status_code, headers=answer.headers, stream=httpx.ByteStream(answer.content))

    return RestClient(
        Client(Settings(**settings), "https://p/", transport=httpx.MockTransport(record), moves_with=moves_with)
    ), seen


def send(client, ep, rest, params, **kwargs):
    return client.call(ep.url(rest), ep.payload(params), **kwargs)


def test_endpoint_forms():
    assert endpoint("https://p.bitrix24.by/rest/1/abc123/", None).base == "https://p.bitrix24.by/rest/1/abc123/"
    assert endpoint("p.bitrix24.by/rest/1/abc123", None).base == "https://p.bitrix24.by/rest/1/abc123/"
    assert (
        endpoint("http://intranet.local:8080/rest/5/abc123/x.json", None).base
        == "http://intranet.local:8080/rest/5/abc123/"
    )
    ep = endpoint("p.bitrix24.by", "tok")
    assert (ep.base, ep.token) == ("https://p.bitrix24.by/rest/", "tok")
    for bad in ("p.bitrix24.by", "https://p/rest/x/abc/", "mailto:x", "https://", "https://p /rest/1/a/"):
        with pytest.raises(UsageError):
            endpoint(bad, None)


@pytest.mark.parametrize(
    "body,kind",
    [
        (b'{"result": {"STATUS": "CLOSED"}}', "ok"),
        (b'{"result": null}', "ok"),
        (b'{"error": "X", "error_description": "y"}', "api_error"),
        (b'{"something": 1}', "failed"),
        (b"[1,2]", "failed"),
        (b"", "failed"),
        (b"null", "failed"),
        (b"<html>oops</html>", "failed"),
        (b'{"result": ', "failed"),
        (b"\xff\xfe", "failed"),
    ],
)
def test_classify(body, kind):
    assert classify(200, body, "application/json")[1] == kind


def test_retry_after_forms():
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after": "-5"}) == 0.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < retry_after({"retry-after": later}) <= 30


def test_backoff_grows_and_is_capped():
    assert all(0.125 <= retry.backoff(0) <= 0.25 for _ in range(50))
    assert all(retry.backoff(20) <= bounds.BACKOFF_CAP for _ in range(50))
    waits = [retry.backoff(attempt, jitter=1.0) for attempt in range(8)]
    assert waits == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_leaky_bucket_waits_only_past_its_burst(monkeypatch):
    waits = []
    monkeypatch.setattr(transport, "time", clock_without_sleep(waits.append))
    bucket = LeakyBucket(capacity=3, rate=1)  # drains slowly: a loaded machine between calls cannot empty it
    assert [bucket.acquire() for _ in range(3)] == [0, 0, 0]
    assert bucket.acquire() > 0 and waits


def test_retries_503_then_returns_the_result():
    def handler(request, n):
        if n < 3:
            return httpx.Response(503, json={"error": "QUERY_LIMIT_EXCEEDED"})
        return httpx.Response(200, json={"result": {"STATUS": "CLOSED"}})

    client, seen = client_with(handler)
    answer = send(client, endpoint("https://p/rest/1/abcd/", None), "timeman.close", {"USER_ID": "1", "TIME": ""})
    assert answer.kind == "ok" and len(seen) == 3
    assert json.loads(seen[0].content) == {"USER_ID": "1"}
    assert seen[0].headers["content-type"] == "application/json; charset=utf-8"


def test_400_is_not_retried():
    client, seen = client_with(lambda r, n: httpx.Response(400, json={"error": "REPORT_NEEDED"}))
    answer = send(client, endpoint("https://p/rest/1/abcd/", None), "timeman.close", {})
    assert answer.kind == "api_error" and len(seen) == 1


def test_connection_errors_exhaust_into_request_failure():
    def handler(request, n):
        raise httpx.ConnectError("refused", request=request)

    client, seen = client_with(handler, retries=2)
    with pytest.raises(RequestFailure, match=r"cannot connect.*\[3 attempts\]"):
        send(client, endpoint("https://p/rest/1/abcd/", None), "timeman.status", {})
    assert len(seen) == 3


def test_redirect_within_the_origin_reposts_the_same_body_with_the_token():
    def handler(request, n):
        if n == 1:
            return httpx.Response(308, headers={"Location": "/new/rest/timeman.close"})
        return httpx.Response(200, json={"result": True})

    client, seen = client_with(handler)
    send(client, endpoint("p", SECRET_TOKEN), "timeman.close", {"USER_ID": "3"})
    assert [r.method for r in seen] == ["POST", "POST"]
    assert str(seen[1].url) == "https://p/new/rest/timeman.close"
    assert json.loads(seen[1].content) == {"USER_ID": "3", "auth": SECRET_TOKEN}


@pytest.mark.parametrize(
    "location",
    [
        "https://moved.example/rest/timeman.close",
        "https://p:8443/rest/timeman.close",
        "http://p/rest/timeman.close",
        "https://P.:443/x",
    ],
)
def test_redirect_to_another_origin_is_not_followed(location):
    def handler(request, n):
        return httpx.Response(302, headers={"Location": location})

    client, seen = client_with(handler)
    if location.endswith("/x"):  # the same origin spelled differently is followed
        with pytest.raises(RequestFailure, match="more than 5 redirects"):
            send(client, endpoint("p", SECRET_TOKEN), "timeman.close", {})
        return
    with pytest.raises(RequestFailure, match="moved|refused a redirect"):
        send(client, endpoint("p", SECRET_TOKEN), "timeman.close", {"USER_ID": "3"})
    assert len(seen) == 1


@pytest.mark.parametrize(
    "location,followed",
    [
        ("https://q.example/rest/1/abcd/timeman.close", True),  # the portal's own move, webhook path and all
        ("http://q.example/rest/1/abcd/timeman.close", False),  # https never drops to http
        ("https://q.example/rest/1/abcdX/timeman.close", False),  # another webhook's path
        ("https://q.example/other/rest/1/abcd/timeman.close", False),
    ],
)
def test_a_webhook_follows_only_a_move_that_keeps_its_path_over_https(location, followed):
    def handler(request, n):
        if n == 1:
            return httpx.Response(301, headers={"Location": location})
        return httpx.Response(200, json={"result": True})

    client, seen = client_with(handler, moves_with="/rest/1/abcd/")
    ep = endpoint("https://p/rest/1/abcd/", None)
    if followed:
        answer = send(client, ep, "timeman.close", {"USER_ID": "3"})
        assert answer.kind == "ok" and client.moved == "https://q.example"
        assert [str(r.url) for r in seen] == ["https://p/rest/1/abcd/timeman.close", location]
        assert json.loads(seen[1].content) == {"USER_ID": "3"}
    else:
        with pytest.raises(RequestFailure, match="moved|refused a redirect"):
            send(client, ep, "timeman.close", {"USER_ID": "3"})
        assert len(seen) == 1


def test_confirm_stops_a_resend_after_an_ambiguous_failure():
    def handler(request, n):
        raise httpx.ReadTimeout("late", request=request)

    client, seen = client_with(handler)
    done = Answer(200, {}, {"result": {"STATUS": "PAUSED"}}, "u")
    answer = send(client, endpoint("https://p/rest/1/abcd/", None), "timeman.pause", {}, confirm=lambda p: done)
    assert answer is done and len(seen) == 1


def test_an_internal_error_is_one_masked_line_and_exit_99(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError(f"bug near {SECRET_TOKEN}")

    monkeypatch.setattr(execute, "execute", boom)
    result = cli_runner().invoke(
        ConsoleScript(), ["bitrix24", "StopTimekeeping", "--url", "p", "--token", SECRET_TOKEN]
    )
    assert result.exit_code == 99
    assert result.stderr == "oint: internal error: RuntimeError: bug near ***\n"


@pytest.mark.skipif(os.name == "nt", reason="SIGINT cannot be sent to a console process this way on Windows")
def test_ctrl_c_exits_130(portal):
    portal.inject("slow:10")
    proc = subprocess.Popen(
        [*OINT, "bitrix24", "StopTimekeeping", "--url", portal.webhook()],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while not portal.calls() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert b"interrupted" in err and b"Traceback" not in err


def test_a_reader_that_leaves_early_does_not_change_the_exit_code(portal):
    """`oint ... | head -c 1`: the reader is gone before the answer is written."""
    portal.inject("slow:0.5")
    proc = subprocess.Popen(
        [*OINT, "bitrix24", "GetTimekeepingStatus", "--url", portal.webhook()],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # nobody reads: the write meets a closed pipe
    err = proc.stderr.read()
    assert proc.wait(timeout=30) == 0
    assert err == b""


def test_out_is_never_half_written_and_the_answer_is_not_lost(tmp_path, monkeypatch, capfdbinary):
    """A write that fails midway (disk full) leaves the previous file whole and no
    debris; the answer goes to stdout instead, and the status says it was not written."""
    from oint_py.output import render as output

    target = tmp_path / "result.json"
    target.write_text("OLD", encoding="utf-8")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output.os, "fsync", disk_full)
    status = output.render(Outcome(ExitStatus.API_ERROR, {"result": {"STATUS": "CLOSED"}}), out=str(target))
    assert status == ExitStatus.NOT_WRITTEN
    assert target.read_text(encoding="utf-8") == "OLD"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
    out, err = capfdbinary.readouterr()
    assert json.loads(out) == {"result": {"STATUS": "CLOSED"}}
    assert b"No space left on device" in err and b"the call was made" in err


def test_a_call_survives_its_trip_to_a_background_job():
    """jobs.py hands the child call.to_json() on a pipe: the child's Call is the same call."""
    from oint_py.methods import BY_KEY
    from oint_py.model import Call
    from oint_py.parse.call import parse

    call = parse(
        BY_KEY["stoptimekeeping"],
        {"--url": "https://p/rest/1/abcd/", "--userid": "3,4", "--time": "2026-05-26T10:00:00+03:00", "--report": "x"},
        {"retries": "2", "adv_response": True, "max_answer": "1M"},
        if_needed=True,
        debug=True,
        redactor=Redactor().adding("abcd"),
    )
    back = Call.from_json(json.loads(json.dumps(call.to_json())))
    assert back == call
