"""The sandbox's OAuth server: Bitrix24's `/oauth/authorize/` and `/oauth/token/`
as the reference describes them, with tokens that expire in seconds if asked.

- The authorize step redirects to the app's page with a `code` that lives
  CODE_TTL seconds and is good once.
- `/oauth/token/?grant_type=authorization_code|refresh_token&client_id=...&
  client_secret=...&code=...|refresh_token=...` answers a new pair. A refresh
  token is single-use, and using it revokes the access token issued with it
  (older Bitrix24 docs say both become invalid).
- Access tokens live `ttl` seconds (`oint sandbox --token-ttl`); a method call
  with one that expired is answered 401 `expired_token`, with one unknown or
  revoked 401 `invalid_token`.
- `counts` says how many grants of each kind were made, and how many refreshes
  came while the access token issued with that refresh token was still valid
  (`early_refreshes`: Bitrix24 may block an app that refreshes before need).
No sockets here (server.py serves it). Thread-safe (one lock).
"""

import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

CLIENT_ID = "local.5f3a9c2e1b7d40.61832057"  # the sandbox's one app: shaped like a Bitrix24 local app's id
CLIENT_SECRET = "sbx8Qm2VtK4nR7wZ1pL9cX3yH6dF0gJ5aE"
CODE_TTL = 30  # seconds, as on Bitrix24
DEFAULT_TTL = 3600
MEMBER_ID = "5a4f1c0e9b8d7c6b5a4f3e2d1c0b9a87"
SCOPE = "timeman,user,app"


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


class _Access(TypedDict):
    expires: float
    revoked: bool


class _Refresh(TypedDict):
    access: str  # the access token issued with it
    used: bool


class OAuthState:
    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        clock: Callable[[], float] = time.time,
    ):
        self.ttl, self.client_id, self.client_secret, self.clock = ttl, client_id, client_secret, clock
        self.lock = threading.Lock()
        self.access: dict[str, _Access] = {}  # access token -> {"expires": float, "revoked": bool}
        self.refresh: dict[str, _Refresh] = {}  # refresh token -> {"access": str, "used": bool}
        self.codes: dict[str, float] = {}  # code -> when it expires (removed once used)
        self.counts = {"authorize": 0, "code_grants": 0, "refreshes": 0, "early_refreshes": 0, "refused": 0}

    # -- the browser step --------------------------------------------------
    def authorize(self, client_id: str) -> str:
        """A new code for the app, or OAuthError when the app is unknown."""
        if client_id != self.client_id:
            raise OAuthError(400, "invalid_client", "Unknown client_id")
        code = secrets.token_hex(16)
        with self.lock:
            self.codes[code] = self.clock() + CODE_TTL
            self.counts["authorize"] += 1
        return code

    # -- the token endpoint ------------------------------------------------
    def grant(
        self, params: Mapping[str, str], portal_base: str, server_base: str, rotate: bool = True
    ) -> dict[str, Any]:
        """The token answer for `params` (the query of /oauth/token/), or OAuthError.
        `rotate` False: answer without a refresh_token and keep the old one (a server that lies)."""
        with self.lock:
            try:
                return self._grant(params, portal_base, server_base, rotate)
            except OAuthError:
                self.counts["refused"] += 1
                raise

    def _grant(self, params: Mapping[str, str], portal_base: str, server_base: str, rotate: bool) -> dict[str, Any]:
        kind = params.get("grant_type")
        if kind not in ("authorization_code", "refresh_token"):
            raise OAuthError(400, "invalid_request", "grant_type must be authorization_code or refresh_token")
        if params.get("client_id") != self.client_id or params.get("client_secret") != self.client_secret:
            raise OAuthError(401, "invalid_client", "Wrong client_id or client_secret")
        now = self.clock()
        if kind == "authorization_code":
            expires = self.codes.pop(params.get("code") or "", None)
            if expires is None or now > expires:
                raise OAuthError(400, "invalid_grant", "The authorization code is invalid, used or expired")
            self.counts["code_grants"] += 1
        else:
            old = params.get("refresh_token") or ""
            entry = self.refresh.get(old)
            if entry is None or entry["used"]:
                raise OAuthError(400, "invalid_grant", "The refresh token is invalid or was already used")
            self.counts["refreshes"] += 1
            previous = self.access[entry["access"]]
            if now < previous["expires"] and not previous["revoked"]:
                self.counts["early_refreshes"] += 1
            previous["revoked"] = True  # the access token issued with this refresh token dies with it
            if rotate:
                entry["used"] = True
            else:
                # filled below, under the same lock: the same refresh token now goes with the new access token
                entry["access"] = None  # type: ignore[typeddict-item]  # None for that moment only
        access = secrets.token_hex(24)
        expires = now + self.ttl
        self.access[access] = {"expires": expires, "revoked": False}
        answer = {
            "access_token": access,
            "expires": math.ceil(expires),
            "expires_in": int(self.ttl),
            "scope": SCOPE,
            "domain": server_base.split("://", 1)[-1],
            "server_endpoint": server_base + "/rest/",
            "status": "L",
            "client_endpoint": portal_base + "/rest/",
            "member_id": MEMBER_ID,
            "user_id": 1,
        }
        if kind == "refresh_token" and not rotate:
            self.refresh[params["refresh_token"]]["access"] = access
            return answer
        refresh = secrets.token_hex(24)
        self.refresh[refresh] = {"access": access, "used": False}
        return {**answer, "refresh_token": refresh}

    # -- method calls ------------------------------------------------------
    def check(self, token: str) -> bool:
        """True for a live access token issued here; OAuthError for one that expired
        or was revoked; False for a token this server never issued."""
        with self.lock:
            entry = self.access.get(token)
            if entry is None:
                return False
            if entry["revoked"]:
                raise OAuthError(401, "invalid_token", "The access token provided is invalid.")
            if self.clock() >= entry["expires"]:
                raise OAuthError(401, "expired_token", "The access token provided has expired.")
            return True
