"""The auth file: an app's token pair kept alive across runs, safe under
concurrency and crashes.

The file (written by `GetToken --save`) is the OAuth server's token answer plus
`client_id`, `client_secret`, `oauth_server`, `saved_at` and
`refresh_token_issued_at` (unix times). Bitrix24's refresh tokens are
single-use: each refresh answers a new pair and kills the old one, so the
chain must never branch. Hence:
- renew only when needed: the portal answered `expired_token`, or the stored
  `expires` has passed; a process renews at most once (Renewing.renewed);
- one renewal at a time: an exclusive lock on the sibling file `<file>.lock`
  (fcntl.flock on POSIX, msvcrt.locking on Windows), waited for at most
  twice --timeout (lock_wait). Under the lock the file is read again: a pair another
  process saved meanwhile is used as it is, with no request;
- all or nothing: the new pair is written by the one atomic writer
  (files.atomic: a temporary file in the same folder, O_EXCL|O_NOFOLLOW, 0600,
  fsync, a rename retried briefly on Windows, the folder fsynced). A crash
  leaves the old file or the new one, never half;
- a refresh whose answer never arrived keeps the old file and exits 4, saying
  the refresh token may have been used;
- a chain that cannot be renewed (invalid_grant, invalid_client, invalid_token,
  NOT_INSTALLED, PAYMENT_REQUIRED, NO_AUTH_FOUND after a renewal) ends with
  exit 7 and the steps to authorise the app again; the file is left untouched;
- private: the file 0600 and its folder are refused (exit 5, naming them) when
  a symbolic link, another user's, or open to group or others (POSIX).

Renewing as often as a run needs: whenever the stored expiry has passed or the portal answers
`expired_token` for the call just sent, at most once per call; on `invalid_token` the file is read
again under the lock (another process renewed it, which revoked ours) and the call sent once more
with the newer pair. A 401 means the portal did not run the method, so nothing is sent twice.

A pair never dropped: before the refresh token is spent, the lock is taken and the folder is shown
to take a file (a probe the size of the pair, which finds a read-only folder, a full disk, a quota
or a file-size limit); a save that fails after all keeps the new pair in the private sibling
`<file>.pending`, which the next run moves into place under the lock (PENDING), and else names
the command that saves it. The saved portal never moves: a refresh answer whose `client_endpoint`
names another origin is not adopted. Lifetimes are bounded when saved (an access token cannot
outlive its refresh token's REFRESH_TOKEN_DAYS; `expires` in milliseconds is read as such).
The OAuth server is https or loopback (oauth.check_server), unless the user opts in.
"""

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from oint_py import bounds
from oint_py.outcome import ExitStatus, OintError, UsageError

if TYPE_CHECKING:
    from oint_py.rest.answer import Answer
    from oint_py.rest.client import Caller, Confirm, Payload
    from oint_py.settings import Settings

REQUIRED = ("access_token", "refresh_token", "client_id", "client_secret", "oauth_server", "client_endpoint")
# what the portal answers when the app itself is refused: no new token can help
PORTAL_REAUTH = ("invalid_token", "NOT_INSTALLED", "PAYMENT_REQUIRED")
# what the OAuth server answers when the refresh token or the app's credentials are refused
GRANT_REAUTH = ("invalid_grant", "invalid_client", "wrong_client", "unauthorized_client")
PENDING = ".pending"  # the sibling that keeps a renewed pair the auth file could not take
LIFETIME_MAX = bounds.REFRESH_TOKEN_DAYS * 86400  # seconds: no access token outlives its refresh token


class Reauthorize(OintError):
    """The chain cannot be renewed: a person must authorise the app again."""

    status = ExitStatus.REAUTHORIZE


class SignalledDuringRenewal(KeyboardInterrupt):
    """A stop (SIGINT, SIGTERM, SIGHUP) came while a renewal was under way and waited for its save: nothing
    more is sent. `unapplied`: the call it came during was refused (401) or never sent."""

    unapplied = False


