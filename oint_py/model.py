"""The model: what a checked call is, as immutable data, with no parsing in it.

call.py (the edge) builds a Call from the command line; everything below it
(execute, sweep, confirm, jobs) reads one. A background job receives its Call
as JSON (to_json / from_json, field by field from the record itself), never
by parsing a command line again.
"""

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from oint_py.methods import BY_KEY, Method
from oint_py.record import Record, fields
from oint_py.redact import Redactor
from oint_py.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

ALL_USERS = "all"  # --userid all


class Endpoint(Record):
    """Where the calls go: a webhook base (`https://host/rest/1/<code>/`), or a
    portal's `/rest/` base plus an OAuth token sent as `auth` in the body."""

    base: str  # ends with "/": the REST method name is appended
    token: str | None = None

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base)
        return f"{parts.scheme}://{parts.netloc}"

    def url(self, rest_method: str) -> str:
        return self.base + rest_method

    def payload(self, params: "Mapping[str, object]") -> dict[str, object]:
        """The JSON body: empty fields left out, the token (if any) as `auth`."""
        body = {k: v for k, v in params.items() if v not in (None, "")}
        return {**body, "auth": self.token} if self.token else body


class Call(Record, kw_only=True):
    """One method call, fully checked: what execute() needs and nothing to parse."""

    method: Method
    endpoint: Endpoint
    user_ids: tuple[str, ...] = ()  # empty: the webhook's (or token's) own user
    many: bool = False  # a list form (or all) was given: batch, output keyed by user
    params: tuple[tuple[str, str], ...] = ()  # REST fields other than USER_ID, in table order
    settings: Settings = Settings()
    out: str | None = None  # absolute path
    debug: bool = False
    test: bool = False
    redactor: Redactor = Redactor()
    all_users: bool = False  # --userid all: user_ids is empty until user.get has listed the active users
    if_needed: bool = False  # read each status first; call only where it changes the day
    plan: bool = False  # read users and statuses, say what would be done, change nothing
    auth_file: str | None = None  # absolute path of an auth file whose token is renewed when it expires
    quiet: bool = False  # print nothing on success; on failure the summary and the first failure lines

    @property
    def rest_params(self) -> dict[str, str]:
        return dict(self.params)

    @property
    def reads_first(self) -> bool:
        """--if-needed or --plan: statuses are read before anything is decided."""
        return self.if_needed or self.plan

    def to_json(self) -> dict[str, Any]:
        """Everything a background job needs to make this very call (secrets included:
        the caller keeps this off command lines and out of shared files)."""
        return {name: _ENCODE.get(name, _plain)(getattr(self, name)) for name in fields(self) if name not in _LOCAL}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Call":
        return cls(
            **{
                name: _DECODE.get(name, _plain)(data[name])
                for name in fields(cls)
                if name in data and name not in _LOCAL
            }
        )


def _plain(value: Any) -> Any:
    """JSON's lists and Python's tuples, both ways: a Call holds tuples, JSON lists."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value) if isinstance(value, list) else [_plain(v) for v in value]
    return value


_LOCAL = {"test"}  # --test never travels: a job is started only to send
_ENCODE: "dict[str, Callable[[Any], Any]]" = {
    "method": lambda method: method.name,
    "endpoint": lambda ep: {"base": ep.base, "token": ep.token},
    "settings": Settings.to_json,
    "redactor": lambda redactor: sorted(redactor.secrets),
}
_DECODE: "dict[str, Callable[[Any], Any]]" = {  # JSON in, each field's type out
    "method": lambda name: BY_KEY[name.lower()],
    "endpoint": lambda ep: Endpoint(**ep),
    "settings": Settings.from_json,
    "redactor": lambda secrets: Redactor(frozenset(secrets)),
}
