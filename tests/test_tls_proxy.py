"""Real TLS with generated certificates, and a real proxy process."""

import json
import subprocess
import sys

import pytest
from conftest import assert_no_secret, clean_env, oint_on, run_oint


def test_self_signed_portal_is_refused_by_default(tls_portal):
    r = run_oint("bitrix24", "StopTimekeeping", "--url", tls_portal.webhook())
    assert r.code == 4
    assert "TLS certificate verification failed" in r.err and "--ca-bundle" in r.err
    assert tls_portal.calls() == []
    assert_no_secret(r.err, r.out)


def test_ca_bundle_trusts_the_portal(tls_portal, certs):
    r = run_oint("bitrix24", "StopTimekeeping", "--url", tls_portal.webhook(), "--ca-bundle", certs["ca"])
    assert r.code == 0, r.err
    assert r.json()["result"]["STATUS"] == "CLOSED"


def test_insecure_switch(tls_portal):
    r = run_oint("bitrix24", "StopTimekeeping", "--url", tls_portal.webhook(), "--insecure")
    assert r.code == 0, r.err


def test_ca_bundle_from_config_file(tls_portal, certs, tmp_path):
    conf = tmp_path / "oint.json"
    conf.write_text(json.dumps({"ca_bundle": str(certs["ca"]), "retries": 1}))
    r = run_oint("bitrix24", "GetTimekeepingStatus", "--url", tls_portal.webhook(), "--config", conf)
    assert r.code == 0, r.err


def test_missing_ca_bundle_is_an_option_error():
    r = run_oint("bitrix24", "StopTimekeeping", "--url", "https://h/rest/1/abcd/", "--ca-bundle", "/nonexistent.pem")
    assert r.code == 5


def test_http_portal_through_the_proxy(portal, proxy_factory):
    proxy = proxy_factory()
    r = oint_on(portal, "--proxy", proxy.url)
    assert r.code == 0, r.err
    log = proxy.log()
    assert [e["verb"] for e in log] == ["POST"]
    assert log[0]["target"].endswith("/timeman.close")
    assert len(portal.calls()) == 1


def test_https_portal_through_the_proxy_with_password(tls_portal, certs, proxy_factory):
    proxy = proxy_factory(auth="alice:s3cr3t-pass")
    url = proxy.url.replace("http://", "http://alice:s3cr3t-pass@")
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        tls_portal.webhook(),
        "--proxy",
        url,
        "--ca-bundle",
        certs["ca"],
        "--debug",
    )
    assert r.code == 0, r.err
    assert [(e["verb"], e["auth_ok"]) for e in proxy.log()] == [("CONNECT", True)]
    assert "s3cr3t-pass" not in r.err


def test_oint_proxy_structure(portal, proxy_factory):
    proxy = proxy_factory(auth="bob:hunter2-pass")
    structure = {
        "Protocol": "http",
        "Host": "127.0.0.1",
        "Port": proxy.port,
        "User": "bob",
        "Password": "hunter2-pass",
        "UseOSAuthentication": False,
    }
    r = run_oint(
        "bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--config", json.dumps({"proxy": structure}), "--test"
    )
    assert r.code == 0 and "hunter2-pass" not in r.out
    r = oint_on(portal, "--proxy", json.dumps(structure))
    assert r.code == 0, r.err
    assert [e["auth_ok"] for e in proxy.log()] == [True]


def test_wrong_proxy_password(tls_portal, certs, proxy_factory):
    proxy = proxy_factory(auth="bob:right-pass")
    r = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        tls_portal.webhook(),
        "--ca-bundle",
        certs["ca"],
        "--proxy",
        proxy.url.replace("http://", "http://bob:wrong-pass@"),
    )
    assert r.code == 4
    assert "proxy error" in r.err and "wrong-pass" not in r.err
    assert tls_portal.calls() == []


@pytest.mark.parametrize(
    "proxy,message",
    [
        ('{"Host": "127.0.0.1", "Port": 3128, "UseOSAuthentication": true}', "UseOSAuthentication"),
        ("socks5://127.0.0.1:1080", "not supported"),
        ('{"Protocol": "http"}', "needs Host"),
        ("http://127.0.0.1:99999", "--proxy"),
    ],
)
def test_unsupported_proxies_are_clear_option_errors(proxy, message):
    r = run_oint("bitrix24", "StopTimekeeping", "--url", "https://h/rest/1/abcd/", "--proxy", proxy)
    assert r.code == 5, r.err
    assert message in r.err


def test_proxy_from_environment_is_used(portal, proxy_factory):
    proxy = proxy_factory()
    r = run_oint(
        "bitrix24", "GetTimekeepingStatus", "--url", portal.webhook(), env=clean_env(HTTP_PROXY=proxy.url, NO_PROXY="")
    )
    assert r.code == 0, r.err
    assert len(proxy.log()) == 1


def _b24pysdk_imports() -> bool:
    try:
        import b24pysdk  # noqa: F401
    except Exception:  # 1.3.2 fails on Python 3.10 with a TypeError of its own
        return False
    return True


@pytest.mark.skipif(not _b24pysdk_imports(), reason="b24pysdk does not import on this Python")
def test_b24pysdk_peer_client_speaks_to_the_same_portal(tls_portal, certs):
    """The official SDK (requests, https only) talks to the emulator: it speaks the real protocol."""
    script = (
        "from b24pysdk import BitrixWebhook, Client\n"
        "import json, sys\n"
        "domain, hook = sys.argv[1], sys.argv[2]\n"
        "client = Client(BitrixWebhook(domain=domain, webhook_token=hook))\n"
        "print(json.dumps(client.timeman.close(user_id=3).result))\n"
        "print(json.dumps(client.timeman.status(user_id=3).result))\n"
    )
    env = clean_env(REQUESTS_CA_BUNDLE=str(certs["ca"]))
    domain = tls_portal.base.split("://")[1]
    proc = subprocess.run(
        [sys.executable, "-c", script, domain, f"1/{tls_portal.code}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    closed, status = (json.loads(line) for line in proc.stdout.splitlines())
    assert closed["STATUS"] == "CLOSED" and status["STATUS"] == "CLOSED"
    assert tls_portal.calls("timeman.close")[0]["path"].endswith("timeman.close.json")
