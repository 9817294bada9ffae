"""Retries, timeouts, redirects and answers that are not Bitrix24 JSON."""

import re

from conftest import assert_no_secret, oint_on, run_oint


def close(portal, *extra, url=None):
    return run_oint("bitrix24", "StopTimekeeping", "--url", url or portal.webhook(), "--userid", 1, *extra)


def test_503_burst_is_retried_until_it_passes(portal):
    portal.inject("status:503", "status:503")
    r = close(portal, "--retries", 3)
    assert r.code == 0, r.err
    assert len(portal.calls("timeman.close")) == 3


def test_500_is_retried(portal):
    portal.inject("status:500")
    r = close(portal)
    assert r.code == 0, r.err
    assert len(portal.calls()) >= 2


def test_retries_exhausted_is_a_request_failure_with_the_last_answer(portal):
    portal.inject(*["status:503"] * 5)
    r = close(portal, "--retries", 2)
    assert r.code == 4
    assert r.json()["error"] == "QUERY_LIMIT_EXCEEDED"
    assert "[3 attempts]" in r.err
    assert len(portal.calls()) == 3


def test_retries_zero_sends_once(portal):
    portal.inject("status:503")
    r = close(portal, "--retries", 0)
    assert r.code == 4
    assert len(portal.calls()) == 1


def test_business_errors_are_never_retried(portal):
    r = close(portal, "--time", "now")  # REPORT_NEEDED, a 400
    assert r.code == 3
    assert len(portal.calls()) == 1


def test_retry_after_is_honoured(portal):
    portal.inject("retry-after:1")
    r = close(portal, "--debug")
    assert r.code == 0
    waited = float(re.search(r"retry 1/3 in ([\d.]+) s", r.err).group(1))
    assert waited >= 1.0


def test_retry_after_beyond_the_cap_stops_retrying(portal):
    portal.inject("retry-after:3600")
    r = close(portal)
    assert r.code == 4
    assert "asked to wait 3600 s" in r.err
    assert len(portal.calls()) == 1


def test_slow_close_whose_status_cannot_be_read_is_never_sent_twice(portal):
    """The close times out (the portal may have applied it) and so does the status
    check: nobody can tell, so oint does not re-send; exit 4 says how to check."""
    portal.inject("slow:3", "slow:3", "slow:3")  # close, the status check after it, (a second close)
    r = close(portal, "--timeout", "0.5", "--retries", 3)
    assert r.code == 4
    assert "no whole answer within --timeout 0.5 s" in r.err
    assert "it was not sent again" in r.err and "GetTimekeepingStatus" in r.err
    assert r.json()["error"] == "OUTCOME_UNKNOWN"
    assert len(portal.calls("timeman.close")) == 1
    assert len(portal.calls("timeman.status")) == 1


def test_slow_status_read_is_retried_after_its_timeout(portal):
    portal.inject("slow:3")
    r = oint_on(portal, "--timeout", "0.5", method="GetTimekeepingStatus")
    assert r.code == 0, r.err  # idempotent: re-sent without a status check
    assert len(portal.calls("timeman.status")) == 2


def test_connection_reset_is_retried(portal):
    portal.inject("reset")
    r = close(portal)
    assert r.code == 0, r.err
    assert len(portal.calls("timeman.close")) == 2
    assert len(portal.calls("timeman.status")) == 1  # the day was still open: safe to re-send


def test_html_error_page_is_reported_not_crashed(portal):
    portal.inject(*["html:502"] * 4)
    r = oint_on(portal, "--retries", 0, "--adv-response", method="GetTimekeepingStatus")
    assert r.code == 4
    assert "HTTP 502 with text/html, not JSON: 502 Bad Gateway" in r.err
    data = r.json()
    assert data["code"] == 502 and "<html>" in data["body"]
    assert "Traceback" not in r.err


def test_html_error_page_on_a_close_with_no_readable_status_is_an_unknown_outcome(portal):
    portal.inject(*["html:502"] * 4)
    r = close(portal, "--retries", 3)
    assert r.code == 4
    assert "HTTP 502 with text/html" in r.err and "not sent again" in r.err
    assert r.json()["error"] == "OUTCOME_UNKNOWN"
    assert len(portal.calls("timeman.close")) == 1


