"""Which certificates an https call trusts (issue 10): the system store by
default, SSL_CERT_FILE / SSL_CERT_DIR honoured, certifi only as a fallback,
no TLS work at all for http, and --test naming the source that is really used."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, clean_env, run_oint

PROBE = """
import json, ssl, sys
loads = []
original = ssl.SSLContext.load_verify_locations
def counting(self, cafile=None, capath=None, cadata=None):
    loads.append(cafile or capath or "cadata")
    return original(self, cafile, capath, cadata)
ssl.SSLContext.load_verify_locations = counting
from oint_py.main import main
code = main(sys.argv[1:])
certifi = sys.modules.get("certifi")  # httpx imports the module; what matters is whether its bundle is read
print(json.dumps({"code": code, "certifi": bool(certifi) and certifi.where() in loads, "loads": loads}),
      file=sys.stderr)
"""


def probe(*args, **env) -> tuple[dict, str]:
    """Run one oint call in a process that records every certificate load and whether certifi's bundle was one."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, args)],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=60,
        cwd=ROOT,
    )
    *lines, last = proc.stderr.strip().splitlines()
    return json.loads(last), "\n".join(lines)


def test_http_portal_loads_no_certificates_and_no_certifi(portal):
    seen, err = probe("bitrix24", "GetTimekeepingStatus", "--url", portal.webhook())
    assert seen == {"code": 0, "certifi": False, "loads": []}, err


@pytest.mark.skipif(sys.platform != "linux" or not os.listdir("/etc/ssl/certs"), reason="needs a Linux system store")
def test_https_trusts_the_system_store_without_certifi(tls_portal):
    """The test CA is not in the system store: the portal is refused, and the
    refusal came from the system store (named in --debug), not from certifi."""
    seen, err = probe("bitrix24", "GetTimekeepingStatus", "--url", tls_portal.webhook(), "--debug", "--retries", 0)
    assert seen["code"] == 4 and not seen["certifi"] and len(seen["loads"]) == 1, err
    assert "TLS trust: system-" in err and "certificate verification failed" in err


def test_ssl_cert_file_is_trusted_without_ca_bundle(tls_portal, certs):
    r = run_oint("bitrix24", "GetTimekeepingStatus", "--url", tls_portal.webhook(), SSL_CERT_FILE=str(certs["ca"]))
    assert r.code == 0, r.err


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to name the hashed link")
def test_ssl_cert_dir_is_trusted_without_ca_bundle(tls_portal, certs, tmp_path):
    digest = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(certs["ca"])], capture_output=True, text=True, check=True
    ).stdout.strip()
    shutil.copy(certs["ca"], tmp_path / f"{digest}.0")
    r = run_oint("bitrix24", "GetTimekeepingStatus", "--url", tls_portal.webhook(), SSL_CERT_DIR=str(tmp_path))
    assert r.code == 0, r.err


@pytest.mark.parametrize(
    "extra,env,expected",
    [
        (["--insecure"], {}, "off"),
        (["--ca-bundle", "CA"], {}, "ca-bundle (CA)"),
        ([], {"SSL_CERT_FILE": "CA"}, "SSL_CERT_FILE (CA)"),
    ],
)
def test_test_flag_names_the_trust_source_really_used(tls_portal, certs, extra, env, expected):
    ca = str(certs["ca"])
    extra = [ca if a == "CA" else a for a in extra]
    env = {k: ca if v == "CA" else v for k, v in env.items()}
    expected = expected.replace("CA", ca)
    shown = run_oint("bitrix24", "GetTimekeepingStatus", "--url", tls_portal.webhook(), "--test", *extra, **env)
    assert shown.json()["tls_verify"] == expected
    used = run_oint("bitrix24", "GetTimekeepingStatus", "--url", tls_portal.webhook(), "--debug", *extra, **env)
    assert used.code == 0, used.err
    assert f"TLS trust: {expected}" in used.err


def test_test_flag_says_no_tls_for_http(portal):
    assert (
        run_oint("bitrix24", "GetTimekeepingStatus", "--url", portal.webhook(), "--test").json()["tls_verify"]
        == "not used (plain http)"
    )


def test_certifi_only_where_the_system_has_no_store(monkeypatch, tmp_path):
    import ssl
    import types

    from oint_py.net import tls

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setattr(tls.os, "name", "posix")
    monkeypatch.setattr(
        ssl,
        "get_default_verify_paths",
        lambda: types.SimpleNamespace(cafile=str(tmp_path / "none.pem"), capath=str(tmp_path)),
    )
    assert tls.source(False, None) == ("certifi", None)
    (tmp_path / "5ad8a5d6.0").write_text("a hashed link")
    assert tls.source(False, None) == ("system-capath", str(tmp_path))
