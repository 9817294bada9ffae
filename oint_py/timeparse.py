"""Turn what people type into the PHP ATOM time Bitrix24 accepts.

Bitrix24's timeman methods want `YYYY-MM-DDTHH:MM:SS+HH:MM`: an offset with a
colon and no fractional seconds. oint sends the local time labelled `Z`, which
the portal rejects (WRONG_DATETIME_FORMAT). We accept:

- `2026-05-26T14:13:07`          naive: this machine's UTC offset for that date (DST-aware)
- `2026-05-26 14:13:07`          a space instead of `T`
- `2026-05-26T14:13`             seconds left out
- `2026-05-26T14:13:07.123`      fractional seconds (dropped)
- `2026-05-26T14:13:07+03:00`    an explicit offset (`+0300` and `+03` too)
- `2026-05-26T11:13:07Z`         UTC
- `14:13` / `14:13:07`           today, local time
- `now`                          this moment, local time

Anything else raises ValueError with a message that says what is accepted.
"""

import re
from datetime import date, datetime, time, timedelta, timezone

ACCEPTED = (
    "YYYY-MM-DDTHH:MM[:SS][.fff][Z|+HH:MM] (a space may replace T), HH:MM[:SS] for today, or 'now'"
)

_FULL = re.compile(
    r"""^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})
        [Tt ]
        (?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,]\d{1,9})?)?
        \s*(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?$""",
    re.VERBOSE,
)
_CLOCK = re.compile(r"^(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?$")


def _offset(tz: str) -> timezone:
    if tz in ("Z", "z"):
        return timezone.utc
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {tz!r} is out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _local(day: date, clock: time) -> datetime:
    # astimezone() on a naive datetime uses the machine's time zone rules for
    # that very date, so a summer date gets the summer offset.
    return datetime.combine(day, clock).astimezone()


def to_atom(text: str, *, now: datetime | None = None) -> str:
    """Return `text` as PHP ATOM (`2026-05-26T14:13:07+03:00`) or raise ValueError."""
    raw = text.strip()
    try:
        if raw.lower() == "now":
            moment = (now or datetime.now()).astimezone().replace(microsecond=0)
        elif m := _CLOCK.match(raw):
            today = (now or datetime.now()).date()
            moment = _local(today, time(int(m["h"]), int(m["mi"]), int(m["s"] or 0)))
        elif m := _FULL.match(raw):
            day = date(int(m["y"]), int(m["mo"]), int(m["d"]))
            clock = time(int(m["h"]), int(m["mi"]), int(m["s"] or 0))
            if m["tz"]:
                moment = datetime.combine(day, clock, tzinfo=_offset(m["tz"]))
            else:
                moment = _local(day, clock)
        else:
            raise ValueError("unrecognised format")
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"invalid --time {text!r} ({exc}); expected {ACCEPTED}") from None
    return moment.isoformat(timespec="seconds")
