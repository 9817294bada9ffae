"""Which certificates an https call trusts, decided once and said truthfully.

In order: --insecure (nothing), --ca-bundle, SSL_CERT_FILE, SSL_CERT_DIR, then
the operating system's store, as curl, git and pip use it: on Linux and the
BSDs OpenSSL's certificate directory (read lazily, a certificate at a time)
or its bundle file; on Windows and macOS the native store through truststore.
certifi's bundle only where the system has none. A context is built only for
https (or an https proxy), when the Client is made, before any request.
"""

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

_HASHED = ".0"  # OpenSSL's capath holds <subject hash>.0 links


def _capath_usable(path: str | None) -> bool:
    try:
        return bool(path) and any(name.endswith(_HASHED) for name in os.listdir(path))
    except OSError:
        return False


def needed(url: str, proxy: str | None) -> bool:
    """Whether a call to `url` through `proxy` makes any TLS connection at all."""
    return url.lower().startswith("https:") or (proxy or "").lower().startswith("https:")


def source(insecure: bool, ca_bundle: str | None) -> tuple[str, str | None]:
    """(how, where): the trust source a call would use, without loading it.
    how is one of off, ca-bundle, SSL_CERT_FILE, SSL_CERT_DIR, system-capath,
    system-cafile, truststore, certifi."""
    if insecure:
        return "off", None
    if ca_bundle:
        return "ca-bundle", ca_bundle
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        if os.environ.get(name):
            return name, os.environ[name]
    if os.name == "nt" or sys.platform == "darwin":
        try:
            import truststore  # noqa: F401
        except ImportError:
            pass
        else:
            return "truststore", None
    else:
        import ssl

        paths = ssl.get_default_verify_paths()
        if _capath_usable(paths.capath):
            return "system-capath", paths.capath
        if paths.cafile and os.path.isfile(paths.cafile):
            return "system-cafile", paths.cafile
    return "certifi", None


def describe(insecure: bool, ca_bundle: str | None) -> str:
    how, where = source(insecure, ca_bundle)
    return f"{how} ({where})" if where else how


def context(insecure: bool, ca_bundle: str | None) -> "ssl.SSLContext":
    """An ssl.SSLContext for the trust source; raises OSError or ssl.SSLError
    when a named file or folder cannot be loaded."""
    import ssl

    how, where = source(insecure, ca_bundle)
    if how == "truststore":
        import truststore

        native: ssl.SSLContext = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        return native
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the host name
    if how == "off":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif how in ("SSL_CERT_DIR", "system-capath"):
        ctx.load_verify_locations(capath=where)
    elif how == "certifi":
        import certifi

        ctx.load_verify_locations(cafile=certifi.where())
    else:
        ctx.load_verify_locations(cafile=where)
    return ctx
