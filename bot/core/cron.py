"""Cron schedules (`retrain.schedule`): 5-field expressions in UTC, next and due fire times."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

CRON_EXPECTED = (
    "a cron expression of 5 fields (minute hour day-of-month month day-of-week, in UTC),"
    ' like "0 3 * * 1"'
)
# A scheduler that slept through many ticks acts on a few, not on every one it missed.
DUE_LIMIT = 10

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# The `@` shorthands of Vixie cron and cronie; `@reboot` has no meaning for a schedule in UTC.
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_ITEM = re.compile(r"(?P<range>\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(?P<step>[0-9]+))?")
# The longest days of each month, February counted in a leap year: `0 0 30 2 *` never fires.
_LONGEST = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_from: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTHS, 1),
    _Field("day-of-week", 0, 7, _WEEKDAYS, 0),
)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression: the allowed values of each field (weekday 0 is Sunday).

    `day_star` and `weekday_star` say whether the day fields were written starting with `*`:
    as in Vixie cron, when both day fields are restricted a day matches if either does.
    """

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_star: bool
    weekday_star: bool

    def matches_day(self, day: date) -> bool:
        """Whether the schedule fires on this calendar day (at some minute of it)."""
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.day_star or self.weekday_star:
            return by_day and by_weekday
        return by_day or by_weekday

    def matches(self, moment: datetime) -> bool:
        """Whether the schedule fires at this minute (UTC; seconds are ignored)."""
        moment = _utc(moment)
        return (
            moment.minute in self.minutes
            and moment.hour in self.hours
            and self.matches_day(moment.date())
        )


@lru_cache(maxsize=256)
def parse_cron(text: str) -> CronSchedule:
    """Parse a 5-field cron expression or an `@daily`-style shorthand; `ValueError` says why.

    Each field is `*`, a number, a range `a-b`, any of these with a step (`*/15`, `1-5/2`,
    and `5/15` meaning `5-59/15` as in cronie), or a comma list of them. Months and weekdays
    may be written as English three-letter names (`jan`, `mon-fri`), any case; weekday `7` is
    Sunday like `0`. An expression that can never fire (`0 0 31 2 *`) is refused.
    """
    written = " ".join(text.split())
    expression = _MACROS.get(written.lower(), written)
    if written.startswith("@") and expression == written:
        raise ValueError(f"unknown shorthand {written}; use one of {', '.join(_MACROS)}")
    parts = expression.lower().split(" ")
    if len(parts) != 5:
        raise ValueError(f"expected 5 fields, got {len(parts) if written else 0}")
    values = [_parse_field(part, field) for part, field in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(day % 7 for day in values[4])
    schedule = CronSchedule(
        text=written,
        minutes=values[0],
        hours=values[1],
        days=values[2],
        months=values[3],
        weekdays=weekdays,
        day_star=parts[2].startswith("*"),
        weekday_star=parts[4].startswith("*"),
    )
    if not schedule.day_star and schedule.weekday_star:
        # Only a day of the month restricts the days then: it must exist in a chosen month.
        if not any(day <= _LONGEST[month - 1] for month in values[3] for day in values[2]):
            months = ", ".join(_MONTHS[month - 1] for month in sorted(values[3]))
            raise ValueError(f"never fires: no chosen day of the month occurs in {months}")
    return schedule


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    chosen: set[int] = set()
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        if not match:
            raise ValueError(f"{field.name} {item!r} is not a number, range, list or step")
        if match["range"] == "*":
            low, high = field.low, field.high
        else:
            first, _, last = match["range"].partition("-")
            low = _value(first, field)
            high = _value(last, field) if last else low
            if field.names is _WEEKDAYS and last == "sun":
                high = 7  # `fri-sun`: Sunday is also 7, so a range may end with it
            if match["step"] is not None and not last:
                high = field.high  # `5/15`: from 5 to the end of the field
            if low > high:
                raise ValueError(f"{field.name} range {match['range']} goes backwards")
        step = 1 if match["step"] is None else int(match["step"])
        if step < 1:
            raise ValueError(f"{field.name} step must be at least 1, got {step}")
        chosen.update(range(low, high + 1, step))
    return frozenset(chosen)


def _value(word: str, field: _Field) -> int:
    if word in field.names:
        return field.names.index(word) + field.names_from
    if not word.isdigit():
        hint = f" or a name ({field.names[0]}…{field.names[-1]})" if field.names else ""
        raise ValueError(f"{field.name} {word!r} is not a number{hint}")
    number = int(word)
    if not field.low <= number <= field.high:
        raise ValueError(f"{field.name} {number} is outside {field.low}-{field.high}")
    return number


def _utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _schedule(expression: str | CronSchedule) -> CronSchedule:
    return expression if isinstance(expression, CronSchedule) else parse_cron(expression)


def _days(start: date, forward: bool) -> Iterator[date]:
    """Days from `start` onwards (or backwards); the calendar ends at year 1 and 9999."""
    step = timedelta(days=1 if forward else -1)
    day = start
    while True:
        yield day
        try:
            day += step
        except OverflowError:
            return


def next_after(expression: str | CronSchedule, moment: datetime) -> datetime:
    """The first fire time strictly after `moment`, as an aware UTC datetime.

    `ValueError` if the expression is invalid, or if it never fires again before year 10000.
    """
    schedule = _schedule(expression)
    try:
        start = _utc(moment).replace(second=0, microsecond=0) + timedelta(minutes=1)
    except OverflowError:
        raise ValueError(f"{schedule.text} does not fire after {moment.isoformat()}") from None
    for day in _days(start.date(), forward=True):
        if not schedule.matches_day(day):
            continue
        earliest = start.time() if day == start.date() else time(0, 0)
        for hour in sorted(schedule.hours):
            if hour < earliest.hour:
                continue
            for minute in sorted(schedule.minutes):
                if hour == earliest.hour and minute < earliest.minute:
                    continue
                return datetime.combine(day, time(hour, minute), tzinfo=UTC)
    raise ValueError(f"{schedule.text} does not fire after {start.isoformat()}")


def last_at_or_before(expression: str | CronSchedule, moment: datetime) -> datetime | None:
    """The latest fire time at or before `moment` (aware UTC), or None if there is none."""
    schedule = _schedule(expression)
    end = _utc(moment).replace(second=0, microsecond=0)
    for day in _days(end.date(), forward=False):
        if not schedule.matches_day(day):
            continue
        latest = end.time() if day == end.date() else time(23, 59)
        for hour in sorted(schedule.hours, reverse=True):
            if hour > latest.hour:
                continue
            for minute in sorted(schedule.minutes, reverse=True):
                if hour == latest.hour and minute > latest.minute:
                    continue
                return datetime.combine(day, time(hour, minute), tzinfo=UTC)
    return None


def due(
    expression: str | CronSchedule,
    last_tick: datetime,
    now: datetime,
    limit: int = DUE_LIMIT,
) -> list[datetime]:
    """Fire times in (`last_tick`, `now`], oldest first: the latest `limit` of them.

    A scheduler passes the time it last looked and the time now, from whatever clock it is
    given, so tests drive it without waiting. After a long pause only the latest `limit`
    ticks are returned: the older ones are moot once a newer one is due.
    """
    if limit < 1:
        return []
    schedule = _schedule(expression)
    last, end = _utc(last_tick), _utc(now)
    found: list[datetime] = []
    moment: datetime | None = end
    while moment is not None and len(found) < limit:
        tick = last_at_or_before(schedule, moment)
        if tick is None or tick <= last:
            break
        found.append(tick)
        moment = tick - timedelta(minutes=1)
    found.reverse()
    return found