# -- privacy -------------------------------------------------------------------
def check_private(path: str, must_exist: bool = True) -> None:
    """Refuse an auth file (and its folder) that is a link, another user's, or open to others; and, as
    for the jobs folder, a folder below one that another user owns or can write to (who could swap it
    between this check and the open, and have oint read their file or write the renewed pair into theirs).
    The rules are files.private's, the same for every private file and folder."""
    from oint_py.files import private

    folder = os.path.dirname(path)
    private.check_parents(folder, "auth file folder")
    private.check(folder, "auth file folder")
    create = f"; create it with GetToken --code ... --save {path}"
    private.check(path, "auth file", folder=False, missing=create if must_exist else None)


# -- reading and writing ---------------------------------------------------------
def load(path: str) -> dict[str, Any]:
    """The auth file's data, checked: private, JSON, every field a renewal needs. UsageError (exit 5) otherwise."""
    check_private(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as fh:
            raw = fh.read(bounds.MAX_AUTH_FILE + 1)
    except OSError as exc:
        raise UsageError(f"auth file {path}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > bounds.MAX_AUTH_FILE:
        raise UsageError(f"auth file {path} is larger than {bounds.MAX_AUTH_FILE // 1024} KiB: not an auth file")
    try:
        data = bounds.load_json(raw, f"auth file {path}")
    except bounds.BoundError as exc:
        raise UsageError(f"{exc}; it is damaged: create it again with GetToken --code ... --save {path}") from None
    if not isinstance(data, dict):
        raise UsageError(f"auth file {path} is not a JSON object; create it again with GetToken --save")
    missing = [k for k in REQUIRED if not (isinstance(data.get(k), str) and data[k].strip())]
    if missing == ["client_secret"]:
        raise UsageError(
            f"auth file {path} has a refresh token but no client_secret, which a renewal needs; "
            "create it again with GetToken --save"
        )
    if missing:
        raise UsageError(
            f"auth file {path} lacks {', '.join(missing)}; it is not an auth file written by "
            "GetToken --save (or it was damaged): create it again"
        )
    for key in ("client_endpoint", "oauth_server"):
        if urlsplit(data[key]).scheme not in ("http", "https"):
            raise UsageError(f"auth file {path}: {key} {data[key]!r} is not an http(s) address")
    from oint_py.auth.oauth import check_server

    check_server(data["oauth_server"], f"auth file {path}: its oauth_server")
    if not isinstance(data.get("expires"), (int, float)) or isinstance(data.get("expires"), bool):
        raise UsageError(f"auth file {path} lacks expires (when the access token expires, unix time)")
    return data


def _seconds(value: object) -> float | None:
    """A time or lifetime given as a JSON number or as a numeric string (as a PHP server may), else None."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else value


def _endpoint(value: object) -> bool:
    return isinstance(value, str) and urlsplit(value.strip()).scheme in ("http", "https")


def compose(
    answer: dict[str, Any], client_id: str, client_secret: str, server: str, old: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An auth file's data from a token answer, in the shape load() accepts: a refresh answer has
    spent the refresh token, so the pair it holds must land in a file the next run can use. A refresh
    answer without a refresh_token (or a usable client_endpoint) keeps the one before (as botocore
    does); `expires` and `expires_in` given as numeric strings are read as numbers."""
    now = int(time.time())
    data = {
        **(old or {}),
        **answer,
        "client_id": client_id,
        "client_secret": client_secret,
        "oauth_server": server,
        "saved_at": now,
    }
    if isinstance(answer.get("refresh_token"), str) and answer["refresh_token"]:
        data["refresh_token_issued_at"] = now
    elif old is not None:
        data["refresh_token"] = old.get("refresh_token")
    if old is not None and not _endpoint(answer.get("client_endpoint")):
        data["client_endpoint"] = old.get("client_endpoint")
    ttl, expires = _seconds(answer.get("expires_in")), _seconds(answer.get("expires"))
    if ttl is not None and ttl <= 0:  # a lifetime of nothing would renew on every run: as if none was given
        ttl = None
    if ttl is not None and ttl > LIFETIME_MAX:  # an access token cannot outlive its refresh token
        ttl = LIFETIME_MAX
    if expires is not None and expires > now + LIFETIME_MAX:  # milliseconds (as JavaScript counts), or nonsense
        expires = expires / 1000 if now < expires / 1000 <= now + LIFETIME_MAX else None
        if expires is not None:
            expires = int(expires) if float(expires).is_integer() else expires
    if expires is not None and expires <= now:  # over already (a clock far off, or nonsense): likewise
        expires = None
    if ttl is not None:
        data["expires_in"] = ttl
    if expires is None:  # no time from the server: its lifetime from now, else Bitrix24's hour (a wrong guess
        # costs one call the portal answers expired_token, then a renewal; never a renewal on every run)
        expires = now + (ttl if ttl is not None else bounds.ACCESS_TOKEN_SECONDS)
    data["expires"] = expires
    # when it expires by this machine's clock, which may be off from the server's: a clock an hour fast
    # must not make every run renew (Bitrix24 may block an app that refreshes before every call)
    # (counted from now, after the answer arrived, so never before the server's own expiry: no early renewal)
    data["expires_local"] = time.time() + ttl if ttl is not None else expires
    return data


def save(path: str, data: dict[str, Any]) -> None:
    """Write `data` to `path` all or nothing, 0600 whatever the umask (under its lock: see locked), by the
    one atomic writer (files.atomic), after removing the temporary copies a killed write left.
    OSError when it cannot be written; the file before (if any) is then as it was."""
    from oint_py.files.atomic import remove_leftovers, write_atomic
    from oint_py.files.private import PRIVATE_FILE

    remove_leftovers(path)
    # ASCII only: a lone surrogate an OAuth server sent (JSON allows "\\ud800") cannot fail the encoding
    write_atomic(path, (json.dumps(data, ensure_ascii=True, indent=2) + "\n").encode("ascii"), PRIVATE_FILE)


def lock_wait(settings: "Settings") -> float:
    """How long to wait for another process renewing: its token request is bounded by
    --timeout, so twice that (60 s with the default 30), and never under AUTH_LOCK_MIN_WAIT."""
    return max(bounds.AUTH_LOCK_MIN_WAIT, 2 * settings.timeout)


@contextmanager
def locked(path: str, wait: float) -> Iterator[None]:
    """Hold an exclusive lock on `<path>.lock` (never the auth file itself: it is
    replaced by rename). Waits at most `wait` seconds, then exit 4."""
    from oint_py.files.lock import exclusive

    lock = path + ".lock"

    def busy(fd: int) -> Exception:
        return OintError(
            f"auth file {path}: another process has held its lock {lock} for more than "
            f"{wait:g} s; nothing was sent. Is another oint stuck?",
            ExitStatus.REQUEST_FAILED,
        )

    with exclusive(lock, wait, busy, what="auth file lock"):
        yield


# -- a pair never dropped ------------------------------------------------------------
def check_room(path: str, spent: str = "the refresh token") -> None:
    """Before `spent` is used up: the folder takes a file at least the size of the new pair (a probe written
    and removed as the pair would be), so a read-only folder, a full disk, a quota or a file-size limit is
    found while nothing is lost. OintError (exit 6, nothing sent) otherwise."""
    folder, name = os.path.split(path)
    probe = os.path.join(folder, f".{name}.probe")
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    try:
        save(probe, {"probe": "x" * max(4096, 2 * size)})
        os.unlink(probe)
    except OSError as exc:
        try:
            os.unlink(probe)
        except OSError:
            pass
        raise OintError(
            f"auth file {path}: its folder {folder} cannot take the new pair ({exc.strerror or exc}); nothing "
            f"was sent, so {spent} is still good: make room or make the folder writable, then run again",
            ExitStatus.NOT_WRITTEN,
        ) from None


def pending(path: str) -> str:
    """The private sibling that keeps a renewed pair the auth file could not take."""
    return path + PENDING


def drop_pending(path: str) -> None:
    """Remove the pending pair once the auth file holds a newer one (under the lock)."""
    try:
        os.unlink(pending(path))
    except FileNotFoundError:
        pass
    except OSError:
        pass


def current(path: str, notes: list[str]) -> dict[str, Any]:
    """Under the lock: the live pair. A pair a run before could not save in the auth file waits in its
    pending sibling: it is moved into place (a rename, which needs no room), or, when that fails, used
    from there."""
    waiting = pending(path)
    if not os.path.lexists(waiting):
        return load(path)
    data = load(waiting)
    from oint_py.files.atomic import replace, sync_folder

    try:
        replace(waiting, path)
    except OSError as exc:
        notes.append(
            f"auth file {path}: it still holds a spent refresh token; the live pair is in {waiting} "
            f"(used by this run), which could not be moved into place ({exc.strerror or exc})"
        )
        return data
    sync_folder(os.path.dirname(os.path.abspath(path)))
    notes.append(f"auth file {path}: the pair a run before could not save there was moved into it from {waiting}")
    return data


def store(path: str, new: dict[str, Any], old: dict[str, Any], notes: list[str]) -> bool:
    """Save a renewed pair; when the auth file cannot take it, keep it in the pending sibling, and say
    plainly where it went. Whether the auth file holds it."""
    try:
        save(path, new)
    except OSError as exc:
        why = exc.strerror or str(exc)
        if new.get("refresh_token") == old.get("refresh_token"):  # not rotated: the file's refresh token still works
            notes.append(
                f"auth file {path}: the renewed access token could not be saved there ({why}); its refresh token was not spent"
            )
            return False
        waiting = pending(path)
        try:
            save(waiting, new)
        except OSError as again:
            notes.append(
                f"auth file {path}: the renewed pair could not be saved ({why}), nor kept in {waiting} "
                f"({again.strerror or again}): the file still holds a spent refresh token, and the live one "
                "exists only in this run. To keep the chain, as soon as the folder can be written run: oint "
                f"bitrix24 RefreshToken --refresh {new['refresh_token']} --save {path}"
            )
            return False
        notes.append(
            f"auth file {path}: the renewed pair could not be saved there ({why}): the file still holds a "
            f"spent refresh token; the new pair was kept in {waiting}, which the next run moves into place"
        )
        return False
    drop_pending(path)
    return True


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url.strip())
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


def _keep_origin(path: str, answer: dict[str, Any], old: dict[str, Any], new: dict[str, Any], notes: list[str]) -> None:
    """A refresh answer's client_endpoint on another origin is not adopted: that host would get every later
    run's access token. Moving takes --url or a new GetToken --save."""
    named = answer.get("client_endpoint")
    if isinstance(named, str) and _endpoint(named) and _origin(named) != _origin(old["client_endpoint"]):
        new["client_endpoint"] = old["client_endpoint"]
        notes.append(
            f"auth file {path}: the OAuth server's answer names another portal ({str(named)[:200]}); not adopted, "
            f"the file keeps {old['client_endpoint']}. If the portal moved, give --url, or authorise again with "
            "GetToken --save"
        )


# -- renewing ----------------------------------------------------------------------
def expired(data: dict[str, Any], now: float | None = None) -> bool:
    """Whether the stored expiry has passed, by this machine's clock (see compose)."""
    when = data.get("expires_local")
    when = when if isinstance(when, (int, float)) and not isinstance(when, bool) else data["expires"]
    return not (time.time() if now is None else now) < when  # NaN: expired


def reauthorize_text(path: str, data: dict[str, Any], why: str) -> str:
    parts = urlsplit(data.get("client_endpoint") or "")
    netloc = parts.netloc.rpartition("@")[2]  # the port kept, and the scheme unless https (the link's default)
    portal = (f"http://{netloc}" if parts.scheme == "http" else netloc) if netloc else "PORTAL"
    return (
        f"a person must authorise the app again: {why}. The auth file {path} was left as it was. Steps: "
        f"1) oint bitrix24 GetAppAuthLink --domain {portal} --clientid {data.get('client_id') or 'CLIENT_ID'}; "
        "2) open the link it prints in a browser, signed in to the portal as the user the app acts for, and "
        "allow the app: the browser lands on the app's page with code=... in its address (a code lives 30 "
        f"seconds); 3) at once: oint bitrix24 GetToken --oauth-server {data.get('oauth_server') or 'URL'} "
        f"--code CODE --save {path} (the client id and secret from OINT_BITRIX24_CLIENT_ID and "
        "OINT_BITRIX24_CLIENT_SECRET, or --clientid and --clientsecret). Then run this command again"
    )


def renew(
    path: str,
    used: str,
    settings: "Settings",
    log: Callable[[str], None],
    why: str,
    notes: list[str],
    signals: list[int],
) -> tuple[dict[str, Any], bool]:
    """(a live pair, whether the auth file holds it) for the auth file whose access token `used` was refused
    (or has expired): the one another process saved meanwhile, else a new one from the OAuth server, saved
    (or kept: see store) before it is returned. `signals`: given those that came during the exchange and
    the save and were delivered after it to a handler that asks the run to stop."""
    from oint_py.auth import oauth
    from oint_py.files.signals import deferred

    with locked(path, lock_wait(settings)):
        data = current(path, notes)  # again, under the lock: another process may have renewed it
        if data["access_token"] != used and not expired(data):
            log(f"  auth file: another process renewed the token; using the pair it saved in {path}")
            return data, True
        check_room(path)
        log(f"  auth file: renewing the access token ({why})")
        # a signal from here to the save waits for it (bounded by --timeout): the refresh token is single-use,
        # so a pair received and not saved is lost for good, and a person must authorise the app again
        with deferred() as delivered:
            params = {
                "grant_type": "refresh_token",
                "client_id": data["client_id"],
                "client_secret": data["client_secret"],
                "refresh_token": data["refresh_token"],
            }
            try:
                # the proxy chosen for the OAuth server, not the portal's (NO_PROXY may name one of them)
                route = settings.replace(proxy=settings.token_proxy)
                status, answer = oauth.token(data["oauth_server"], params, route, log)
            except oauth.NotSent as exc:
                raise OintError(
                    f"{exc}; nothing was sent and the auth file {path} is unchanged", ExitStatus.REQUEST_FAILED
                ) from None
            except oauth.NoAnswer as exc:
                raise OintError(
                    f"renewing the access token: {exc}. The refresh token may have been used; the auth "
                    f"file {path} was kept as it was. Run again: if the renewal did not happen it works, "
                    "if it did the run ends with exit 7 and the steps to authorise the app again",
                    ExitStatus.REQUEST_FAILED,
                ) from None
            error = answer.get("error")
            if error in GRANT_REAUTH:
                raise Reauthorize(
                    reauthorize_text(
                        path,
                        data,
                        f"the OAuth server refused the renewal with {error}"
                        f" ({str(answer.get('error_description') or '')[:200]})",
                    )
                )
            if error is not None:
                raise OintError(
                    f"the OAuth server refused the renewal: HTTP {status} {str(error)[:100]}: "
                    f"{str(answer.get('error_description') or '')[:200]}; the auth file {path} is "
                    "unchanged",
                    ExitStatus.API_ERROR,
                )
            if not answer.get("refresh_token"):
                log("  auth file: the answer has no refresh_token; the one before is kept")
            new = compose(answer, data["client_id"], data["client_secret"], data["oauth_server"], old=data)
            _keep_origin(path, answer, data, new, notes)
            saved = store(path, new, data, notes)
        signals.extend(delivered)
    if saved:
        log(f"  auth file: saved the new pair in {path}")
    return new, saved


def _unapplied(exc: BaseException, top: bool) -> BaseException:
    """`exc`, marked for a run over many users: nothing of the call it ended was applied (it was never sent,
    or the portal refused it with 401) when it is a call of the run's own, not a status read inside one."""
    setattr(exc, "unapplied", top)  # noqa: B010 - read with getattr by sweep.py, which imports no auth file
    return exc


class Renewing:
    """A transport Client whose calls carry the auth file's access token and renew it whenever it
    expired (by the stored expiry, or as the portal says for the call just sent: at most once per call),
    then send the refused call once more. `notes`: lines about the auth file for the run's stderr;
    `unsaved`: the last renewed pair is not in the auth file (see store)."""

    def __init__(self, client: "Caller", path: str, settings: "Settings", log: Callable[[str], None] | None = None):
        self.client, self.path, self.settings = client, path, settings
        self.log = log or (lambda line: None)
        self.notes: list[str] = []
        self.unsaved = False
        self.depth = 0  # calls under way: a status read inside a call's confirm is at depth 2
        if os.path.lexists(pending(path)):  # a pair a run before could not save: taken under the lock
            with locked(path, lock_wait(settings)):
                self.data = current(path, self.notes)
            self.unsaved = os.path.lexists(pending(path))  # still there: the auth file holds a spent refresh token
        else:
            self.data = load(path)  # again: another process may have renewed it since the options were read

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def close(self) -> None:
        self.client.close()

    def _renew(self, why: str, top: bool) -> None:
        signals: list[int] = []
        try:
            self.data, saved = renew(
                self.path, self.data["access_token"], self.settings, self.log, why, self.notes, signals
            )
        except OintError as exc:
            raise _unapplied(exc, top) from None
        except KeyboardInterrupt:  # a second signal, or SIGINT's own handler, once the pair was saved
            raise _unapplied(SignalledDuringRenewal(), top) from None
        self.unsaved = not saved
        if signals:  # a stop came during the renewal: nothing more is sent, not even the refused call
            raise _unapplied(SignalledDuringRenewal(), top)

    def _reread(self) -> dict[str, Any]:
        """The auth file read again under its lock: one that is renewing right now has the new pair (ours is
        revoked already) and holds the lock until it is saved."""
        with locked(self.path, lock_wait(self.settings)):
            return current(self.path, self.notes)

    def _current(self, confirm: "Confirm") -> "Confirm":
        """`confirm` whose payload to send again carries the token live by then: the status read it makes
        may have renewed the pair, which revoked the token the refused call was sent with."""

        def current(payload: "Payload") -> "Answer | Payload":
            settled = confirm(payload)
            return {**settled, "auth": self.data["access_token"]} if isinstance(settled, dict) else settled

        return current

    def call(
        self, url: str, payload: "Payload", confirm: "Confirm | None" = None, retries: int | None = None
    ) -> "Answer":
        if "auth" not in payload:
            return self.client.call(url, payload, confirm, retries)
        self.depth += 1
        try:
            return self._call(url, payload, confirm, retries, self.depth == 1)
        finally:
            self.depth -= 1

    def _not_after_a_stop(self, why: str) -> None:
        """After a stop nothing more is sent, and no refresh token is spent: a renewal takes one for good."""
        from oint_py.files.signals import NotReached

        if self.client.is_stopped():
            raise NotReached(why)

    def _call(
        self, url: str, payload: "Payload", confirm: "Confirm | None", retries: int | None, top: bool
    ) -> "Answer":
        renewed = False
        if confirm is not None:
            self._not_after_a_stop("not sent: the run was stopped before it")  # as rest.client: no change after it
        if expired(self.data):
            self._not_after_a_stop("not sent: the token had to be renewed, and the run was stopped before it")
            self._renew("its stored expiry has passed", top)
            renewed = True
        if confirm is not None:
            confirm = self._current(confirm)
        # The portal answers 401 (expired_token, or invalid_token for a token another process's renewal
        # revoked) before it runs the method: the call was not applied, and sending it once more, with the
        # live token, cannot apply it twice. At most three sends: after a renewal, after a newer pair read.
        for sent in range(3):
            answer = self.client.call(url, {**payload, "auth": self.data["access_token"]}, confirm, retries)
            error = answer.error
            if sent == 2:
                break
            if error == "expired_token" and not renewed:
                self._not_after_a_stop("the portal answered expired_token, and the run was stopped: not renewed")
                self._renew("the portal answered expired_token", top)
                renewed = True
                continue
            if error == "invalid_token":  # another process renewed the pair, which revoked ours: use its pair
                fresh = self._reread()
                if fresh["access_token"] != self.data["access_token"]:
                    self.data = fresh
                    continue
            break
        if error in PORTAL_REAUTH or (error == "NO_AUTH_FOUND" and renewed):
            raise _unapplied(
                Reauthorize(
                    reauthorize_text(
                        self.path,
                        self.data,
                        f"the portal answered {error} "
                        f"({str((answer.body or {}).get('error_description') or '')[:200]})",
                    )
                ),
                top,
            )
        return answer
