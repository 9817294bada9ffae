"""What goes on the wire, checked at a real loopback portal."""

import json

import pytest
from conftest import assert_no_secret, oint_on, run_oint


def test_webhook_call_posts_json_with_user_id_as_string(portal):
    r = oint_on(portal, "--userid", 5)
    assert r.code == 0, r.err
    assert r.json()["result"]["STATUS"] == "CLOSED"
    (call,) = portal.calls()
    assert call["verb"] == "POST"
    assert call["path"] == f"/rest/1/{portal.code}/timeman.close"
    assert call["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert call["params"] == {"USER_ID": "5"}  # empty TIME/REPORT left out


def test_webhook_url_without_trailing_slash_or_with_a_method(portal):
    for url in (portal.webhook().rstrip("/"), portal.webhook() + "profile.json"):
        r = run_oint("bitrix24", "GetTimekeepingStatus", "--url", url)
        assert r.code == 0, r.err
    assert {c["path"] for c in portal.calls()} == {f"/rest/1/{portal.code}/timeman.status"}


def test_token_auth_goes_in_the_body(portal):
    host = portal.base.split("://")[1]
    r = run_oint("bitrix24", "StopTimekeeping", "--url", f"http://{host}", "--userid", 2, "--token", portal.token)
    assert r.code == 0, r.err
    (call,) = portal.calls()
    assert call["path"] == "/rest/timeman.close"
    assert call["params"] == {"USER_ID": "2", "auth": portal.token}


@pytest.mark.parametrize("token,error", [("wrong-token-123", "invalid_token"), ("expired-token", "expired_token")])
def test_bad_tokens_are_api_errors(portal, token, error):
    r = run_oint("bitrix24", "StopTimekeeping", "--url", portal.base, "--token", token)
    assert r.code == 3
    assert r.json()["error"] == error
    assert len(portal.calls()) == 1  # a 401 is never retried


def test_bare_domain_means_https(portal):
    host = portal.base.split("://")[1]
    r = run_oint("bitrix24", "StopTimekeeping", "--url", host, "--token", portal.token, "--test")
    assert r.json()["requests"][0]["url"] == f"https://{host}/rest/timeman.close"


def test_wrong_webhook_code_is_401_and_not_retried(portal):
    r = run_oint("bitrix24", "StopTimekeeping", "--url", portal.base + "/rest/1/wrongcode/")
    assert r.code == 3
    assert r.json()["error"] == "INVALID_CREDENTIALS"
    assert len(portal.calls()) == 1


def test_another_users_day_needs_admin_rights(portal):
    r = run_oint("bitrix24", "StopTimekeeping", "--url", portal.webhook(user=7), "--userid", 8)
    assert r.code == 3
    assert "does not have access" in r.json()["error_description"]
    assert "does not have access" in r.err  # one line on stderr too


def test_unknown_user(portal):
    r = oint_on(portal, "--userid", 99999)
    assert r.code == 3
    assert r.json() == {"error": "", "error_description": "User not found"}


def test_adv_response_prints_code_body_headers(portal):
    r = oint_on(portal, "--adv-response")
    assert r.code == 0
    data = r.json()
    assert set(data) == {"code", "body", "headers"}
    assert data["code"] == 200
    assert data["body"]["result"]["STATUS"] == "CLOSED"
    assert data["headers"]["content-type"].startswith("application/json")


def test_adv_response_keeps_the_exit_code_of_an_api_error(portal):
    r = oint_on(portal, "--userid", 99999, "--adv-response")
    assert r.code == 3
    assert r.json()["code"] == 400


def test_test_flag_sends_nothing_and_masks_secrets(portal):
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.base,
        "--token",
        portal.token,
        "--userid",
        3,
        "--report",
        "Отгул",
        "--test",
    )
    assert r.code == 0
    assert portal.calls() == []
    body = r.json()["requests"][0]["body"]
    assert body == {"USER_ID": "3", "REPORT": "Отгул", "auth": "***"}
    assert_no_secret(r.out, r.err)


def test_debug_logs_the_exchange_with_secrets_masked(portal):
    r = oint_on(portal, "--debug")
    assert r.code == 0
    assert "> POST" in r.err and "/rest/1/***/timeman.close" in r.err and "< HTTP 200" in r.err
    assert_no_secret(r.err, r.out)
    r = run_oint("bitrix24", "StopTimekeeping", "--url", portal.base, "--token", portal.token, "--debug", "--userid", 4)
    assert '"auth": "***"' in r.err
    assert_no_secret(r.err)


def test_secrets_from_environment(portal):
    r = run_oint(
        "bitrix24", "StopTimekeeping", "--userid", 6, OINT_BITRIX24_URL=portal.base, OINT_BITRIX24_TOKEN=portal.token
    )
    assert r.code == 0, r.err
    assert portal.calls()[0]["params"]["auth"] == portal.token


def test_error_messages_never_show_the_webhook_code(portal):
    url = f"http://127.0.0.1:1/rest/1/{portal.code}/"  # nothing listens on port 1
    r = run_oint("bitrix24", "StopTimekeeping", "--url", url, "--retries", 0)
    assert r.code == 4
    assert "cannot connect" in r.err
    assert_no_secret(r.err, r.out)
    assert json.loads(r.out)["error"] == "REQUEST_FAILED"
