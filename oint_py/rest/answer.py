"""A reply read as Bitrix24 answers: `{"result": ...}`, `{"error": ...}`, or not
Bitrix24's at all. The first module up from the HTTP core that knows the portal.
"""

from collections.abc import Callable
from enum import Enum
from typing import Any

from oint_py import bounds
from oint_py.outcome import error_words
from oint_py.record import Record

THROTTLED = ("QUERY_LIMIT_EXCEEDED", "OVERLOAD_LIMIT", "OPERATION_TIME_LIMIT")  # refused before processing
GATEWAY_TIMEOUTS = (504, 524, 598, 599)  # a proxy gave up waiting: the portal may still be running the call


class Kind(str, Enum):
    """What an answer is. A str, so that it compares and prints as its value."""

    OK = "ok"
    API_ERROR = "api_error"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


class Answer(Record):
    code: int
    headers: dict[str, str]  # names lowercased
    body: Any  # parsed JSON, or the text when it is not JSON
    url: str
    kind: Kind = Kind.OK
    problem: str = ""  # one line for stderr when kind is not OK
    notes: tuple[str, ...] = ()
    accepted: bool = False  # a 303 said the call was made before this answer came
    # when the portal's operating-time limit for this method lets calls through again (epoch seconds): the
    # answer's own `time.operating_reset_at`, or, on a 429 OPERATION_TIME_LIMIT (which has no time block),
    # the one the last answer of the same method gave (see rest.client.RestClient._read)
    operating_reset_at: float | None = None

    @property
    def error(self) -> object:
        return self.body.get("error") if isinstance(self.body, dict) else None

    @property
    def throttled(self) -> bool:
        """Refused as over the portal's limit, before anything was done."""
        return not self.accepted and (self.code == 429 or self.error in THROTTLED)

    @property
    def operating_limited(self) -> bool:
        """429 OPERATION_TIME_LIMIT: this method's operating time is used up until operating_reset_at."""
        return self.error == "OPERATION_TIME_LIMIT"

    def time_block_reset(self) -> float | None:
        """`time.operating_reset_at` of the answer, when it is a number."""
        block = self.body.get("time") if isinstance(self.body, dict) else None
        value = block.get("operating_reset_at") if isinstance(block, dict) else None
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    def adv(self) -> dict[str, Any]:
        return {"code": self.code, "body": self.body, "headers": self.headers}


def classify(
    code: int, content: bytes | bytearray, content_type: str, mask: Callable[[str], str] = str
) -> tuple[Any, Kind, str]:
    """Parse a body and say what it is: (body, kind, problem). `mask` hides
    secrets in the snippet of a body that is not JSON, before it is cut."""
    text = content.decode("utf-8", errors="replace")
    body, why = None, ""
    if text.strip():
        try:
            body = bounds.load_json(text, "the answer")
        except bounds.BoundError as exc:
            why = str(exc) if "deeper" in str(exc) else ""
    if body is None:
        what = why or ("an empty body" if not text.strip() else f"{content_type or 'no content type'}, not JSON")
        snippet = "" if why else " ".join(mask(_strip_tags(text)).split())[:120]
        return text, Kind.FAILED, f"the portal answered HTTP {code} with {what}" + (f": {snippet}" if snippet else "")
    if isinstance(body, dict) and "error" in body:
        problem = f"the portal answered HTTP {code} " + error_words(body.get("error"), body.get("error_description"))
        return body, Kind.API_ERROR, problem
    if isinstance(body, dict) and "result" in body:
        return body, Kind.OK, ""
    return body, Kind.FAILED, f"the portal answered HTTP {code} with JSON that is not a Bitrix24 answer"


def _strip_tags(text: str) -> str:
    import re

    return re.sub(r"<[^>]*>", " ", text[:4096])
