"""The floor for a Python tool: timeman.close with nothing but the standard library.

    python bench/stdlib_client.py WEBHOOK USER_ID [CA_FILE]

WEBHOOK is https://HOST/rest/1/CODE/ (or http://). POSTs {"USER_ID": "N"} as
JSON to WEBHOOK + timeman.close, prints the portal's JSON answer, and exits 1
unless it is a 200 with a result. CA_FILE: trust this CA (PEM) for https.
"""

import http.client
import json
import ssl
import sys
from urllib.parse import urlsplit


def main() -> int:
    webhook, user = sys.argv[1], sys.argv[2]
    cafile = sys.argv[3] if len(sys.argv) > 3 else None
    url = urlsplit(webhook.rstrip("/") + "/timeman.close")
    if url.scheme == "https":
        context = ssl.create_default_context(cafile=cafile)
        conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=30, context=context)
    else:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    body = json.dumps({"USER_ID": user}).encode("utf-8")
    conn.request(
        "POST",
        url.path,
        body=body,
        headers={"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"},
    )
    resp = conn.getresponse()
    answer = json.loads(resp.read().decode("utf-8"))
    conn.close()
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0 if resp.status == 200 and isinstance(answer, dict) and "result" in answer else 1


if __name__ == "__main__":
    sys.exit(main())