def test_html_page_with_200_is_a_failure_checked_by_status(portal):
    """A 200 that is not Bitrix24 JSON: the close may have been applied, so the status is read
    (here: still open, so the close is reported failed and not re-sent)."""
    portal.inject("html:200")
    r = close(portal)
    assert r.code == 4
    assert [c["method"] for c in portal.calls()] == ["timeman.close", "timeman.status"]


def test_empty_and_truncated_bodies(portal):
    portal.inject("empty:200")
    r = close(portal)
    assert r.code == 4 and "empty body" in r.err
    portal.inject("truncated:200")
    r = close(portal)
    assert r.code == 4 and "not JSON" in r.err
    assert "Traceback" not in r.err


def test_portal_moved_within_its_origin_is_followed_by_reposting_the_same_body(portal):
    portal.redirect_to = portal.base + "/moved"
    for status in (301, 302, 307, 308):
        portal.redirect_status = status
        r = oint_on(portal, "--userid", 9, method="GetTimekeepingStatus")
        assert r.code == 0, (status, r.err)
    moved = [c for c in portal.calls("timeman.status") if c["path"].startswith("/moved/")]
    assert [c["verb"] for c in moved] == ["POST"] * 4
    assert all(c["params"] == {"USER_ID": "9"} for c in moved)


def test_token_portal_moved_to_another_origin_gets_no_credentials(make_portal):
    """A redirect to another host or port would carry the token (in the body): it is not
    followed; the line names the new address."""
    new = make_portal()
    old = make_portal()
    old.redirect_to = new.base
    r = run_oint("bitrix24", "StopTimekeeping", "--url", old.base, "--token", old.token, "--userid", 9)
    assert r.code == 4
    assert f"the portal moved to {new.base}/rest/" in r.err and "update --url" in r.err
    assert new.calls() == []
    assert len(old.calls()) == 1
    assert_no_secret(r.err, r.out)


def test_webhook_portal_move_that_keeps_the_webhook_path_is_followed_with_a_warning(make_portal):
    """Bitrix24 portals that change address answer with the new one, webhook path and all: the
    code goes nowhere the portal did not already send it. Followed, with one line to update --url."""
    new = make_portal()
    old = make_portal()
    old.redirect_to = new.base
    r = oint_on(old, "--userid", 9)
    assert r.code == 0, r.err
    assert r.err.strip().splitlines() == [f"oint: the portal moved to {new.base}/rest/1/***/: update --url"]
    assert [c["method"] for c in new.calls()] == ["timeman.close"]
    assert new.calls()[0]["params"] == {"USER_ID": "9"}
    assert len(old.calls()) == 1
    assert_no_secret(r.err, r.out)


def test_webhook_portal_move_that_drops_the_webhook_path_is_not_followed(make_portal):
    new = make_portal()
    old = make_portal()
    old.redirect_to = new.base + "/elsewhere"
    r = oint_on(old, "--userid", 9)
    assert r.code == 4
    assert f"the portal moved to {new.base}/elsewhere/rest/1/***/" in r.err and "not followed" in r.err
    assert new.calls() == []
    assert_no_secret(r.err, r.out)


def test_see_other_is_fetched_with_get_and_never_reposted(portal):
    """303: the portal took the close and points at its answer. One close, then a GET without a body."""
    portal.inject("see-other")
    r = close(portal)
    assert r.code == 0, r.err
    assert [c["verb"] for c in portal.calls()] == ["POST", "GET"]
    assert len(portal.calls("timeman.close")) == 1
    assert portal.calls("timeman.status")[0]["params"] == {}
    assert r.json()["result"]["STATUS"] == "CLOSED"


def test_redirect_loop_gives_up_after_5_hops(portal):
    portal.redirect_to = portal.base
    r = close(portal)
    assert r.code == 4
    assert "more than 5 redirects" in r.err
    assert len(portal.calls()) == 6
    assert_no_secret(r.err)


def test_redirect_from_https_to_http_is_refused(tls_portal, make_portal, certs):
    plain = make_portal()
    tls_portal.redirect_to = plain.base
    r = run_oint("bitrix24", "StopTimekeeping", "--url", tls_portal.webhook(), "--ca-bundle", certs["ca"])
    assert r.code == 4
    assert "refused a redirect from https" in r.err
    assert plain.calls() == []
    assert_no_secret(r.err)
