"""OAuth apps that run unattended: oint's GetAppAuthLink, GetToken, RefreshToken
and ServerTime, and an auth file that renews itself safely (issue 15).

Every test runs `oint` as a process against the sandbox, which plays both the
portal and Bitrix24's OAuth server (single-use refresh tokens that revoke the
access token issued with them, access tokens living `token_ttl` seconds)."""

import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import time
import types
from collections import Counter
from pathlib import Path

import httpx
import pytest
from conftest import IN_PROCESS, OINT, ROOT, clean_env, run_oint, wait_for

from oint_py.auth import authfile
from oint_py.sandbox.oauth import CLIENT_ID, CLIENT_SECRET

POSIX = os.name != "nt"
REAUTH_STEPS = ("GetAppAuthLink", "GetToken", "--save")


def app_env(portal, **extra) -> dict:
    """The app's id and secret in the environment, as the README tells cron users to keep them."""
    return clean_env(
        OINT_BITRIX24_CLIENT_ID=CLIENT_ID,
        OINT_BITRIX24_CLIENT_SECRET=CLIENT_SECRET,
        **{"OINT_BITRIX24_OAUTH_SERVER": portal.base, **extra},
    )


HOOKS = Path(__file__).parent / "stagehooks"  # test-only faults and pauses, from outside oint (its sitecustomize)


def staged(portal, **extra) -> dict:
    """app_env with tests/stagehooks first on PYTHONPATH: STAGE_* variables pause, kill or fail the child
    at named stages (see tests/stagehooks/sitecustomize.py)."""
    env = app_env(portal, **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(HOOKS), env["PYTHONPATH"]])
    return env


def browser_code(portal) -> str:
    """The browser step: the portal's authorize page redirects to the app's page with a code."""
    r = httpx.get(f"{portal.base}/oauth/authorize/", params={"client_id": CLIENT_ID})
    assert r.status_code == 302
    return httpx.URL(r.headers["location"]).params["code"]


def authorize(portal, path: Path) -> dict:
    """GetToken --code ... --save PATH, as a person does it once."""
    r = run_oint("bitrix24", "GetToken", "--code", browser_code(portal), "--save", path, env=app_env(portal))
    assert r.code == 0, r.err
    return json.loads(path.read_text())


def oint_auth(portal, path, *args, method="StopTimekeeping", process=False, **env) -> "Result":  # noqa: F821
    hooked = any(name.startswith("STAGE_") for name in env)  # the stage hooks are a child's sitecustomize
    env = (staged if hooked else app_env)(portal, **env)
    return run_oint("bitrix24", method, "--auth-file", path, *args, env=env, process=process or hooked)


def wait_past(expires: float) -> None:
    """Sleep until the stored expiry has passed (on this machine's clock, which the sandbox shares)."""
    time.sleep(max(0.0, expires - time.time()) + 0.1)


@pytest.fixture
def folder(tmp_path):
    private = tmp_path / "auth"
    private.mkdir(mode=0o700)
    return private


