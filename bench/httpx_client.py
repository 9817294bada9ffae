"""The floor of oint's own stack: timeman.close with httpx imported the way oint
imports it (without httpx's command-line module), no certificates loaded for
an http URL, one POST, the answer printed.

    python bench/httpx_client.py WEBHOOK USER_ID [CA_FILE]

Whatever oint costs above this script is oint's own share: its modules, its
checks and its output. Exits 1 unless the answer is a 200 with a result.
"""

import json
import ssl
import sys

sys.modules.setdefault("httpx._main", None)  # as oint_py/net/transport.py: httpx falls back to its own stub
import httpx  # noqa: E402


def main() -> int:
    webhook, user = sys.argv[1], sys.argv[2]
    if webhook.startswith("https:"):
        verify = ssl.create_default_context(cafile=sys.argv[3] if len(sys.argv) > 3 else None)
    else:
        verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # never used for http: no certificates read
    with httpx.Client(verify=verify, timeout=30, trust_env=False) as client:
        resp = client.post(
            webhook.rstrip("/") + "/timeman.close", json={"USER_ID": user}, headers={"Accept": "application/json"}
        )
    answer = json.loads(resp.content)
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0 if resp.status_code == 200 and isinstance(answer, dict) and "result" in answer else 1


if __name__ == "__main__":
    sys.exit(main())
