"""Everything the user sees: JSON on stdout, --out files, one-line messages on
stderr, and the exit code that goes with each outcome.

Bytes are always UTF-8, whatever the console code page or PYTHONIOENCODING
(cp1251 and cp866 consoles, redirected output in Windows CMD): we write to the
binary buffer, never through the text layer's encoder.
"""

import json
import os
import sys
import tempfile

from . import redact
from .errors import UsageFailure


def dumps(data) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _write(stream, text: str) -> None:
    try:
        stream.flush()
        buffer = getattr(stream, "buffer", None)
        if buffer is None:  # a StringIO under test
            stream.write(text)
        else:
            buffer.write(text.encode("utf-8"))
            buffer.flush()
    except BrokenPipeError:
        # `oint ... | head -1`: the reader left. Say no more, and keep the exit
        # code of the call itself rather than turning it into a crash.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        except (OSError, ValueError):
            pass


def say(text: str) -> None:
    """A line on stdout (confirmations, listings, help)."""
    _write(sys.stdout, text if text.endswith("\n") else text + "\n")


def warn(text: str) -> None:
    """One line on stderr, with every secret masked."""
    _write(sys.stderr, "oint: " + redact.redact(text).replace("\n", " ") + "\n")


def debug(text: str) -> None:
    _write(sys.stderr, redact.redact(text) + "\n")


def _use_colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def check_out(path: str) -> str:
    """Validate --out before anything is sent: the folder must exist and be writable."""
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise UsageFailure(f"--out {path!r} is a directory")
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise UsageFailure(f"--out: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageFailure(f"--out: folder {folder!r} is not writable")
    return target


def write_atomic(path: str, text: str) -> None:
    """Write to a temporary file beside `path`, then rename over it: a reader
    never sees half a file, and a failed run leaves the old file as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".oint-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def emit(data, out: str | None = None) -> None:
    text = dumps(data)
    if out:
        try:
            write_atomic(out, text)
        except OSError as exc:
            raise UsageFailure(f"--out: cannot write {out!r} (the call was made): {exc.strerror or exc}") from None
        say(f"Result written to {out}")
    elif _use_colour():
        from rich.console import Console

        Console(soft_wrap=True).print_json(text)
    else:
        _write(sys.stdout, text)