# -- the sandbox as an OAuth server ---------------------------------------------------
def test_sandbox_plays_the_oauth_server(make_portal):
    portal = make_portal(token_ttl=1)
    grant = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    code = browser_code(portal)
    first = httpx.get(
        f"{portal.base}/oauth/token/", params={**grant, "grant_type": "authorization_code", "code": code}
    ).json()
    assert first["client_endpoint"] == portal.base + "/rest/" and first["expires_in"] == 1
    again = httpx.get(f"{portal.base}/oauth/token/", params={**grant, "grant_type": "authorization_code", "code": code})
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")  # a code is good once
    call = lambda token: httpx.post(f"{portal.base}/rest/server.time", json={"auth": token})
    assert call(first["access_token"]).status_code == 200
    time.sleep(1.1)
    assert (call(first["access_token"]).status_code, call(first["access_token"]).json()["error"]) == (
        401,
        "expired_token",
    )
    refresh = {**grant, "grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    second = httpx.get(f"{portal.base}/oauth/token/", params=refresh).json()
    assert call(second["access_token"]).status_code == 200
    reused = httpx.get(f"{portal.base}/oauth/token/", params=refresh)
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")  # single-use
    wrong = httpx.get(f"{portal.base}/oauth/token/", params={**refresh, "client_secret": "nope"})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    # using a refresh token revokes the access token issued with it
    third = httpx.get(
        f"{portal.base}/oauth/token/", params={**refresh, "refresh_token": second["refresh_token"]}
    ).json()
    assert call(second["access_token"]).json()["error"] == "invalid_token"
    assert call(third["access_token"]).status_code == 200
    assert portal.oauth.counts["refreshes"] == 2 and httpx.get(f"{portal.base}/sandbox/stats").json()["refreshes"] == 2


def test_sandbox_prints_its_app_at_start():
    proc = subprocess.run(
        [*OINT, "sandbox", "--port", "0", "--token-ttl", "5", "--stop-after", "0.5", "--rate-limit", "off"],
        capture_output=True,
        timeout=30,
        env=clean_env(),
    )
    facts = json.loads(proc.stdout.decode().splitlines()[0])
    assert facts["client_id"] == CLIENT_ID and facts["client_secret"] == CLIENT_SECRET
    assert facts["token_ttl"] == 5 and facts["auth_link"].endswith(f"/oauth/authorize/?client_id={CLIENT_ID}")


# -- oint's four commands ------------------------------------------------------------------
@pytest.mark.parametrize(
    "domain",
    [
        "b24-ar17wx.bitrix24.by",
        "https://b24-ar17wx.bitrix24.by",
        "https://b24-ar17wx.bitrix24.by/",
        "b24-ar17wx.bitrix24.by/",
    ],
)
def test_get_app_auth_link(domain):
    r = run_oint("bitrix24", "GetAppAuthLink", "--domain", domain, "--clientid", "local.abc.123")
    assert (r.code, r.out, r.err) == (
        0,
        "https://b24-ar17wx.bitrix24.by/oauth/authorize/?client_id=local.abc.123\n",
        "",
    )


def test_get_token_prints_the_answer_as_oint(portal):
    r = run_oint(
        "bitrix24",
        "gettoken",
        "--clientid",
        CLIENT_ID,
        "--clientsecret",
        CLIENT_SECRET,
        "--code",
        browser_code(portal),
        "--oauth-server",
        portal.base,
    )
    assert r.code == 0, r.err
    answer = r.json()
    assert answer["access_token"] and answer["refresh_token"] and answer["client_endpoint"] == portal.base + "/rest/"
    # RefreshToken takes the refresh token and prints the new pair; the used one is refused after
    env = app_env(portal)
    r2 = run_oint("bitrix24", "RefreshToken", "--refresh", answer["refresh_token"], env=env)
    assert r2.code == 0 and r2.json()["refresh_token"] != answer["refresh_token"]
    r3 = run_oint("bitrix24", "RefreshToken", "--refresh", answer["refresh_token"], env=env)
    assert r3.code == 3 and r3.json()["error"] == "invalid_grant" and "invalid_grant" in r3.err


@pytest.mark.parametrize(
    "fault,error",
    [
        ("error:wrong_client:200", "wrong_client"),
        ("error:invalid_client:401", "invalid_client"),
        ("error:invalid_request:400", "invalid_request"),
    ],
)
def test_oauth_errors_exit_3_also_with_http_200(portal, fault, error):
    portal.inject(fault)
    r = run_oint("bitrix24", "GetToken", "--code", "whatever", env=app_env(portal))
    assert r.code == 3 and r.json()["error"] == error and error in r.err


def test_server_time(portal):
    r = run_oint("bitrix24", "ServerTime", "--url", portal.webhook())
    assert r.code == 0 and "T" in r.json()["result"]
    r = run_oint("bitrix24", "ServerTime", "--url", portal.base, "--token", "unknown-token-1234")
    assert r.code == 3 and r.json()["error"] == "invalid_token"  # plain --token: as before, exit 3


def test_listing_of_existing_methods_unchanged():
    r = run_oint("bitrix24")
    assert r.out.startswith(
        "oint bitrix24: Bitrix24: REST API of Bitrix24 portals (webhooks and OAuth tokens)\n\nUsage:\n"
        "  oint bitrix24 METHOD --option value ...\n\nTimekeeping:\n"
        "  StartTimekeeping        Starts or resumes user timekeeping (timeman.open)\n"
        "  StopTimekeeping         Stops user timekeeping (timeman.close)\n"
        "  PauseTimekeeping        Pauses user timekeeping (timeman.pause)\n"
        "  GetTimekeepingStatus    Gets user timekeeping status (timeman.status)\n"
        "  GetTimekeepingSettings  Gets user timekeeping settings (timeman.settings)\n\n"
    )
    for name in ("GetAppAuthLink", "GetToken", "RefreshToken", "ServerTime", "AuthStatus"):
        assert f"  {name}  " in r.out
        page = run_oint("bitrix24", name, "--help")
        assert page.code == 0 and "7    a person must authorise the app again" in page.out


# -- the auth file -----------------------------------------------------------------------------
def test_save_writes_a_private_file_and_prints_no_secret(portal, folder):
    path = folder / "portal.json"
    code = browser_code(portal)
    env = app_env(portal)
    proc = (
        subprocess.run(
            [
                "sh",
                "-c",
                'umask 000; exec "$@"',
                "sh",
                *OINT,
                "bitrix24",
                "GetToken",
                "--code",
                code,
                "--save",
                str(path),
            ],
            capture_output=True,
            env=env,
            timeout=60,
        )
        if POSIX
        else None
    )
    if proc is None:
        pytest.skip("umask is POSIX")
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    for key in (
        "access_token",
        "refresh_token",
        "client_id",
        "client_secret",
        "oauth_server",
        "client_endpoint",
        "member_id",
        "expires",
    ):
        assert data[key], key
    shown = proc.stdout.decode() + proc.stderr.decode()
    for secret in (data["access_token"], data["refresh_token"], CLIENT_SECRET, code):
        assert secret not in shown


@pytest.mark.skipif(not POSIX, reason="owners and modes are POSIX")
def test_unsafe_places_are_refused(portal, tmp_path, folder):
    path = folder / "a.json"
    authorize(portal, path)
    before = path.read_bytes()
    open_folder = tmp_path / "open"
    open_folder.mkdir()
    open_folder.chmod(0o777)
    r = run_oint("bitrix24", "GetToken", "--code", "x", "--save", open_folder / "a.json", env=app_env(portal))
    assert r.code == 5 and str(open_folder) in r.err and "open to writing by group or others" in r.err
    link = folder / "link.json"
    link.symlink_to(path)
    r = oint_auth(portal, link, method="ServerTime")
    assert r.code == 5 and "symbolic link" in r.err and str(link) in r.err
    path.chmod(0o644)
    r = oint_auth(portal, path, method="ServerTime")
    assert r.code == 5 and "chmod 600" in r.err
    path.chmod(0o600)
    linked_folder = tmp_path / "via"
    linked_folder.symlink_to(folder)
    r = oint_auth(portal, linked_folder / "a.json", method="ServerTime")
    assert r.code == 5 and "symbolic link" in r.err
    assert path.read_bytes() == before


@pytest.mark.skipif(not POSIX, reason="owners and modes are POSIX")
@pytest.mark.parametrize("above", ["open", "open/mine"])
def test_an_auth_folder_under_a_folder_others_can_write_is_refused(portal, tmp_path, above):
    """Private like the jobs folder: another user who can write to a folder above the auth file's can
    rename the private folder away and put one of theirs in its place between oint's check and its
    open, and have oint read their auth file or write the renewed pair (and the app's secret) into it."""
    path = tmp_path / "open" / "mine" / "auth" / "a.json"
    path.parent.mkdir(parents=True, mode=0o700)
    authorize(portal, path)
    before = path.read_bytes()
    (tmp_path / above).chmod(0o777)
    for r in (
        oint_auth(portal, path, method="ServerTime"),
        run_oint("bitrix24", "GetToken", "--code", "x", "--save", path, env=app_env(portal)),
        run_oint("bitrix24", "AuthStatus", "--auth-file", path),
    ):
        assert r.code == 5 and str(tmp_path / above) in r.err and "group or others" in r.err, r.err
        assert "keep the auth file in a folder under private ones" in r.err, r.err  # no variable names it
    assert path.read_bytes() == before and portal.oauth.counts["code_grants"] == 1


def test_token_and_auth_file_together_is_a_usage_error(portal, folder):
    path = folder / "a.json"
    authorize(portal, path)
    r = oint_auth(portal, path, "--token", "abcdefgh", method="ServerTime")
    assert r.code == 5 and "--token and --auth-file" in r.err
    r = oint_auth(portal, path, method="ServerTime", OINT_BITRIX24_TOKEN="abcdefgh")
    assert r.code == 5


def test_a_webhook_and_an_auth_file_together_is_a_usage_error(portal, folder):
    """A webhook URL is a credential too: with an auth file (say OINT_BITRIX24_AUTH_FILE exported for the
    cron jobs) its code was dropped without a word and the call made with the app's token, as the app's
    user: StopTimekeeping without --userid closed another person's day than the webhook's."""
    path = folder / "a.json"
    authorize(portal, path)
    r = run_oint(
        "bitrix24", "StopTimekeeping", "--url", portal.webhook(7), env=clean_env(OINT_BITRIX24_AUTH_FILE=str(path))
    )
    assert r.code == 5 and "webhook" in r.err and "auth" in r.err, r.err
    r = oint_auth(portal, path, method="ServerTime", OINT_BITRIX24_URL=portal.webhook(7))
    assert r.code == 5 and "webhook" in r.err, r.err
    assert portal.calls("timeman.close") == [] and portal.calls("server.time") == []
    assert oint_auth(portal, path, "--url", portal.base, method="ServerTime").code == 0  # a portal address: fine


@pytest.mark.parametrize(
    "content,named",
    [
        ("not json {", "not valid JSON"),
        ('{"access_token": "a"}', "lacks refresh_token, client_id, client_secret, oauth_server, client_endpoint"),
        (None, "has a refresh token but no client_secret"),
        ({"client_endpoint": "ftp://portal.example/rest/"}, "client_endpoint 'ftp://portal.example/rest/' is not an"),
    ],
)
def test_damaged_auth_file_exits_5_and_is_never_overwritten(portal, folder, content, named):
    path = folder / "a.json"
    data = authorize(portal, path)
    if content is None:
        del data["client_secret"]
        content = json.dumps(data)
    elif isinstance(content, dict):  # a field changed by hand
        content = json.dumps({**data, **content})
    path.write_text(content)
    r = oint_auth(portal, path, "--userid", "2")
    assert r.code == 5 and str(path) in r.err and named in r.err, r.err
    assert path.read_text() == content
    assert portal.calls("timeman.close") == []


def test_auth_status_shows_the_chain_and_no_secret(portal, folder):
    path = folder / "a.json"
    data = authorize(portal, path)
    r = run_oint("bitrix24", "AuthStatus", "--auth-file", path)
    assert r.code == 0, r.err
    shown = r.json()
    assert shown["portal"] == portal.base + "/rest/" and shown["member_id"] == data["member_id"]
    assert shown["oauth_server"] == portal.base and shown["user_id"] == 1 and "timeman" in shown["scope"]
    assert shown["refresh_token_days_left"] == 180 and shown["access_token_expired"] is False
    for secret in (data["access_token"], data["refresh_token"], CLIENT_SECRET):
        assert secret not in r.out + r.err
    requests = len(portal.requests)
    again = run_oint("bitrix24", "AuthStatus", env=clean_env(OINT_BITRIX24_AUTH_FILE=str(path)))
    assert again.code == 0 and again.json() == shown  # the file from the environment, called bare as cron does
    assert len(portal.requests) == requests  # sends nothing


# -- renewing only when needed ------------------------------------------------------------------
def test_24_runs_renew_exactly_at_the_expirations_met(make_portal, folder, monkeypatch):
    """Done-when 1: --token-ttl 2, past expiry before every fourth run. In process the wall clock of
    oint's auth file code and of the sandbox's OAuth server is one injected clock, moved past the expiry
    instead of waited for; as processes (OINT_TESTS_IN_PROCESS=0) the test sleeps."""
    portal = make_portal(token_ttl=2)
    path = folder / "a.json"
    clock = [time.time()]
    if IN_PROCESS:
        portal.oauth.clock = lambda: clock[0]
        monkeypatch.setattr(
            "oint_py.auth.authfile.time",
            types.SimpleNamespace(time=lambda: clock[0], sleep=time.sleep, monotonic=time.monotonic),
        )
    authorize(portal, path)
    changed, slept = 0, 0
    for run in range(24):
        if run % 4 == 3:
            expires = json.loads(path.read_text())["expires"]
            if IN_PROCESS:
                clock[0] = max(clock[0], expires) + 0.1
            else:
                wait_past(expires)
            slept += 1
        before = json.loads(path.read_text())["access_token"]
        refreshes = portal.oauth.counts["refreshes"]
        r = oint_auth(portal, path, "--userid", str(run + 1))
        assert r.code == 0, (run, r.err)
        after = portal.oauth.counts["refreshes"]
        assert after - refreshes <= 1  # a run renews at most once
        if json.loads(path.read_text())["access_token"] != before:
            changed += 1
            assert after - refreshes == 1
        elif run % 4 == 3:
            pytest.fail(f"run {run} met an expired token and did not renew it")
    assert portal.oauth.counts["refreshes"] == changed >= slept
    assert portal.oauth.counts["early_refreshes"] == 0  # never renewed a token that was still good
    assert portal.oauth.counts["refused"] == 0
    assert len(portal.calls("timeman.close")) >= 24


@pytest.mark.skipif(not IN_PROCESS, reason="the exact second needs the injected clock")
def test_at_the_second_the_token_expires_it_is_renewed_before_the_call(make_portal, folder, monkeypatch):
    """The stored expiry is the first moment the token no longer works (the portal refuses it from then on):
    a run at that very moment renews first and sends its call once, never a call the portal refuses with
    expired_token and then again."""
    portal = make_portal(token_ttl=2)
    path = folder / "a.json"
    clock = [time.time()]
    portal.oauth.clock = lambda: clock[0]
    monkeypatch.setattr(
        "oint_py.auth.authfile.time",
        types.SimpleNamespace(time=lambda: clock[0], sleep=time.sleep, monotonic=time.monotonic),
    )
    data = authorize(portal, path)
    clock[0] = data["expires_local"]  # neither before nor after: exactly then
    r = oint_auth(portal, path, "--userid", "5")
    assert r.code == 0, r.err
    assert portal.oauth.counts["refreshes"] == 1 and portal.oauth.counts["early_refreshes"] == 0
    assert len(portal.calls("timeman.close")) == 1, r.err  # sent once, with the renewed token


def test_expired_token_answer_renews_and_resends_once(portal, folder):
    """The stored expiry says valid, the portal says expired_token: renew, then send the call once more."""
    path = folder / "a.json"
    data = authorize(portal, path)
    portal.oauth.access[data["access_token"]]["expires"] = 0  # the portal's clock says it expired
    r = oint_auth(portal, path, "--userid", "5", "--debug")
    assert r.code == 0, r.err
    assert portal.oauth.counts["refreshes"] == 1
    assert [c["params"].get("USER_ID") for c in portal.calls("timeman.close")] == ["5", "5"]  # refused, then sent
    assert "expired_token" in r.err


def test_eight_processes_on_an_expired_token_make_one_refresh(make_portal, folder):
    """Done-when 2: 8 processes started together meet an expired token; one renews, the others use its pair."""
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    authorize(portal, path)
    wait_past(json.loads(path.read_text())["expires"])
    portal.oauth.ttl = 3600  # the renewed token lives long enough for every process to use it
    env = staged(portal, STAGE_PAUSE_AT="before-request:1.5")  # whoever renews holds the lock a while
    procs = [
        subprocess.Popen(
            [*OINT, "bitrix24", "StopTimekeeping", "--auth-file", str(path), "--userid", str(uid)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for uid in range(10, 18)
    ]
    results = [(p.wait(timeout=120), p.stderr.read().decode()) for p in procs]
    assert [code for code, _ in results] == [0] * 8, results
    assert portal.oauth.counts["refreshes"] == 1
    assert {c["params"].get("USER_ID") for c in portal.calls("timeman.close")} == {str(u) for u in range(10, 18)}
    assert oint_auth(portal, path, method="ServerTime").code == 0  # the file is valid and live afterwards


@pytest.mark.parametrize("users", ["2", "2,3"])
def test_a_renewal_during_the_status_check_resends_with_the_new_token(portal, folder, users):
    """A close whose connection dropped is checked with timeman.status before it is sent again; that read
    meets expired_token and the token is renewed. The close sent again must carry the new token: with the
    one the renewal revoked, the portal answers invalid_token, and the run ended with exit 7 (a person
    must authorise the app again) on a chain that was fine, the day left open."""
    path = folder / "a.json"
    authorize(portal, path)
    portal.inject("reset", "error:expired_token:401")  # the close: dropped unapplied; the status read: expired
    r = oint_auth(portal, path, "--userid", users)
    assert r.code == 0, r.err
    assert portal.oauth.counts["refreshes"] == 1
    assert all(portal.days[int(uid)]["STATUS"] == "CLOSED" for uid in users.split(","))


def paused_close(portal, path, stage: str, **popen) -> subprocess.Popen:
    """StopTimekeeping --auth-file for user 4, started and run until it pauses at `stage` ("NAME:SECONDS")."""
    proc = subprocess.Popen(
        [*OINT, "bitrix24", "StopTimekeeping", "--auth-file", str(path), "--userid", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=staged(portal, STAGE_PAUSE_AT=stage),
        **popen,
    )
    name = stage.partition(":")[0]
    assert proc.stderr.readline() == f"test hook: paused at {name}\n".encode()
    return proc


def test_a_token_another_process_renewed_meanwhile_is_taken_from_the_file(portal, folder):
    """A read the file, B renewed it (which revokes A's token): A's call answers invalid_token, and A
    takes B's pair from the file and sends the call once more, instead of asking a person (exit 7)."""
    path = folder / "a.json"
    data = authorize(portal, path)
    portal.oauth.access[data["access_token"]]["expires"] = 0  # the portal says expired; the file does not know
    slow = paused_close(portal, path, "loaded:2")  # it has read the file
    assert oint_auth(portal, path, "--userid", "5").code == 0  # renews: the slow one's token is revoked
    assert slow.wait(timeout=60) == 0, slow.stderr.read().decode()
    assert portal.oauth.counts["refreshes"] == 1
    errors = [c for c in portal.requests if c["method"] == "timeman.close"]
    assert len(errors) == 4  # each: refused once, sent once more


def _injected_clock(portal, monkeypatch) -> list[float]:
    """One wall clock for oint's auth file code and the sandbox's OAuth server, moved by the test (in process)."""
    clock = [time.time()]
    portal.oauth.clock = lambda: clock[0]
    monkeypatch.setattr(
        "oint_py.auth.authfile.time",
        types.SimpleNamespace(time=lambda: clock[0], sleep=time.sleep, monotonic=time.monotonic),
    )
    return clock


def _meanwhile(monkeypatch, action) -> None:
    """In process: `action()` runs once, when the run has read the auth file and before it sends anything:
    what another process does between the two, at that named moment instead of after a sleep."""
    made, done = authfile.Renewing.__init__, []

    def init(self, *args, **kwargs):
        made(self, *args, **kwargs)
        if not done:
            done.append(action())

    monkeypatch.setattr(authfile.Renewing, "__init__", init)


def _renewed_by_another_run(portal, data: dict) -> dict:
    """What another oint's renewal of `data` makes (its refresh revokes `data`'s access token)."""
    grant = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    r = httpx.get(f"{portal.base}/oauth/token/", params={**grant, "refresh_token": data["refresh_token"]})
    assert r.status_code == 200, r.text
    return authfile.compose(r.json(), CLIENT_ID, CLIENT_SECRET, data["oauth_server"], old=data)


@pytest.mark.skipif(not IN_PROCESS, reason="another run's renewal at a named moment, in this process")
@pytest.mark.parametrize("order", ["sorts before", "sorts after"])
def test_a_pair_another_run_saved_meanwhile_is_used_however_its_token_compares(make_portal, folder, monkeypatch, order):
    """The stored expiry has passed; before this run takes the lock, another renews and saves a new pair.
    This run uses that pair and renews nothing (renewing a live pair is what Bitrix24 may block an app
    for), whether the new access token sorts before or after the one it read."""
    portal = make_portal(token_ttl=2)
    path = folder / "a.json"
    clock = _injected_clock(portal, monkeypatch)
    data = authorize(portal, path)
    clock[0] = data["expires_local"] + 1
    portal.oauth.ttl = 3600

    by_hand: list[int] = []

    def another_run() -> None:
        pair = data
        for _ in range(64):  # each token is random: one that sorts as wanted comes within a few
            pair = _renewed_by_another_run(portal, pair)
            if (pair["access_token"] < data["access_token"]) == (order == "sorts before"):
                break
        authfile.save(str(path), pair)
        by_hand.append(portal.oauth.counts["refreshes"])

    _meanwhile(monkeypatch, another_run)
    r = oint_auth(portal, path, "--userid", "5")
    assert r.code == 0, r.err
    saved = json.loads(path.read_text())
    assert (saved["access_token"] < data["access_token"]) == (order == "sorts before")
    assert by_hand and portal.oauth.counts["refreshes"] == by_hand[0]  # this run renewed nothing
    assert [c["params"].get("USER_ID") for c in portal.calls("timeman.close")] == ["5"]
    assert portal.oauth.access[saved["access_token"]]["revoked"] is False  # the pair in the file still works


@pytest.mark.skipif(not IN_PROCESS, reason="another run's renewal at a named moment, in this process")
def test_a_pair_another_run_could_only_keep_aside_is_moved_into_the_file(portal, folder, monkeypatch):
    """This run has read the auth file; meanwhile another renews (which revokes this run's token) but can only
    keep the new pair in `<file>.pending`. This run's call is answered invalid_token: it moves the pending
    pair into the file, sends once more and exits 0, for the auth file holds the live pair again."""
    path = folder / "a.json"
    data = authorize(portal, path)
    kept: dict = {}

    def another_run() -> None:
        kept.update(_renewed_by_another_run(portal, data))
        authfile.save(authfile.pending(str(path)), kept)

    _meanwhile(monkeypatch, another_run)
    r = oint_auth(portal, path, "--userid", "5")
    assert r.code == 0, r.err
    assert "was moved into it" in r.err, r.err
    assert json.loads(path.read_text())["access_token"] == kept["access_token"]
    assert not os.path.lexists(authfile.pending(str(path)))
    assert [c["params"].get("USER_ID") for c in portal.calls("timeman.close")] == ["5", "5"]  # refused, sent again


def test_a_token_revoked_by_a_renewal_not_yet_saved_waits_for_the_new_pair(portal, folder):
    """A renews: the OAuth server has issued the new pair (which revokes the old access token) and A is
    writing it. B, whose stored expiry says valid, sends with the old token meanwhile and is answered
    invalid_token; the file still holds that token, for A has not saved yet. B must wait for A's lock and
    take the pair A saves, not end with exit 7 (a person must authorise the app again) on a live chain."""
    path = folder / "a.json"
    data = authorize(portal, path)
    portal.oauth.access[data["access_token"]]["expires"] = 0  # the portal says expired; the file does not know
    renewer = paused_close(portal, path, "after-answer:2")  # issued, not saved
    r = oint_auth(portal, path, "--userid", "5")
    assert r.code == 0, r.err
    assert renewer.wait(timeout=60) == 0, renewer.stderr.read().decode()
    assert portal.oauth.counts["refreshes"] == 1
    assert {c["params"].get("USER_ID") for c in portal.calls("timeman.close")} == {"4", "5"}


@pytest.mark.skipif(not POSIX, reason="SIGTERM, SIGHUP")
@pytest.mark.parametrize(
    "sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, -signal.SIGTERM), (signal.SIGHUP, -signal.SIGHUP)]
)
def test_a_signal_between_a_renewals_answer_and_its_save_waits_for_the_save(portal, folder, sig, code):
    """Ctrl-C, a cron timeout's SIGTERM or a closed terminal while the new pair is in hand but not yet saved
    would lose it for good (the old refresh token is spent): the signal waits for the save, then ends the run
    as it would have, and the next run uses the saved pair instead of asking a person to authorise again."""
    path = folder / "a.json"
    data = authorize(portal, path)
    portal.oauth.access[data["access_token"]]["expires"] = 0  # the portal says expired
    renewer = paused_close(portal, path, "after-answer:1")  # issued, not saved
    renewer.send_signal(sig)
    assert renewer.wait(timeout=60) == code, renewer.stderr.read().decode()
    saved = json.loads(path.read_text())
    assert saved["refresh_token"] != data["refresh_token"]  # the new pair, kept
    r = oint_auth(portal, path, "--userid", "5")
    assert r.code == 0, r.err
    assert portal.oauth.counts["refreshes"] == 1


@pytest.mark.skipif(not POSIX, reason="SIGTERM, SIGHUP")
def test_every_signal_held_during_a_renewal_is_delivered_not_only_the_first(portal, folder):
    """Under nohup (SIGHUP ignored) a closed terminal's SIGHUP, then a cron timeout's SIGTERM, both while the
    new pair is being saved: the SIGHUP is ignored as it would have been, and the SIGTERM must still end the
    run. Re-delivering only the first held signal lost the SIGTERM, and the close was sent after it."""
    path = folder / "a.json"
    data = authorize(portal, path)
    portal.oauth.access[data["access_token"]]["expires"] = 0  # the portal says expired
    renewer = paused_close(
        portal,
        path,
        "after-answer:1",  # issued, not saved
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )
    renewer.send_signal(signal.SIGHUP)
    time.sleep(0.2)
    renewer.send_signal(signal.SIGTERM)
    assert renewer.wait(timeout=60) == -signal.SIGTERM, renewer.stderr.read().decode()
    assert json.loads(path.read_text())["refresh_token"] != data["refresh_token"]  # the new pair, kept
    assert len(portal.calls("timeman.close")) == 1  # the one the expired token was refused for: not sent again


def test_a_clock_far_ahead_does_not_renew_every_run(portal, folder):
    """The stored expiry is read by this machine's clock from expires_in, not the server's `expires`:
    a server clock an hour behind would otherwise make every run renew."""
    path = folder / "a.json"
    data = authorize(portal, path)
    path.write_text(json.dumps({**data, "expires": data["expires"] - 7200}))  # as a server 2 h behind would say
    for uid in (2, 3):
        assert oint_auth(portal, path, "--userid", str(uid)).code == 0
    assert portal.oauth.counts["refreshes"] == 0


def test_a_dead_chain_in_a_background_job_exits_7(portal, folder, tmp_path):
    path = folder / "a.json"
    authorize(portal, path)
    portal.inject("error:NOT_INSTALLED:401")
    r = oint_auth(portal, path, "--userid", "7", "--dontwait", OINT_JOBS_DIR=str(tmp_path / "jobs"))
    assert r.code == 0, r.err
    job = r.json()
    wait_for(job["exit_file"])
    assert Path(job["exit_file"]).read_text().strip() == "7"
    log = Path(job["log_file"]).read_text()
    assert all(step in log for step in REAUTH_STEPS) and "internal error" not in log


def test_a_sweep_renews_at_most_once(make_portal, folder):
    portal = make_portal(token_ttl=1, users=160)
    path = folder / "a.json"
    authorize(portal, path)
    wait_past(json.loads(path.read_text())["expires"])
    portal.oauth.ttl = 3600
    r = oint_auth(portal, path, "--userid", "all", "--if-needed")
    assert r.code == 0, r.err
    assert "160 closed" in r.err
    assert portal.oauth.counts["refreshes"] == 1
    assert len(portal.calls("batch")) >= 5  # pages and closes (sent first): many requests, one renewal


def test_dontwait_job_renews_in_the_background(make_portal, folder, tmp_path):
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    data = authorize(portal, path)
    wait_past(data["expires"])
    jobs = tmp_path / "jobs"
    r = oint_auth(portal, path, "--userid", "7", "--dontwait", OINT_JOBS_DIR=str(jobs))
    assert r.code == 0, r.err
    job = r.json()
    wait_for(job["exit_file"])
    assert Path(job["exit_file"]).read_text().strip() == "0", Path(job["log_file"]).read_text()
    assert portal.oauth.counts["refreshes"] == 1
    new = json.loads(path.read_text())
    for file in jobs.iterdir():
        text = file.read_text()
        for secret in (
            data["access_token"],
            data["refresh_token"],
            new["access_token"],
            new["refresh_token"],
            CLIENT_SECRET,
        ):
            assert secret not in text, file


def test_batch_with_an_auth_file(make_portal, folder):
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    authorize(portal, path)
    wait_past(json.loads(path.read_text())["expires"])
    r = oint_auth(portal, path, "--userid", "1,2,3", method="GetTimekeepingStatus")
    assert r.code == 0 and set(r.json()) == {"1", "2", "3"}
    assert portal.oauth.counts["refreshes"] == 1


# -- a chain that cannot be renewed: exit 7 ------------------------------------------------------------
def _assert_reauthorize(r, path, before: bytes):
    assert r.code == 7, (r.code, r.err)
    assert all(step in r.err for step in REAUTH_STEPS) and str(path) in r.err
    assert r.err.count("\n") == 1  # one paragraph
    assert path.read_bytes() == before
    assert "Traceback" not in r.err


@pytest.mark.parametrize("error", ["NOT_INSTALLED:401", "PAYMENT_REQUIRED:402", "invalid_token:401"])
def test_portal_refusing_the_app_exits_7(portal, folder, error):
    path = folder / "a.json"
    authorize(portal, path)
    before = path.read_bytes()
    portal.inject(f"error:{error}")
    r = oint_auth(portal, path, "--userid", "2")
    _assert_reauthorize(r, path, before)
    assert portal.oauth.counts["refreshes"] == 0  # no retry loop, no renewal attempt


def test_used_refresh_token_exits_7(make_portal, folder):
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    data = authorize(portal, path)
    copy = folder / "copy.json"  # a second machine with a copy of the file: the chain branches
    copy.write_bytes(path.read_bytes())
    copy.chmod(0o600)
    wait_past(data["expires"])
    assert oint_auth(portal, path, "--userid", "2").code == 0
    before = copy.read_bytes()
    r = oint_auth(portal, copy, "--userid", "3")
    _assert_reauthorize(r, copy, before)
    assert "invalid_grant" in r.err
    assert oint_auth(portal, copy, "--userid", "3").code == 7  # still 7, never a loop
    assert portal.oauth.counts["refreshes"] == 1 and portal.oauth.counts["refused"] == 2  # one try a run


def test_wrong_client_secret_exits_7(make_portal, folder):
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    data = authorize(portal, path)
    path.write_text(json.dumps({**data, "client_secret": "not-the-secret"}))
    before = path.read_bytes()
    wait_past(data["expires"])
    r = oint_auth(portal, path, "--userid", "2")
    _assert_reauthorize(r, path, before)
    assert "invalid_client" in r.err


def test_no_auth_found_after_a_renewal_exits_7(portal, folder):
    path = folder / "a.json"
    authorize(portal, path)
    # the call: expired_token; the renewal: answered as usual; the call sent again: NO_AUTH_FOUND
    portal.inject("error:expired_token:401", "none", "error:NO_AUTH_FOUND:401")
    r = oint_auth(portal, path, "--userid", "2")
    assert r.code == 7 and "NO_AUTH_FOUND" in r.err
    assert all(step in r.err for step in REAUTH_STEPS)


# -- crashes ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(not POSIX, reason="SIGKILL")
@pytest.mark.parametrize("stage,issued", [("before-request", False), ("after-answer", True), ("during-write", True)])
def test_kill_at_each_stage_of_a_renewal(make_portal, folder, stage, issued):
    """Done-when 3: the file is whole afterwards; a run after uses it, or, when the new pair was issued
    and never saved, exits 7 with the steps (never 99, never a traceback)."""
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    data = authorize(portal, path)
    wait_past(data["expires"])
    r = oint_auth(portal, path, "--userid", "2", STAGE_KILL_AT=stage)
    assert r.code == -9
    assert json.loads(path.read_text()) == data  # whole, and the old pair
    assert portal.oauth.counts["refreshes"] == (1 if issued else 0)
    left = sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))
    assert left == ([] if stage != "during-write" else [left[0]]) and all(n.startswith(".a.json.") for n in left)
    portal.oauth.ttl = 3600
    r = oint_auth(portal, path, "--userid", "2")
    if issued:
        _assert_reauthorize(r, path, path.read_bytes())
    else:
        assert r.code == 0, r.err
        assert json.loads(path.read_text())["refresh_token"] != data["refresh_token"]
    if stage == "during-write":  # a torn copy of the secrets is not kept: the next write of the file removes it
        authorize(portal, path)  # the person authorises the app again, as exit 7 says
        assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.skipif(not POSIX, reason="SIGKILL")
def test_kill_holding_the_lock_does_not_block_the_next_run(make_portal, folder):
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    wait_past(authorize(portal, path)["expires"])
    assert oint_auth(portal, path, "--userid", "2", STAGE_KILL_AT="before-request").code == -9
    assert oint_auth(portal, path, "--userid", "2").code == 0  # the lock died with its holder


@pytest.mark.skipif(not POSIX, reason="flock")
def test_a_lock_held_too_long_ends_with_a_clear_error(make_portal, folder):
    import fcntl

    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    wait_past(authorize(portal, path)["expires"])
    before = path.read_bytes()
    with open(str(path) + ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a stuck process holds it
        r = oint_auth(portal, path, "--userid", "2", "--timeout", "1")
    assert r.code == 4 and "held its lock" in r.err and "nothing was sent" in r.err, r.err
    assert path.read_bytes() == before and portal.oauth.counts["refreshes"] == 0


@pytest.mark.skipif(not POSIX, reason="owners and modes are POSIX")
def test_a_lock_file_others_can_open_is_refused(make_portal, tmp_path):
    """The renewal lock is flock'd, which needs only a read-only descriptor: a lock file others can read
    (the folder 0755, as allowed) lets another user hold it for ever, and every renewal ends in exit 4.
    Refused like the portal locks: exit 5 naming it, nothing sent."""
    portal = make_portal(token_ttl=1)
    folder = tmp_path / "auth"
    folder.mkdir(mode=0o755)
    path = folder / "a.json"
    wait_past(authorize(portal, path)["expires"])
    before = path.read_bytes()
    lock = Path(str(path) + ".lock")
    lock.touch()
    lock.chmod(0o644)
    r = oint_auth(portal, path, "--userid", "2")
    assert r.code == 5 and str(lock) in r.err, r.err
    assert path.read_bytes() == before and portal.oauth.counts["refreshes"] == 0
    lock.unlink()
    fifo = Path(str(path) + ".lock")
    os.mkfifo(fifo, 0o600)
    r = oint_auth(portal, path, "--userid", "2")
    assert r.code == 5 and str(lock) in r.err, r.err
    fifo.unlink()
    assert oint_auth(portal, path, "--userid", "2").code == 0
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600


@pytest.mark.parametrize("proxied", ["portal", "oauth server"])
def test_a_renewal_takes_the_proxy_the_environment_gives_the_oauth_server(make_portal, folder, proxied):
    """HTTP_PROXY with NO_PROXY naming one of the two hosts: the portal's calls and the renewal each go
    the way the environment says for their own host. The renewal took the portal's: with the portal
    proxied and the OAuth server in NO_PROXY, the query with the client secret and the refresh token
    went to the proxy (in clear text to an http server); with the portal in NO_PROXY (an intranet
    portal) and the OAuth server behind the proxy, the renewal could never connect."""
    from scripted import Script

    def forward(request):
        body = request["body"] if request["verb"] == "POST" else None
        got = httpx.request(request["verb"], request["full"], json=body, trust_env=False)  # not oint's HTTP_PROXY
        return got.status_code, [("Content-Type", got.headers.get("content-type", "application/json"))], got.content

    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    data = authorize(portal, path)
    direct, via = f"http://localhost:{portal.port}", portal.base  # the same sandbox; NO_PROXY lists localhost
    server, rest = (direct, via) if proxied == "portal" else (via, direct)
    path.write_text(json.dumps({**data, "oauth_server": server, "client_endpoint": rest + "/rest/"}))
    wait_past(data["expires"])
    portal.oauth.ttl = 3600
    with Script(forward) as proxy:
        r = oint_auth(portal, path, "--userid", "2", HTTP_PROXY=proxy.base, NO_PROXY="localhost")
        assert r.code == 0, r.err
        seen = [request["full"] for request in proxy.requests]
    assert portal.oauth.counts["refreshes"] == 1
    if proxied == "portal":
        assert seen and all("/rest/" in url for url in seen) and not any(CLIENT_SECRET in url for url in seen)
    else:
        assert len(seen) == 1 and "/oauth/token/" in seen[0]


def test_secrets_on_a_command_line_are_masked_in_errors(portal):
    r = run_oint(
        "bitrix24",
        "GetToken",
        "--clientid",
        CLIENT_ID,
        "--clientsecret",
        CLIENT_SECRET,
        "--code",
        "c0de-c0de-c0de",
        "--oauth-server",
        "ftp://" + CLIENT_SECRET,
    )
    assert r.code == 5 and CLIENT_SECRET not in r.err and "***" in r.err


# -- a lying OAuth server: a clear exit, nothing lost ---------------------------------------------------
@pytest.mark.parametrize(
    "fault,said",
    [
        ("html:503", "text/html, not JSON"),
        ("status:503", "HTTP 503"),
        ("huge:1", "larger than 65,536 bytes"),
        ("empty:200", "not JSON"),
        ("reset", "no whole answer"),
        ("apply-reset", "no whole answer"),
    ],
)
def test_lying_oauth_server_keeps_the_old_file(make_portal, folder, fault, said):
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    wait_past(authorize(portal, path)["expires"])
    before = path.read_bytes()
    portal.inject(fault)
    r = oint_auth(portal, path, "--userid", "2")
    assert r.code == 4, r.err
    assert said in r.err and "may have been used" in r.err and str(path) in r.err
    assert path.read_bytes() == before
    assert portal.calls("timeman.close") == []


def test_endless_oauth_answer_is_cut_by_the_timeout(make_portal, folder):
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    wait_past(authorize(portal, path)["expires"])
    before = path.read_bytes()
    portal.inject("drip:0.2")
    r = oint_auth(portal, path, "--userid", "2", "--timeout", "1.5")
    assert r.code == 4 and "--timeout" in r.err and "may have been used" in r.err, r.err
    assert path.read_bytes() == before


def test_oauth_headers_dripped_are_cut_by_the_timeout(make_portal, folder):
    """--timeout bounds the whole token exchange, headers too: a server that sends its header lines a byte
    at a time, each within the read timeout, held the renewal (and the lock every other run waits on) for
    as long as it liked; only the body was checked against the deadline."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not stop.is_set():
                try:
                    conn.sendall(b"a")
                except OSError:
                    break
                time.sleep(0.2)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    data = authorize(portal, path)
    path.write_text(json.dumps({**data, "oauth_server": f"http://127.0.0.1:{listener.getsockname()[1]}"}))
    before = path.read_bytes()
    wait_past(data["expires"])
    started = time.monotonic()
    try:
        r = run_oint(
            "bitrix24",
            "StopTimekeeping",
            "--auth-file",
            path,
            "--userid",
            "2",
            "--timeout",
            "1.5",
            env=app_env(portal),
            timeout=40,
        )
    finally:
        stop.set()
        listener.close()
    assert r.code == 4 and "may have been used" in r.err, r.err
    assert time.monotonic() - started < 15
    assert path.read_bytes() == before


def test_answer_without_refresh_token_keeps_the_old_one(make_portal, folder):
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    data = authorize(portal, path)
    wait_past(data["expires"])
    portal.inject("no-refresh-token")
    r = oint_auth(portal, path, "--userid", "2")
    assert r.code == 0, r.err
    new = json.loads(path.read_text())
    assert new["refresh_token"] == data["refresh_token"] and new["access_token"] != data["access_token"]


# -- secrets --------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_secrets_never_shown(portal, folder, tmp_path):
    path = folder / "a.json"
    code = browser_code(portal)
    r = run_oint("bitrix24", "GetToken", "--code", code, "--save", path, "--debug", env=app_env(portal))
    data = json.loads(path.read_text())
    shown = [r.out, r.err]
    r = run_oint(
        "bitrix24",
        "GetToken",
        "--clientid",
        CLIENT_ID,
        "--clientsecret",
        CLIENT_SECRET,
        "--code",
        code,
        "--oauth-server",
        portal.base,
        "--test",
    )
    shown += [r.out, r.err]
    r = run_oint(
        "bitrix24",
        "RefreshToken",
        "--refresh",
        data["refresh_token"],
        "--debug",
        "--oauth-server",
        "http://127.0.0.1:1",
        env=app_env(portal),
    )  # an error naming nothing secret
    assert r.code == 4
    shown += [r.out, r.err]
    for args in (["--debug"], ["--test"], ["--userid", "all", "--plan", "--debug"]):
        r = oint_auth(portal, path, *args, method="StartTimekeeping")
        shown += [r.out, r.err]
    portal.oauth.access[data["access_token"]]["expires"] = 0
    r = oint_auth(portal, path, "--userid", "3", "--debug")  # a renewal, logged
    assert r.code == 0
    shown += [r.out, r.err]
    new = json.loads(path.read_text())
    # ps: the command line of a call that is running (held where it has read the auth file)
    proc = subprocess.Popen(
        [*OINT, "bitrix24", "ServerTime", "--auth-file", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=staged(portal, STAGE_PAUSE_AT="loaded:1"),
    )
    assert proc.stderr.readline() == b"test hook: paused at loaded\n"
    shown.append(subprocess.run(["ps", "-eo", "args"], capture_output=True).stdout.decode())
    shown.append(Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace"))
    assert "ServerTime" in shown[-1]
    proc.wait(timeout=60)
    secrets = (
        CLIENT_SECRET,
        code,
        data["access_token"],
        data["refresh_token"],
        new["access_token"],
        new["refresh_token"],
    )
    for text in shown:
        for secret in secrets:
            assert secret not in text
        assert "Traceback" not in text


# -- the README's recipes, run as written against `oint sandbox` as a process of its own -------------------
def _section() -> str:
    return (Path(__file__).parent.parent / "docs" / "oauth.md").read_text(encoding="utf-8")


def _lines(kind: str) -> list[str]:
    return [line for block in re.findall(rf"```{kind}\n(.*?)```", _section(), re.S) for line in block.splitlines()]


def test_the_readme_oauth_recipes_run_against_the_sandbox(tmp_path):
    started = run_oint(
        "sandbox",
        "--port",
        0,
        "--users",
        200,
        "--token-ttl",
        2,
        "--background",
        "--stop-after",
        120,
        "--rate-limit",
        "off",
    )
    assert started.code == 0, started.err
    facts = started.json()
    base = facts["sandbox"]
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = clean_env(HOME=str(home))
    setup = _lines("sh")
    for line in setup:
        if line.startswith("export "):
            name, value = line[len("export ") :].split("=", 1)
            env[name] = value.replace("http://127.0.0.1:8024", base)
    assert (env["OINT_BITRIX24_CLIENT_ID"], env["OINT_BITRIX24_CLIENT_SECRET"]) == (
        facts["client_id"],
        facts["client_secret"],
    )  # the README's app is the sandbox's
    link = None
    for line in setup:
        if line.startswith("mkdir "):
            subprocess.run(["sh", "-c", line], env=env, check=True)
        elif line.startswith("oint "):
            args = shlex.split(line.replace("http://127.0.0.1:8024", base).replace("~", str(home)))
            if "CODE" in args:  # the browser step: open the link, read the code off the app's page
                page = httpx.get(link, follow_redirects=True).text
                args[args.index("CODE")] = re.search(r"code: (\w+)", page).group(1)
            r = run_oint(*args[1:], env=env, process=True)  # a README recipe, as a user runs it
            assert r.code == 0, (line, r.err)
            link = link or r.out.strip()
    auth = home / ".config" / "oint" / "portal.json"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    stored = json.loads(auth.read_text())
    jobs = [line for line in _lines("cron") + _lines("bat") if "oint bitrix24 " in line]
    assert len(jobs) == 2
    for n, line in enumerate(jobs):
        wait_past(json.loads(auth.read_text())["expires"])
        args = shlex.split(line[line.index("oint bitrix24 ") :].replace("\\", "/"))
        args[args.index("--auth-file") + 1] = str(auth)
        out = tmp_path / f"out{n}.json"
        args[args.index("--out") + 1] = str(out)
        if "--quiet" in args:  # the crontab line, as cron runs it: env -i, PATH=/usr/bin:/bin, /bin/sh -c
            program = tmp_path / "bin" / "oint"  # the README's absolute path, moved into this test's folder
            program.parent.mkdir(exist_ok=True)
            program.write_text(
                f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                "from oint_py.main import main\nsys.exit(main())\n"
            )
            program.chmod(0o755)
            cron = subprocess.run(
                [
                    "/usr/bin/env",
                    "-i",
                    "PATH=/usr/bin:/bin",
                    f"HOME={home}",
                    "/bin/sh",
                    "-c",
                    shlex.join([str(program), *args[1:]]),
                ],
                capture_output=True,
                timeout=120,
            )
            assert (cron.returncode, cron.stdout, cron.stderr) == (0, b"", b""), (line, cron.stderr)  # nothing mailed
        else:
            r = run_oint(*args[1:], env=clean_env(), process=True)  # a README recipe; the file is all it needs
            assert r.code == 0, (line, r.err)
            assert r.err.splitlines()[-1] == "oint: 0 closed, 200 skipped, 0 failed"
        done = json.loads(out.read_text(encoding="utf-8"))
        assert Counter(e["action"] for e in done.values()) == Counter({"closed" if n == 0 else "skipped": 200})
    stats = httpx.get(f"{base}/sandbox/stats").json()
    assert stats["refreshes"] == 2 and stats["early_refreshes"] == 0
    assert json.loads(auth.read_text())["refresh_token"] != stored["refresh_token"]


def _relaying(portal, change):
    """An OAuth server that asks the sandbox for the pair and answers it changed by `change(answer)`:
    a server whose answer has the pair, in shapes the reference does not promise."""
    from scripted import Script, answer

    def respond(request):
        got = httpx.get(f"{portal.base}{request['path']}", params=dict(httpx.URL("http://x" + request["full"]).params))
        return answer(change(got.json()), got.status_code)

    return Script(respond)


@pytest.mark.parametrize(
    "change",
    [
        {"expires": "EXPIRES", "expires_in": "3600"},  # numbers as strings (PHP's json_encode of a string field)
        {"expires": None, "expires_in": "3600"},
        {"expires": None, "expires_in": None},
        {"client_endpoint": None},
        {"client_endpoint": ""},
        {"expires": None, "expires_in": 0},  # a lifetime of nothing, or one already over: not "renew on every run"
        {"expires": None, "expires_in": -5},
        {"expires": 1000, "expires_in": None},
    ],
)
def test_an_odd_refresh_answer_is_saved_as_a_file_the_next_run_can_use(make_portal, folder, change):
    """The refresh token was spent on this answer: the pair it holds must be kept in a file the next run
    accepts, never in one every later run refuses as damaged (exit 5), which leaves a person to fix it."""
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    data = authorize(portal, path)
    wait_past(data["expires"])
    portal.oauth.ttl = 3600

    def odd(answer):
        return {**answer, **{k: (str(answer["expires"]) if v == "EXPIRES" else v) for k, v in change.items()}}

    with _relaying(portal, odd) as server:
        path.write_text(json.dumps({**data, "oauth_server": server.base}))
        r = oint_auth(portal, path, "--userid", "2")
        assert r.code == 0, r.err
        assert portal.oauth.counts["refreshes"] == 1
        saved = json.loads(path.read_text())
        assert saved["refresh_token"] != data["refresh_token"]
        assert saved["client_endpoint"] == data["client_endpoint"]
        assert isinstance(saved["expires"], (int, float)) and saved["expires"] > time.time() + 600
        r = oint_auth(portal, path, "--userid", "3")
        assert r.code == 0, r.err
        assert portal.oauth.counts["refreshes"] == 1  # the saved pair is used as it is, not renewed again


@pytest.mark.skipif(not IN_PROCESS, reason="the clock is injected, not waited for")
def test_a_refresh_answer_giving_one_second_to_live_is_taken_at_its_word(make_portal, folder, monkeypatch):
    """A refresh answer with `expires_in: 1` and no `expires`: the token lives one second (only a lifetime of
    nothing or less is ignored), so a run two seconds later renews before its call, instead of sending it
    for the portal to refuse as expired and sending it again."""
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    clock = _injected_clock(portal, monkeypatch)
    data = authorize(portal, path)
    clock[0] += 2
    with _relaying(portal, lambda answer: {**answer, "expires": None}) as server:
        path.write_text(json.dumps({**data, "oauth_server": server.base}))
        assert oint_auth(portal, path, "--userid", "2").code == 0
        assert portal.oauth.counts["refreshes"] == 1
        clock[0] += 2
        r = oint_auth(portal, path, "--userid", "3")
        assert r.code == 0, r.err
    assert portal.oauth.counts["refreshes"] == 2
    assert [c["params"].get("USER_ID") for c in portal.calls("timeman.close")] == ["2", "3"]  # each sent once


@pytest.mark.parametrize("empty", [None, ""])
def test_a_refresh_answer_whose_refresh_token_is_null_or_empty_keeps_the_old_one(make_portal, folder, empty):
    """Issue 24 item 8: a server that renews the access token only and writes its refresh_token as null or
    "": the file keeps the refresh token it had, and the next renewal works with it."""
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    data = authorize(portal, path)
    wait_past(data["expires"])
    portal.oauth.ttl = 3600
    with _relaying(portal, lambda answer: {**answer, "refresh_token": empty}) as server:
        path.write_text(json.dumps({**data, "oauth_server": server.base}))
        r = oint_auth(portal, path, "--userid", "2")
        assert r.code == 0, r.err
    saved = json.loads(path.read_text())
    assert saved["refresh_token"] == data["refresh_token"] and saved["access_token"] != data["access_token"]


@pytest.mark.skipif(not IN_PROCESS, reason="the clock is injected, not waited for")
def test_an_expiry_given_in_milliseconds_is_saved_as_the_same_moment(make_portal, folder, monkeypatch):
    """A server that counts `expires` in milliseconds (as JavaScript does), with no `expires_in`: the auth
    file keeps that very moment in seconds, its milliseconds included, not a second earlier."""
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    clock = _injected_clock(portal, monkeypatch)
    data = authorize(portal, path)
    clock[0] += 2
    portal.oauth.ttl = 3600
    said: list[int] = []

    def in_milliseconds(answer):
        said.append(answer["expires"] * 1000 + 500)
        return {**answer, "expires": said[-1], "expires_in": None}

    with _relaying(portal, in_milliseconds) as server:
        path.write_text(json.dumps({**data, "oauth_server": server.base}))
        r = oint_auth(portal, path, "--userid", "2")
        assert r.code == 0, r.err
    saved = json.loads(path.read_text())
    assert saved["expires"] == said[0] / 1000 == saved["expires_local"]


@pytest.mark.parametrize(
    "faults,code",
    [
        (("error:invalid_token:401",), 7),  # the app was removed between two batches
        (("error:expired_token:401", "html:503"), 4),  # the renewal's answer never came
    ],
)
@pytest.mark.parametrize("how", [["--userid", ",".join(map(str, range(1, 151)))], ["--userid", "all", "--if-needed"]])
def test_a_chain_that_fails_mid_sweep_still_reports_what_was_applied(make_portal, folder, tmp_path, faults, code, how):
    """Batches of closes were applied when the next met a token that could not be renewed: the run
    ends with the auth file's exit, and its answer (stdout and --out) still says which users were closed
    and which were not, as a run stopped by a signal or a portal gone does."""
    out = tmp_path / "out.json"
    for args in ([], ["--out", out]):
        portal = make_portal(users=150)
        path = folder / "a.json"
        authorize(portal, path)
        portal.inject(*("none",) * (2 if how[1] != "all" else 3), *faults)  # for all, the listing first
        r = oint_auth(portal, path, *how, *args)
        assert r.code == code, r.err
        done = json.loads(out.read_text() if args else r.out)
        assert sorted(done, key=int) == [str(uid) for uid in range(1, 151)]
        closed = [uid for uid, entry in done.items() if "error" not in entry and entry.get("action") != "not reached"]
        assert closed == [str(uid) for uid in range(1, 151) if portal.days[uid]["STATUS"] == "CLOSED"]
        assert 50 <= len(closed) < 150  # closed before the failure, and said so
        # issue 23, 1.6: the batch the portal refused with 401 was not applied: "not reached" (the one word for
        # users nothing was sent for, issue 23 4.5), never OUTCOME_UNKNOWN ("may have been applied")
        assert all(done[uid] == {"action": "not reached"} for uid in done if uid not in closed), done
        if code == 7:
            assert all(step in r.err for step in REAUTH_STEPS)
        else:
            assert "may have been used" in r.err
        assert "Traceback" not in r.err


# -- issue 23: a chain that is never lost ----------------------------------------------------------------------
def _rlimit_fsize(size: int):
    """A preexec_fn: files the child writes may not grow past `size` bytes (a full disk, a quota)."""
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


@pytest.mark.skipif(not POSIX, reason="signals, and the status read concurrently")
def test_a_run_longer_than_the_token_renews_as_often_as_it_needs(make_portal, folder, tmp_path):
    """Issue 23, 1.1: 1,000 users behind a tight rate limit take several token lifetimes; another process
    renews the file meanwhile (which revokes the sweep's token). The sweep renews each time the portal says
    expired_token, takes the other process's pair on invalid_token, closes every day and exits 0. It
    renewed once, then failed every later batch (exit 3), or ended in exit 7 on a live chain."""
    portal = make_portal(users=1000, token_ttl=1, rate_limit=(3, 6))
    path = folder / "a.json"
    authorize(portal, path)
    sweep = subprocess.Popen(
        [
            *OINT,
            "bitrix24",
            "StopTimekeeping",
            "--auth-file",
            str(path),
            "--userid",
            ",".join(map(str, range(1, 1000))),
        ],
        stdout=(tmp_path / "out.json").open("wb"),
        stderr=(tmp_path / "err.txt").open("wb"),
        env=app_env(portal),
    )
    readers = 0
    while sweep.poll() is None:  # a second process on the same file, renewing it when it has expired
        wait_past(json.loads(path.read_text())["expires"])
        r = oint_auth(portal, path, "--userid", "1000", method="GetTimekeepingStatus")
        assert r.code == 0, r.err
        readers += 1
    out, err = (tmp_path / "out.json").read_bytes(), (tmp_path / "err.txt").read_bytes()
    assert sweep.returncode == 0, err.decode()[-3000:]
    assert all(portal.days[uid]["STATUS"] == "CLOSED" for uid in range(1, 1000))
    assert set(json.loads(out)) == {str(uid) for uid in range(1, 1000)}
    assert portal.oauth.counts["refreshes"] >= 2 and portal.oauth.counts["early_refreshes"] == 0
    assert readers >= 1 and portal.throttled > 0


def test_get_token_save_checks_for_room_before_it_spends_the_code(portal, folder):
    """Issue 23, 1.2: a full disk (a file-size limit) is found before the code is sent: exit 6, nothing
    spent, and the same code saves the pair once there is room. The code was spent and the pair lost."""
    path = folder / "a.json"
    code = browser_code(portal)
    proc = subprocess.run(
        [*OINT, "bitrix24", "GetToken", "--code", code, "--save", str(path)],
        capture_output=True,
        env=app_env(portal),
        preexec_fn=_rlimit_fsize(300),
        timeout=60,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 6 and "nothing was sent" in err and "the code is still good" in err, err
    assert "file before was kept" not in err and not path.exists()
    assert portal.oauth.counts["code_grants"] == 0
    r = run_oint("bitrix24", "GetToken", "--code", code, "--save", path, env=app_env(portal))
    assert r.code == 0, r.err


@pytest.mark.parametrize("method", ["GetToken", "RefreshToken"])
def test_a_pair_get_token_cannot_save_is_shown_whole(portal, folder, method):
    """Issue 23, 1.2: the save fails after the exchange (the disk filled up meanwhile): the answer is printed
    unmasked on stdout (its refresh token is the only live one), one line says it was not saved and how to
    save it, exit 6; "the file before was kept" only when there was one. The pair was dropped."""
    path = folder / "a.json"
    if method == "GetToken":
        args = ["--code", browser_code(portal)]
    else:
        args = ["--refresh", authorize(portal, folder / "first.json")["refresh_token"]]
        path = folder / "first.json"
    r = run_oint("bitrix24", method, *args, "--save", path, env=staged(portal, STAGE_FAIL_REPLACE=path.name))
    assert r.code == 6, r.err
    shown = r.json()
    assert len(shown["refresh_token"]) > 10 and len(shown["access_token"]) > 10  # unmasked
    assert "NOT saved" in r.err and "RefreshToken --refresh" in r.err and str(path) in r.err
    assert ("file before was kept" in r.err) == (method == "RefreshToken")
    fixed = run_oint(
        "bitrix24", "RefreshToken", "--refresh", shown["refresh_token"], "--save", path, env=app_env(portal)
    )
    assert fixed.code == 0, fixed.err  # the recipe the line gives keeps the chain
    assert oint_auth(portal, path, "--userid", "2").code == 0


def test_a_renewed_pair_the_file_cannot_take_is_kept_and_picked_up(portal, folder):
    """Issue 23, 1.2: a renewal inside a call whose save fails: the run finishes with the new pair, says the
    file holds a spent refresh token and where the new pair went; the next run moves it into place instead
    of ending in exit 7. The pair was dropped and every later run ended in exit 7."""
    path = folder / "a.json"
    data = authorize(portal, path)
    portal.oauth.access[data["access_token"]]["expires"] = 0  # the portal says expired
    r = oint_auth(portal, path, "--userid", "2", STAGE_FAIL_REPLACE="a.json")
    assert r.code == 6, r.err
    assert portal.days[2]["STATUS"] == "CLOSED" and portal.oauth.counts["refreshes"] == 1
    assert "spent refresh token" in r.err and f"{path}.pending" in r.err, r.err
    assert json.loads(path.read_text())["refresh_token"] == data["refresh_token"]  # the spent one
    assert stat.S_IMODE(Path(f"{path}.pending").stat().st_mode) == 0o600
    shown = run_oint("bitrix24", "AuthStatus", "--auth-file", path)
    assert shown.code == 0 and f"{path}.pending" in shown.err, shown.err
    r = oint_auth(portal, path, "--userid", "4", STAGE_FAIL_REPLACE="a.json")  # the move into place fails too
    assert r.code == 6 and portal.days[4]["STATUS"] == "CLOSED", r.err  # done with the pending pair
    assert f"{path}.pending (used by this run), which could not be moved into place (No space left on device)" in r.err
    r = oint_auth(portal, path, "--userid", "3")
    assert r.code == 0, r.err
    assert portal.days[3]["STATUS"] == "CLOSED" and portal.oauth.counts["refreshes"] == 1
    assert json.loads(path.read_text())["refresh_token"] != data["refresh_token"]
    assert not Path(f"{path}.pending").exists()


@pytest.mark.skipif(not POSIX, reason="RLIMIT_FSIZE, modes")
@pytest.mark.parametrize("fault", ["file size limit", "read-only folder"])
def test_a_renewal_that_could_not_be_saved_is_not_sent(make_portal, folder, fault):
    """Issue 23, 1.2: a full disk (RLIMIT_FSIZE) or a folder the user cannot write to is found before the
    refresh token is spent: exit 6, nothing sent to the OAuth server nor the portal, and the next run renews.
    The refresh token was spent, the pair dropped, and every later run ended in exit 7."""
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    wait_past(authorize(portal, path)["expires"])
    before = path.read_bytes()
    cmd = [*OINT, "bitrix24", "StopTimekeeping", "--auth-file", str(path), "--userid", "2"]
    if fault == "file size limit":
        proc = subprocess.run(cmd, capture_output=True, env=app_env(portal), preexec_fn=_rlimit_fsize(300), timeout=60)
    elif os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            proc = subprocess.run(cmd, capture_output=True, env=app_env(portal), timeout=60)
        finally:
            folder.chmod(0o700)
    else:  # root writes anywhere: the folder refuses new files as it would refuse the user
        proc = subprocess.run(cmd, capture_output=True, env=staged(portal, STAGE_NO_CREATE=str(folder)), timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode == 6 and "nothing was sent" in err and "still good" in err, err
    assert portal.oauth.counts["refreshes"] == 0 and portal.calls("timeman.close") == []
    assert path.read_bytes() == before
    r = oint_auth(portal, path, "--userid", "2")
    assert r.code == 0, r.err
    assert portal.oauth.counts["refreshes"] == 1


@pytest.mark.skipif(not POSIX, reason="SIGTERM")
def test_a_signal_during_get_token_save_waits_for_the_save(portal, folder):
    """Issue 23, 1.2: a cron timeout's SIGTERM while GetToken --save waits for the OAuth server's answer:
    the pair is saved, then the signal ends the process. It ended at once, the code spent, the pair lost."""
    from scripted import Script, answer

    def slow(request):
        time.sleep(1.5)
        got = httpx.get(f"{portal.base}{request['path']}", params=dict(httpx.URL("http://x" + request["full"]).params))
        return answer(got.json(), got.status_code)

    path = folder / "a.json"
    with Script(slow) as server:
        proc = subprocess.Popen(
            [*OINT, "bitrix24", "GetToken", "--code", browser_code(portal), "--save", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=app_env(portal, OINT_BITRIX24_OAUTH_SERVER=server.base),
        )
        deadline = time.monotonic() + 30
        while not server.requests:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == -signal.SIGTERM, proc.stderr.read().decode()
    assert portal.oauth.counts["code_grants"] == 1
    assert oint_auth(portal, path, "--userid", "2").code == 0  # the pair was saved


def test_a_plain_http_oauth_server_elsewhere_is_refused(portal, folder):
    """Issue 23, 1.3: the client secret and the code or refresh token never travel in cleartext to another
    machine: exit 5, nothing sent, unless OINT_BITRIX24_OAUTH_ALLOW_HTTP=1. It was sent without a word."""
    far = "http://192.0.2.10"  # TEST-NET: not this machine
    r = run_oint("bitrix24", "GetToken", "--code", "c0de", "--oauth-server", far, env=app_env(portal))
    assert r.code == 5 and "unencrypted" in r.err and "OINT_BITRIX24_OAUTH_ALLOW_HTTP" in r.err, r.err
    r = run_oint(
        "bitrix24", "RefreshToken", "--refresh", "r3fresh", env=app_env(portal, OINT_BITRIX24_OAUTH_SERVER=far)
    )
    assert r.code == 5 and "unencrypted" in r.err, r.err
    path = folder / "a.json"
    data = authorize(portal, path)
    path.write_text(json.dumps({**data, "oauth_server": far}))
    requests = len(portal.requests)
    r = oint_auth(portal, path, "--userid", "2")
    assert r.code == 5 and "unencrypted" in r.err, r.err
    assert len(portal.requests) == requests  # nothing sent, not even the call its live token could make
    r = oint_auth(portal, path, "--userid", "2", OINT_BITRIX24_OAUTH_ALLOW_HTTP="1")
    assert r.code == 0, r.err  # opted in: the token is live, no renewal needed
    r = run_oint(
        "bitrix24",
        "GetToken",
        "--code",
        "c0de",
        "--oauth-server",
        far,
        "--timeout",
        "1",
        env=app_env(portal, OINT_BITRIX24_OAUTH_ALLOW_HTTP="1"),
    )
    assert r.code == 4, r.err  # tried


def test_a_refresh_answer_naming_another_portal_is_not_adopted(make_portal, folder):
    """Issue 23, 1.4: a refresh answer whose client_endpoint is another origin (another host, or http for
    https) does not become every later run's portal; stderr says so. It was adopted without a word."""
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    data = authorize(portal, path)
    wait_past(data["expires"])
    portal.oauth.ttl = 3600
    moved = {"client_endpoint": "https://portal.attacker.example/rest/"}
    with _relaying(portal, lambda answer: {**answer, **moved}) as server:
        path.write_text(json.dumps({**data, "oauth_server": server.base}))
        r = oint_auth(portal, path, "--userid", "2")
        assert r.code == 0, r.err
        assert "portal.attacker.example" in r.err and "not adopted" in r.err, r.err
        saved = json.loads(path.read_text())
        assert saved["client_endpoint"] == data["client_endpoint"] and saved["refresh_token"] != data["refresh_token"]
        assert oint_auth(portal, path, "--userid", "3").code == 0
    assert portal.days[2]["STATUS"] == portal.days[3]["STATUS"] == "CLOSED"


def test_a_refresh_answer_naming_the_same_portal_is_adopted(make_portal, folder):
    """A refresh answer's client_endpoint on the file's own origin (here the canonical `/rest/` for a
    hand-written `/rest`) is what later runs use: only another origin is refused."""
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    data = authorize(portal, path)
    wait_past(data["expires"])
    portal.oauth.ttl = 3600
    named = data["client_endpoint"]
    written = named.rstrip("/")
    assert written != named
    with _relaying(portal, lambda answer: {**answer, "client_endpoint": named}) as server:
        path.write_text(json.dumps({**data, "client_endpoint": written, "oauth_server": server.base}))
        r = oint_auth(portal, path, "--userid", "2")
        assert r.code == 0, r.err
        assert "not adopted" not in r.err, r.err
        saved = json.loads(path.read_text())
        assert saved["refresh_token"] != data["refresh_token"] and saved["client_endpoint"] == named
        assert oint_auth(portal, path, "--userid", "3").code == 0
    assert portal.days[2]["STATUS"] == portal.days[3]["STATUS"] == "CLOSED"


@pytest.mark.skipif(not POSIX, reason="SIGTERM")
def test_a_stop_during_a_renewal_sends_nothing_more(portal, folder, tmp_path):
    """Issue 23, 1.5: SIGTERM while the third batch's renewal is under way is delivered after the save; then
    nothing more is sent: that batch's users are "not reached", exit 143. The refused batch was sent anyway."""
    path = folder / "a.json"
    data = authorize(portal, path)
    out = tmp_path / "out.json"
    portal.inject("none", "none", "error:expired_token:401")
    proc = subprocess.Popen(
        [*OINT, "bitrix24", "StopTimekeeping", "--auth-file", str(path), "--userid", ",".join(map(str, range(1, 151)))]
        + ["--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=staged(portal, STAGE_PAUSE_AT="after-answer:1"),
    )
    assert proc.stderr.readline() == b"test hook: paused at after-answer\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143, proc.stderr.read().decode()
    done = json.loads(out.read_text())
    assert [uid for uid in range(1, 151) if portal.days[uid]["STATUS"] == "CLOSED"] == list(range(1, 101))
    assert all(done[str(uid)] == {"action": "not reached"} for uid in range(101, 151)), done["101"]
    assert len(portal.calls("batch")) == 3  # the refused one, not sent again
    assert json.loads(path.read_text())["refresh_token"] != data["refresh_token"]  # saved


@pytest.mark.parametrize(
    "change",
    [{"expires": None, "expires_in": 10**12}, {"expires": "MS", "expires_in": None}, {"expires_in": 1e300}],
)
def test_auth_status_never_ends_in_99(make_portal, folder, change):
    """Issue 23, 1.7: a huge expires_in, or expires in milliseconds, is bounded when saved (an access token
    cannot outlive its refresh token's 180 days); a file that holds an expiry that cannot be believed is
    shown as such. AuthStatus crashed (exit 99)."""
    portal = make_portal(token_ttl=1)
    path = folder / "a.json"
    data = authorize(portal, path)
    wait_past(data["expires"])
    portal.oauth.ttl = 3600

    def odd(answer):
        return {**answer, **{k: (answer["expires"] * 1000 if v == "MS" else v) for k, v in change.items()}}

    with _relaying(portal, odd) as server:
        path.write_text(json.dumps({**data, "oauth_server": server.base}))
        assert oint_auth(portal, path, "--userid", "2").code == 0
    saved = json.loads(path.read_text())
    assert time.time() < saved["expires"] <= time.time() + 180 * 86400
    assert saved["expires_local"] <= time.time() + 180 * 86400
    r = run_oint("bitrix24", "AuthStatus", "--auth-file", path)
    assert r.code == 0 and r.json()["access_token_expires"].startswith("20"), r.err
    for odd_value in (10**30, 1e300, -(10**20)):
        path.write_text(json.dumps({**saved, "expires": odd_value, "expires_local": odd_value}))
        r = run_oint("bitrix24", "AuthStatus", "--auth-file", path)
        assert r.code == 0, r.err
        assert r.json()["access_token_expires"].startswith("cannot be believed"), r.out


def test_exit_7_steps_keep_the_portals_scheme_and_port(portal, folder):
    """Issue 23, 4.1: the steps' GetAppAuthLink names the portal as it is (http, its port), and the link it
    prints opens the portal's authorize page. It printed --domain 127.0.0.1: https, port 443, a dead link."""
    path = folder / "a.json"
    authorize(portal, path)
    portal.inject("error:NOT_INSTALLED:401")
    r = oint_auth(portal, path, "--userid", "2")
    assert r.code == 7, r.err
    step = re.search(r"1\) (oint bitrix24 GetAppAuthLink [^;]+);", r.err).group(1)
    assert f"--domain {portal.base} " in step + " ", step
    link = run_oint(*shlex.split(step)[1:])
    assert link.code == 0 and link.out.startswith(portal.base + "/oauth/authorize/"), link.out
    assert httpx.get(link.out.strip()).status_code == 302  # the sandbox's authorize page answers


def test_a_token_answer_with_a_lone_surrogate_is_saved_not_lost(tmp_path):
    """A review found it: JSON allows "\\ud800", which UTF-8 cannot encode; the save then failed with an internal
    error (exit 99) after the refresh token was spent, and the new pair was neither saved nor shown."""
    import http.server
    import threading

    body = (
        b'{"access_token":"ACCESS-NEW-1234567","refresh_token":"REFRESH-NEW-7654321","expires_in":3600,'
        b'"client_endpoint":"https://p.example/rest/","domain":"p.example","member_id":"\\ud800"}'
    )

    class Lying(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Lying)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    folder = tmp_path / "cfg"
    folder.mkdir(mode=0o700)
    path = folder / "auth.json"
    try:
        r = run_oint(
            *("bitrix24", "RefreshToken", "--oauth-server", f"http://127.0.0.1:{server.server_port}"),
            *("--clientid", "cid", "--clientsecret", "csecret", "--refresh", "OLDREFRESH", "--save", path),
        )
    finally:
        server.shutdown()
    assert r.code == 0, r.err
    saved = json.loads(path.read_text(encoding="ascii"))
    assert saved["refresh_token"] == "REFRESH-NEW-7654321" and saved["member_id"] == "\ud800"


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals to a child process")
def test_a_change_after_a_stop_spends_no_refresh_token(make_portal, folder, tmp_path):
    """A review found it: a run stopped while its status read was in flight went on to the change, whose stored
    expiry had passed meanwhile, and renewed (spending a refresh token) before the change was refused for the
    stop. Now a change after a stop renews nothing: the users are "not reached"."""
    portal = make_portal(users=60, token_ttl=2)
    path = folder / "a.json"
    authorize(portal, path)
    seen = len(portal.calls())
    portal.inject("slow:4")  # the status read is answered after the token's 2 s: its change meets an old token
    proc = subprocess.Popen(
        [*OINT, "bitrix24", "PauseTimekeeping", "--auth-file", str(path), "--if-needed"]
        + ["--userid", ",".join(map(str, range(1, 61)))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=app_env(portal, XDG_STATE_HOME=str(tmp_path / "state")),
        preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    while len(portal.calls()) <= seen:  # the status read is in flight
        assert time.monotonic() < deadline, "the status read never came"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert portal.oauth.counts["refreshes"] == 0, err
    assert all(entry == {"action": "not reached"} for entry in json.loads(out).values())
    assert all(day["STATUS"] == "OPENED" for day in portal.days.values())


def test_an_answered_close_stays_recorded_when_the_read_after_it_fails(make_portal, folder):
    """A review found it: user 1's close answered and applied, user 2's refused; the status read of user 2 met an
    expired token whose renewal failed, and the run then recorded user 1 as OUTCOME_UNKNOWN ("may have been
    applied"), losing an answer the portal gave."""
    from oint_py.sandbox.portal import ApiError

    portal = make_portal(users=3)
    path = folder / "a.json"
    authorize(portal, path)
    real = portal._m_timeman_close

    def refuse_user_2(params, caller):
        if str(params.get("USER_ID")) == "2":
            raise ApiError(400, "ALERT_WARNING", "not now")
        return real(params, caller)

    portal._m_timeman_close = refuse_user_2
    # 1 the status batch, 2 the close batch (1 closed, 2 refused), 3 the refused user's status read: expired_token,
    # 4 the renewal: the OAuth server fails
    portal.inject("slow:0", "slow:0", "error:expired_token:401", "status:500")
    r = oint_auth(portal, path, "--userid", "1,2", "--if-needed", "--time", "18:00", "--report", "x")
    assert portal.days[1]["STATUS"] == "CLOSED"
    record = json.loads(r.out)
    assert record["1"]["action"] == "closed" and record["1"]["result"]["STATUS"] == "CLOSED", record["1"]
    # the refused user's status could not be read after its refusal: that one, and only that one, is unknown
    assert record["2"]["error"] == "OUTCOME_UNKNOWN" and r.code == 4, (record, r.err)
