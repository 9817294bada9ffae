"""Everything the user sees: an Outcome rendered as JSON on stdout or in an
--out file, one-line messages on stderr, help and confirmations.

- Bytes are always UTF-8, whatever the console code page or PYTHONIOENCODING
  (cp1251 and cp866 consoles, redirected output in Windows CMD): we write to
  the binary buffer, never through the text layer's encoder.
- Colour (rich) only on a real console: a terminal on POSIX; on Windows a
  handle for which GetConsoleMode succeeds (`>nul` is a character device that
  isatty() calls a terminal). Never with NO_COLOR or TERM=dumb.
- An answer the portal gave is never lost: when --out cannot be written it
  goes to stdout instead, and the exit status is NOT_WRITTEN (6); when stdout
  itself fails (disk full, I/O error) the status is NOT_WRITTEN too. A reader
  that went away (EPIPE; EINVAL on Windows pipes) is quiet and changes nothing.
- Missing streams (pythonw under Task Scheduler has no stdout/stderr) are
  treated as the null device; --out is still written. On POSIX a missing
  stdout means it was closed (`>&-`): the answer is lost, so that is exit 6.
- A progress bar for runs over many users, on stderr and only on a console.
"""

import errno
import json
import os
import re
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING

from oint_py.bounds import MAX_MESSAGE
from oint_py.files.atomic import write_atomic
from oint_py.outcome import ExitStatus, Outcome

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any, TextIO, TypedDict

    from oint_py.redact import Redactor

    Progress = Callable[[str, int, int], None]
    Recorder = Callable[[dict[str, Any]], None]

    class _Written(TypedDict):
        written: int  # entries written; -1: a path that is not a plain file, written only at the end
        size: int | None  # the file's size
        file: tuple[int, int] | None  # the file's (dev, ino)


class WriteFailed(Exception):
    """A stream refused the bytes (not a reader that left)."""


# C1 controls (U+0080-U+009F) are not escaped by json.dumps, yet some terminals obey them: escape them
_C1_IN_JSON = {c: f"\\u{c:04x}" for c in range(0x80, 0xA0)}
# on stderr every control but tab is shown as an escape: a hostile answer cannot move the cursor or retitle windows
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if c != 0x09}


BLOCK = 1 << 16  # characters of JSON encoded and written at a time


def json_blocks(data: object, redact: "Redactor | None" = None) -> "Iterator[bytes]":
    """The pretty JSON of `data` as UTF-8 blocks of about BLOCK characters,
    never the whole text at once (10,000 users' answers stay small in memory).
    Each block has C1 controls escaped and every registered secret a portal
    echoed masked (JSON strings are never split across blocks, so neither is a
    secret); a lone surrogate becomes its JSON escape."""
    pending: list[str] = []
    size = 0
    for piece in json.JSONEncoder(ensure_ascii=False, indent=2).iterencode(data):
        pending.append(piece)
        size += len(piece)
        if size >= BLOCK:
            yield _block(pending, redact)
            pending, size = [], 0
    pending.append("\n")
    yield _block(pending, redact)


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _block(pieces: list[str], redact: "Redactor | None") -> bytes:
    text = "".join(pieces).translate(_C1_IN_JSON)
    if redact is not None and any(secret in text for secret in redact.secrets):
        # inside JSON strings only: a token `null` must not mask the JSON null
        text = _JSON_STRING.sub(lambda m: '"' + redact.literal(m.group()[1:-1]) + '"', text)
    return text.encode("utf-8", "backslashreplace")


def printable(text: str) -> str:
    return text.translate(_CONTROLS)


def _reader_left(exc: OSError) -> bool:
    return isinstance(exc, BrokenPipeError) or (os.name == "nt" and exc.errno == errno.EINVAL)


