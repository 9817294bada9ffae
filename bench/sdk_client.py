"""The official SDK doing the same call: b24pysdk's timeman.close.

    REQUESTS_CA_BUNDLE=ca.pem python bench/sdk_client.py WEBHOOK USER_ID

WEBHOOK is https://HOST/rest/1/CODE/; b24pysdk speaks https only and takes the
host and "1/CODE" apart. It trusts the CA that REQUESTS_CA_BUNDLE names.
Prints the result's STATUS.
"""

import sys
from urllib.parse import urlsplit

from b24pysdk import BitrixWebhook, Client


def main() -> None:
    url = urlsplit(sys.argv[1])
    token = url.path.split("/rest/", 1)[1].strip("/")  # "1/CODE"
    client = Client(BitrixWebhook(domain=url.netloc, webhook_token=token))
    print(client.timeman.close(user_id=int(sys.argv[2])).result["STATUS"])


if __name__ == "__main__":
    main()
