"""Turn what people type into the PHP ATOM time Bitrix24 accepts.

Bitrix24's timeman methods want `YYYY-MM-DDTHH:MM:SS+HH:MM`: an offset with a
colon and no fractional seconds. oint sends the local time labelled `Z`, which
the portal rejects (WRONG_DATETIME_FORMAT). We accept:

- `2026-05-26T14:13:07`          naive: this machine's time zone, by its real rules for that date
- `2026-05-26 14:13:07`          a space instead of `T`
- `2026-05-26T14:13`             seconds left out
- `2026-05-26T14:13:07.123`      fractional seconds (dropped)
- `2026-05-26T14:13:07+03:00`    an explicit offset (`+0300` and `+03` too)
- `2026-05-26T11:13:07Z`         UTC
- `14:13` / `14:13:07`           today, local time
- `now`                          this moment, local time

A naive time that does not exist in the local zone (the spring-forward gap)
or exists twice (the fall-back overlap) is refused, naming the gap or both
readings: guessing would move a workday by an hour. The local zone comes from
tzlocal (TZ, /etc/localtime, the Windows registry) with the tz database's
rules through zoneinfo; tzlocal is imported only when a naive time is given.

Anything else raises ValueError with a message that says what is accepted.
"""

import re
from datetime import date, datetime, time, timedelta, timezone, tzinfo

ACCEPTED = "YYYY-MM-DDTHH:MM[:SS][.fff][Z|+HH:MM] (a space may replace T), HH:MM[:SS] for today, or 'now'"

_FULL = re.compile(
    r"""^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})
        [Tt ]
        (?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,]\d{1,9})?)?
        \s*(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?$""",
    re.VERBOSE,
)
_CLOCK = re.compile(r"^(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?$")


class TimeError(ValueError):
    """A --time that cannot be sent as typed; the message is complete."""


def _offset(tz: str) -> timezone:
    if tz in ("Z", "z"):
        return timezone.utc
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {tz!r} is out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def local_zone() -> tzinfo | None:
    """This machine's time zone with its DST rules, or None when it cannot be named."""
    try:
        import tzlocal

        return tzlocal.get_localzone()
    except Exception:  # an unreadable or unknown zone: fall back to the C library's offsets
        return None


def _local(naive: datetime, zone: tzinfo | None) -> datetime:
    if zone is None:
        try:
            return naive.astimezone()  # the C library's rules for that date (localtime)
        except (OSError, OverflowError) as exc:  # Windows' localtime_s refuses years before 1970
            raise ValueError(f"no local time for {naive.date()}: {exc}") from None
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    shown = naive.isoformat(sep="T", timespec="seconds")
    back = first.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None)
    if back != naive:
        before, after = first.utcoffset(), second.utcoffset()
        raise TimeError(
            f"--time {shown} does not exist in {zone} (the clocks jump at that hour, "
            f"{_fmt(before)} to {_fmt(after)}); give the time with an explicit offset"
        )
    readings = " or ".join(moment.isoformat(timespec="seconds") for moment in (first, second))
    raise TimeError(f"--time {shown} happens twice in {zone} ({readings}); give the offset you mean")


def _fmt(offset: timedelta | None) -> str:
    minutes = int((offset or timedelta()).total_seconds()) // 60
    return f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def to_atom(text: str, *, now: datetime | None = None, zone: tzinfo | None = None) -> str:
    """Return `text` as PHP ATOM (`2026-05-26T14:13:07+03:00`) or raise ValueError.
    `zone` stands for this machine's zone (tests); `now` for this moment."""
    raw = text.strip()
    try:
        if raw.lower() == "now":
            moment = (now or datetime.now(timezone.utc)).astimezone(zone or local_zone()).replace(microsecond=0)
        elif m := _CLOCK.match(raw):
            zone = zone or local_zone()
            today = (now or datetime.now(timezone.utc)).astimezone(zone).date()
            moment = _local(datetime.combine(today, time(int(m["h"]), int(m["mi"]), int(m["s"] or 0))), zone)
        elif m := _FULL.match(raw):
            day = date(int(m["y"]), int(m["mo"]), int(m["d"]))
            clock = time(int(m["h"]), int(m["mi"]), int(m["s"] or 0))
            if m["tz"]:
                moment = datetime.combine(day, clock, tzinfo=_offset(m["tz"]))
            else:
                moment = _local(datetime.combine(day, clock), zone or local_zone())
        else:
            raise ValueError("unrecognised format")
    except TimeError:
        raise
    except (ValueError, OverflowError, OSError) as exc:
        raise ValueError(f"invalid --time {text!r} ({exc}); expected {ACCEPTED}") from None
    return moment.isoformat(timespec="seconds")