def _silence(stream: "TextIO | None") -> None:
    """Point a failed stream at the null device, so that Python's own flush at
    exit does not fail again (and print a traceback of its own)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())  # type: ignore[union-attr]  # None: caught
    except (OSError, ValueError, AttributeError):
        pass


def _write(stream: "TextIO | None", text: str) -> None:
    """Write UTF-8 bytes; raise WriteFailed when the stream refuses them."""
    _send(stream, [text.encode("utf-8", "backslashreplace")])  # a lone surrogate becomes its escape


def _send(stream: "TextIO | None", blocks: "Iterable[bytes]") -> None:
    """Write blocks of UTF-8 bytes to the stream's binary buffer; raise WriteFailed when it refuses them."""
    if stream is None:  # pythonw: no console at all
        return
    try:
        stream.flush()
        buffer = getattr(stream, "buffer", None)
        for block in blocks:
            if buffer is None:  # a StringIO under test
                stream.write(block.decode("utf-8"))
            else:
                buffer.write(block)
        if buffer is not None:
            buffer.flush()
    except OSError as exc:
        _silence(stream)
        if _reader_left(exc):  # `oint ... | head -1`: the reader left; keep the call's own exit code
            return
        raise WriteFailed(exc.strerror or str(exc)) from None


def say(text: str) -> None:
    """A line on stdout (confirmations, listings, help). A failure here loses no answer."""
    try:
        _write(sys.stdout, text if text.endswith("\n") else text + "\n")
    except WriteFailed:
        pass


def warn(text: str, redact: "Callable[[str], str] | None" = None) -> None:
    """One line on stderr, masked by `redact` when given, at most MAX_MESSAGE long."""
    text = printable(redact(text) if redact else text)
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + "... (cut)"
    try:
        _write(sys.stderr, "oint: " + text + "\n")
    except WriteFailed:
        pass


def debug_logger(redact: "Callable[[str], str]") -> "Callable[[str], None]":
    def log(text: str) -> None:
        try:
            _write(sys.stderr, printable(redact(text)) + "\n")
        except WriteFailed:
            pass

    return log


def is_console(stream: "TextIO | None") -> bool:
    try:
        if stream is None or not stream.isatty():
            return False
        if os.name == "nt":
            import ctypes
            import msvcrt

            mode = ctypes.c_ulong()
            # Windows only, where these names exist; mypy checks for POSIX
            return bool(
                ctypes.windll.kernel32.GetConsoleMode(  # type: ignore[attr-defined,unused-ignore]
                    msvcrt.get_osfhandle(stream.fileno()),  # type: ignore[attr-defined,unused-ignore]
                    ctypes.byref(mode),
                )
            )
    except (AttributeError, ValueError, OSError):
        return False
    return True


