"""The advanced call settings once parsed: an immutable record the HTTP core
reads. Parsing and validation live in call.py; this module only holds the
shape, so that the layers below call.py can use it without importing it."""

from typing import Any

from oint_py import bounds
from oint_py.record import Record


class Settings(Record):
    proxy: str | None = None  # the proxy URL in use (an option, --config, or HTTP(S)_PROXY); None: direct
    token_proxy: str | None = None  # the same for an auth file's OAuth server (its renewals), which the
    # environment's NO_PROXY may treat unlike the portal; set by call.py with --auth-file
    timeout: float = bounds.DEFAULT_TIMEOUT  # one whole attempt
    retries: int = bounds.DEFAULT_RETRIES
    adv_response: bool = False
    dontwait: bool = False
    ca_bundle: str | None = None
    insecure: bool = False
    max_answer: int = bounds.DEFAULT_MAX_ANSWER

    def to_json(self) -> dict[str, Any]:
        return self.as_dict()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Settings":
        return cls(**data)