@contextmanager
def progress_bar(wanted: bool = True) -> "Iterator[Progress | None]":
    """A progress(what, done, total) callback drawing a bar on stderr, or None:
    only on a real console (never in a pipe, a file, cron or Task Scheduler).
    The bar goes away when the run ends, before the outcome is rendered."""
    if not wanted or not is_console(sys.stderr):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, no_color=not use_colour(sys.stderr))
    with Progress(
        TextColumn("oint: {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)
        stage = ["starting"]

        def update(what: str, done: int, total: int) -> None:
            if what != stage[0]:  # a new stage: its own clock (rich stops a task's clock once it is complete)
                stage[0] = what
                bar.reset(task, description=what, completed=done, total=total)
            else:
                bar.update(task, completed=done, total=total)

        yield update


def use_colour(stream: "TextIO | None") -> bool:
    """The one colour policy: rich output only on a real console, never with NO_COLOR or TERM=dumb."""
    return is_console(stream) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def recorder(path: str, redact: "Redactor | None" = None, mode: int | None = None) -> "Recorder":
    """record(entries): a run's entries so far (a dict keyed by user ID that only grows), in `path` at once,
    so that between two batches the file is a whole JSON object holding every entry known. The first batch
    creates the file atomically (files.atomic.write_atomic, `mode` as there); each later batch's new entries are written
    once, in place, over the closing brace, and synced. A rewrite of the whole file after every batch wrote
    386 MB and took 14 MiB more memory for 10,000 users; this writes each entry once. The one window a kill
    -9 can hit is the few microseconds of a batch's own write, which can cut that batch's entries and the
    brace after them. The pretty JSON replaces the file when the run ends. A file someone else changed in
    between (another size or inode) is written anew; a path that is not a plain file (`/dev/null`, a FIFO)
    gets only that last write. A write that fails here is left to that last one to report."""
    import itertools
    import stat

    state: _Written = {"written": 0, "size": None, "file": None}  # entries written; the file's size and (dev, ino)

    def whole(entries: "dict[str, Any]") -> None:
        blob = _block([json.dumps(entries, ensure_ascii=False), "\n"], redact)
        write_atomic(path, [blob], mode)
        info = os.lstat(path)
        state.update({"written": len(entries), "size": len(blob), "file": (info.st_dev, info.st_ino)})

    def append(new: "dict[str, Any]") -> bool:
        """The new entries over the closing brace of the file written before; False when it is not that file."""
        # O_NONBLOCK: a FIFO put in its place would block the open for ever (then fstat tells it is not the file)
        flags = os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(path, flags)
        try:
            info = os.fstat(fd)
            if (info.st_dev, info.st_ino) != state["file"] or info.st_size != state["size"]:
                return False
            blob = b"," + _block([json.dumps(new, ensure_ascii=False)[1:], "\n"], redact)
            os.lseek(fd, state["size"] - 2, os.SEEK_SET)  # over "}\n"
            try:
                view = memoryview(blob)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:  # a full disk, a file size limit: the file as it was, not cut inside an entry
                try:
                    os.ftruncate(fd, state["size"])
                    os.lseek(fd, state["size"] - 2, os.SEEK_SET)
                    os.write(fd, b"}\n")  # over bytes already there: no new space needed
                except OSError:
                    pass
                raise
        finally:
            os.close(fd)
        state["size"] += len(blob) - 2
        return True

    def record(entries: "dict[str, Any]") -> None:
        if state["written"] < 0:
            return
        new = dict(itertools.islice(entries.items(), state["written"], None))
        if not new:
            return
        try:
            if state["file"] is None:
                try:
                    info = os.lstat(path)
                except FileNotFoundError:
                    info = None
                if info is not None and not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
                    state["written"] = -1  # a device or a FIFO: only the run's last write
                    return
                whole(entries)
            elif append(new):
                state["written"] += len(new)
            else:
                whole(entries)
        except OSError:
            pass

    return record


def _stdout_json(data: object, redact: "Redactor | None") -> None:
    if sys.stdout is None and os.name != "nt":  # `>&-`: POSIX has no pythonw; a closed stdout loses the answer
        raise WriteFailed("stdout is closed")
    if use_colour(sys.stdout):
        from rich.console import Console

        try:
            Console(soft_wrap=True).print_json(b"".join(json_blocks(data, redact)).decode("utf-8"))
            return
        except UnicodeError:  # a console whose code page cannot show the answer: plain UTF-8 bytes instead
            pass
        except OSError as exc:
            _silence(sys.stdout)
            if _reader_left(exc):
                return
            raise WriteFailed(exc.strerror or str(exc)) from None
    _send(sys.stdout, json_blocks(data, redact))


QUIET_LINES = 20  # failure lines --quiet shows; the rest are counted
TABLE_ROWS = 20  # users a terminal's table shows; the whole answer is JSON in a pipe or --out


def _cell(value: object, redact: "Callable[[str], str] | None") -> str:
    text = "" if value is None else str(value)
    return printable(redact(text) if redact else text)[:200]


def _row(uid: str, entry: object) -> tuple[str, ...]:
    """user, action, status before, time, detail: for a sweep's entry or a plain result keyed by user."""
    if not isinstance(entry, dict):
        return uid, "?", "", "", ""
    if "action" in entry:
        detail = entry.get("reason") or entry.get("unchecked") or entry.get("note") or ""
        if "error" in entry:
            detail = ": ".join(str(p) for p in (entry.get("error"), entry.get("error_description")) if p)
        return uid, str(entry["action"]), entry.get("status_before") or "", entry.get("time") or "", detail
    if "error" in entry:
        return (
            uid,
            "failed",
            "",
            "",
            ": ".join(str(p) for p in (entry.get("error"), entry.get("error_description")) if p),
        )
    record = entry.get("result") if isinstance(entry.get("result"), dict) else entry
    status = record.get("STATUS") if isinstance(record, dict) else None
    return uid, "ok", "", "", f"STATUS {status}" if status else entry.get("note") or ""


def _stdout_table(data: "dict[str, Any]", redact: "Redactor | None") -> None:
    """A terminal's view of a per-user answer: the count of each action, then the first rows."""
    from collections import Counter

    from rich.console import Console
    from rich.table import Table

    rows = [_row(str(uid), entry) for uid, entry in data.items()]
    counts = Counter(row[1] for row in rows)
    console = Console(no_color=not use_colour(sys.stdout), highlight=False)
    console.print(
        ", ".join(f"{n} {action}" for action, n in counts.most_common()) + f" ({len(rows)} users)", markup=False
    )
    table = Table("user", "action", "before", "time", "detail", box=None, header_style="bold")
    for row in rows[:TABLE_ROWS]:
        table.add_row(*(_cell(cell, redact) for cell in row))
    console.print(table)
    if len(rows) > TABLE_ROWS:
        console.print(
            f"... and {len(rows) - TABLE_ROWS} more: the whole answer is JSON through a pipe "
            "(| cat) or with --out FILE",
            markup=False,
        )


def render(
    outcome: Outcome,
    *,
    out: str | None = None,
    redact: "Redactor | None" = None,
    mode: int | None = None,
    quiet: bool = False,
) -> ExitStatus:
    """Show an outcome; return the exit status it ends with (NOT_WRITTEN when
    its answer could not be written where asked). `mode`: for --out files.
    `redact`: the call's Redactor; its registered secrets are masked in the
    JSON too (the portal's data otherwise untouched), and everything on stderr.
    `quiet` (cron): a success prints nothing at all (--out is still written); a
    failure prints its answer as usual, at most QUIET_LINES messages and the summary."""
    status = outcome.status
    silent = quiet and status == ExitStatus.OK
    if outcome.data is not None:
        if out:
            try:
                write_atomic(out, json_blocks(outcome.data, redact), mode)
            except OSError as exc:  # a failure, even under --quiet
                warn(
                    f"--out: cannot write {out} ({exc.strerror or exc}); the call was made, "
                    "and its answer is printed on stdout instead",
                    redact,
                )
                try:
                    _send(sys.stdout, json_blocks(outcome.data, redact))
                except WriteFailed:
                    pass
                status, silent = ExitStatus.NOT_WRITTEN, False
            else:
                if not quiet:
                    say(f"Result written to {out}")
        elif not silent:
            try:
                if outcome.per_user and isinstance(outcome.data, dict) and is_console(sys.stdout):
                    _stdout_table(outcome.data, redact)
                else:
                    _stdout_json(outcome.data, redact)
            except WriteFailed as exc:
                warn(f"cannot write the answer to stdout ({exc}); the call was made", redact)
                status = ExitStatus.NOT_WRITTEN
    if silent:
        return status
    messages = list(outcome.messages)
    if quiet and len(messages) > QUIET_LINES:
        where = out if out and status != ExitStatus.NOT_WRITTEN else "the answer on stdout"
        messages[QUIET_LINES:] = [f"and {len(messages) - QUIET_LINES} more: see {where}"]
    for message in messages + ([outcome.summary] if outcome.summary else []):
        warn(message, redact)
    return status
