"""Cron schedules: every field form, the day-of-month/day-of-week rule, next and due fire times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.cron import DUE_LIMIT, due, last_at_or_before, next_after, parse_cron


def at(text: str) -> datetime:
    """`2024-02-28 23:59` as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(expression: str, start: str, count: int) -> list[str]:
    """The next `count` fire times after `start`, as `YYYY-MM-DD HH:MM` (UTC)."""
    moments: list[str] = []
    moment = at(start)
    for _ in range(count):
        moment = next_after(expression, moment)
        moments.append(moment.strftime("%Y-%m-%d %H:%M"))
    return moments


# --- fields ----------------------------------------------------------------------------------


def test_every_field_star_is_every_value() -> None:
    schedule = parse_cron("* * * * *")
    assert schedule.minutes == frozenset(range(60))
    assert schedule.hours == frozenset(range(24))
    assert schedule.days == frozenset(range(1, 32))
    assert schedule.months == frozenset(range(1, 13))
    assert schedule.weekdays == frozenset(range(7))


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("5", {5}),
        ("1,15,30", {1, 15, 30}),
        ("10-13", {10, 11, 12, 13}),
        ("*/15", {0, 15, 30, 45}),
        ("1-5/2", {1, 3, 5}),
        ("1-6/2", {1, 3, 5}),
        ("50/4", {50, 54, 58}),  # cronie: N/step runs from N to the end of the field
        ("0-59/30,7", {0, 30, 7}),
        ("*/61", {0}),  # a step past the end leaves the start only
        ("59", {59}),
        ("0", {0}),
    ],
)
def test_minute_field_forms(field: str, values: set[int]) -> None:
    assert parse_cron(f"{field} * * * *").minutes == frozenset(values)


def test_day_of_month_steps_start_at_1() -> None:
    assert parse_cron("0 0 */10 * *").days == frozenset({1, 11, 21, 31})


def test_month_names_in_any_case_ranges_and_lists() -> None:
    assert parse_cron("0 0 1 JAN,jul *").months == frozenset({1, 7})
    assert parse_cron("0 0 1 mar-may *").months == frozenset({3, 4, 5})
    assert parse_cron("0 0 1 Jan-Dec/3 *").months == frozenset({1, 4, 7, 10})


def test_weekday_names_and_sunday_as_0_or_7() -> None:
    assert parse_cron("0 0 * * mon-fri").weekdays == frozenset({1, 2, 3, 4, 5})
    assert parse_cron("0 0 * * 7").weekdays == frozenset({0})
    assert parse_cron("0 0 * * 0").weekdays == frozenset({0})
    assert parse_cron("0 0 * * 5-7").weekdays == frozenset({5, 6, 0})
    assert parse_cron("0 0 * * fri-sun").weekdays == frozenset({5, 6, 0})
    assert parse_cron("0 0 * * SUN,sat").weekdays == frozenset({0, 6})
    assert parse_cron("0 0 * * 0-7").weekdays == frozenset(range(7))


@pytest.mark.parametrize(
    ("macro", "expanded"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@HOURLY", "0 * * * *"),
    ],
)
def test_shorthands_mean_their_expression(macro: str, expanded: str) -> None:
    mine, theirs = parse_cron(macro), parse_cron(expanded)
    assert (mine.minutes, mine.hours, mine.days, mine.months, mine.weekdays) == (
        theirs.minutes,
        theirs.hours,
        theirs.days,
        theirs.months,
        theirs.weekdays,
    )


def test_extra_spaces_and_tabs_separate_fields() -> None:
    assert parse_cron("  0\t3  * *   1 ").text == "0 3 * * 1"


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("", "expected 5 fields, got 0"),
        ("0 3 * *", "expected 5 fields, got 4"),
        ("0 3 * * 1 2025", "expected 5 fields, got 6"),
        ("60 * * * *", "minute 60 is outside 0-59"),
        ("* 24 * * *", "hour 24 is outside 0-23"),
        ("* * 0 * *", "day-of-month 0 is outside 1-31"),
        ("* * 32 * *", "day-of-month 32 is outside 1-31"),
        ("* * * 13 *", "month 13 is outside 1-12"),
        ("* * * 0 *", "month 0 is outside 1-12"),
        ("* * * * 8", "day-of-week 8 is outside 0-7"),
        ("5-1 * * * *", "minute range 5-1 goes backwards"),
        ("* * * * fri-mon", "day-of-week range fri-mon goes backwards"),
        ("*/0 * * * *", "minute step must be at least 1, got 0"),
        ("* * * jan-foo *", "month 'foo' is not a number or a name (jan…dec)"),
        ("* * * * monday", "day-of-week 'monday' is not a number or a name (sun…sat)"),
        ("mon * * * *", "minute 'mon' is not a number"),
        ("1,,2 * * * *", "minute '' is not a number, range, list or step"),
        ("*/ * * * *", "minute '*/' is not a number, range, list or step"),
        ("? * * * *", "minute '?' is not a number, range, list or step"),
        ("0 0 L * *", "day-of-month 'l' is not a number"),
        ("-1 * * * *", "minute '-1' is not a number, range, list or step"),
        ("@reboot", "unknown shorthand @reboot; use one of @yearly"),
        ("0 0 30 2 *", "never fires: no chosen day of the month occurs in feb"),
        ("0 0 31 4,6,9,11 *", "never fires: no chosen day of the month occurs in apr, jun, sep"),
    ],
)
def test_invalid_expressions_say_why(expression: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_cron(expression)
    assert str(caught.value).startswith(reason), str(caught.value)


def test_impossible_day_of_month_is_fine_when_the_weekday_can_fire() -> None:
    # Both day fields restricted: either matches, so Mondays in February still fire.
    assert next_after("0 0 30 2 mon", at("2024-01-31 00:00")) == at("2024-02-05 00:00")


def test_day_31_fires_only_in_months_that_have_it() -> None:
    assert fires("0 0 31 * *", "2024-01-31 00:00", 4) == [
        "2024-03-31 00:00",
        "2024-05-31 00:00",
        "2024-07-31 00:00",
        "2024-08-31 00:00",
    ]


# --- next fire time --------------------------------------------------------------------------


def test_weekly_design_example_fires_on_mondays_at_3_utc() -> None:
    # 2024-01-01 was a Monday.
    assert fires("0 3 * * 1", "2024-01-01 00:00", 3) == [
        "2024-01-01 03:00",
        "2024-01-08 03:00",
        "2024-01-15 03:00",
    ]


def test_next_is_strictly_after_the_given_moment() -> None:
    assert next_after("0 3 * * 1", at("2024-01-01 03:00")) == at("2024-01-08 03:00")
    assert next_after("0 3 * * 1", at("2024-01-01 02:59:59.999")) == at("2024-01-01 03:00")
    assert next_after("* * * * *", at("2024-01-01 03:00:30")) == at("2024-01-01 03:01")


def test_every_15_minutes_crosses_the_hour_and_the_day() -> None:
    assert fires("*/15 * * * *", "2024-12-31 23:30", 3) == [
        "2024-12-31 23:45",
        "2025-01-01 00:00",
        "2025-01-01 00:15",
    ]


def test_ranges_with_steps_in_hours() -> None:
    assert fires("0 1-5/2 * * *", "2024-03-10 00:00", 4) == [
        "2024-03-10 01:00",
        "2024-03-10 03:00",
        "2024-03-10 05:00",
        "2024-03-11 01:00",
    ]


def test_month_end_to_the_next_month() -> None:
    assert fires("30 12 * * *", "2024-04-30 12:30", 1) == ["2024-05-01 12:30"]
    assert fires("0 0 1 * *", "2024-01-31 23:59", 2) == ["2024-02-01 00:00", "2024-03-01 00:00"]


def test_february_29_fires_in_leap_years_only() -> None:
    assert fires("0 0 29 2 *", "2024-03-01 00:00", 2) == ["2028-02-29 00:00", "2032-02-29 00:00"]
    assert next_after("0 0 29 2 *", at("2023-06-01 00:00")) == at("2024-02-29 00:00")


def test_century_years_are_not_leap_unless_divisible_by_400() -> None:
    assert next_after("0 0 29 2 *", at("2096-03-01 00:00")) == at("2104-02-29 00:00")
    assert next_after("0 0 29 2 *", at("1999-01-01 00:00")) == at("2000-02-29 00:00")


def test_sunday_as_0_and_as_7_fire_alike() -> None:
    # 2024-06-02 was a Sunday.
    assert fires("0 12 * * 0", "2024-06-01 00:00", 2) == fires("0 12 * * 7", "2024-06-01 00:00", 2)
    assert fires("0 12 * * 7", "2024-06-01 00:00", 2) == ["2024-06-02 12:00", "2024-06-09 12:00"]


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # Vixie cron: the 13th, and every Friday. 2024-09-06 was a Friday.
    assert fires("0 0 13 * 5", "2024-09-01 00:00", 4) == [
        "2024-09-06 00:00",
        "2024-09-13 00:00",
        "2024-09-20 00:00",
        "2024-09-27 00:00",
    ]


def test_day_of_month_and_day_of_week_when_one_is_a_star() -> None:
    # `*/2` starts with `*`: Vixie cron then needs both, so only odd days that are Mondays.
    # September 2024: Mondays are the 2nd, 9th, 16th, 23rd and 30th.
    assert fires("0 0 */2 9 mon", "2024-09-01 00:00", 2) == ["2024-09-09 00:00", "2024-09-23 00:00"]
    assert fires("0 0 * * mon", "2024-09-01 00:00", 1) == ["2024-09-02 00:00"]
    assert fires("0 0 13 * *", "2024-09-01 00:00", 1) == ["2024-09-13 00:00"]


def test_yearly_on_a_named_month() -> None:
    assert fires("15 6 4 jul *", "2024-07-04 06:15", 2) == ["2025-07-04 06:15", "2026-07-04 06:15"]


def test_other_time_zones_are_converted_to_utc() -> None:
    paris = timezone(timedelta(hours=2))
    moment = datetime(2024, 6, 3, 4, 30, tzinfo=paris)  # 02:30 UTC
    assert next_after("0 3 * * *", moment) == at("2024-06-03 03:00")
    assert next_after("0 3 * * *", moment).tzinfo == UTC


def test_naive_datetimes_are_utc() -> None:
    assert next_after("0 3 * * *", datetime(2024, 6, 3, 2, 30)) == at("2024-06-03 03:00")


def test_next_after_the_end_of_the_calendar_is_an_error() -> None:
    with pytest.raises(ValueError, match="does not fire after"):
        next_after("0 0 1 1 *", at("9999-06-01 00:00"))
    with pytest.raises(ValueError, match="does not fire after"):
        next_after("* * * * *", datetime.max.replace(tzinfo=UTC))


# --- last and due ----------------------------------------------------------------------------


def test_last_at_or_before_includes_the_moment_itself() -> None:
    assert last_at_or_before("0 3 * * 1", at("2024-01-08 03:00")) == at("2024-01-08 03:00")
    assert last_at_or_before("0 3 * * 1", at("2024-01-08 02:59")) == at("2024-01-01 03:00")
    assert last_at_or_before("0 0 1 1 *", at("0001-06-01 00:00")) == at("0001-01-01 00:00")
    assert last_at_or_before("0 0 2 1 *", at("0001-01-01 12:00")) is None


def test_due_is_the_ticks_after_last_up_to_and_including_now() -> None:
    ticks = due("*/15 * * * *", at("2024-01-01 00:00"), at("2024-01-01 01:00"))
    assert ticks == [at(f"2024-01-01 {t}") for t in ("00:15", "00:30", "00:45", "01:00")]


def test_due_excludes_a_tick_at_the_last_look() -> None:
    assert due("0 3 * * *", at("2024-01-01 03:00"), at("2024-01-01 03:00:59")) == []
    assert due("0 3 * * *", at("2024-01-01 02:59:59"), at("2024-01-01 03:00")) == [
        at("2024-01-01 03:00")
    ]


def test_due_when_now_is_before_the_last_look_is_empty() -> None:
    assert due("* * * * *", at("2024-01-02 00:00"), at("2024-01-01 00:00")) == []


def test_due_after_a_long_pause_keeps_only_the_latest_ticks() -> None:
    ticks = due("* * * * *", at("2020-01-01 00:00"), at("2024-01-01 00:00"))
    assert len(ticks) == DUE_LIMIT
    assert ticks[-1] == at("2024-01-01 00:00")
    assert ticks[0] == at("2024-01-01 00:00") - timedelta(minutes=DUE_LIMIT - 1)
    assert due("* * * * *", at("2020-01-01 00:00"), at("2024-01-01 00:00"), limit=1) == [
        at("2024-01-01 00:00")
    ]
    assert due("* * * * *", at("2020-01-01 00:00"), at("2024-01-01 00:00"), limit=0) == []


def test_due_over_a_week_of_the_design_schedule() -> None:
    ticks = due("0 3 * * 1", at("2024-01-01 03:00"), at("2024-01-15 03:00"))
    assert ticks == [at("2024-01-08 03:00"), at("2024-01-15 03:00")]


def test_matches_ignores_seconds() -> None:
    schedule = parse_cron("0 3 * * 1")
    assert schedule.matches(at("2024-01-08 03:00:59"))
    assert not schedule.matches(at("2024-01-08 03:01"))
    assert not schedule.matches(at("2024-01-09 03:00"))


# --- properties ------------------------------------------------------------------------------

_FIELD_PARTS = [
    st.sampled_from(["*", "*/7", "0", "5,35", "10-20/5", "59"]),
    st.sampled_from(["*", "*/5", "3", "0-23/6", "22,23"]),
    st.sampled_from(["*", "1", "15", "*/9", "28-31", "31"]),
    st.sampled_from(["*", "1", "feb", "jun-aug", "*/4", "12"]),
    st.sampled_from(["*", "0", "7", "mon-fri", "sat,sun", "3"]),
]


@settings(max_examples=200, deadline=None)
@given(
    parts=st.tuples(*_FIELD_PARTS),
    start=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)),
)
def test_next_after_is_the_first_matching_minute(parts: tuple[str, ...], start: datetime) -> None:
    expression = " ".join(parts)
    try:
        schedule = parse_cron(expression)
    except ValueError:
        return  # `31` in June only: refused, tested above
    found = next_after(schedule, start)
    assert found > start.replace(tzinfo=UTC)
    assert schedule.matches(found)
    assert last_at_or_before(schedule, found) == found
    # Nothing matched in between: the previous fire time is at or before the start.
    previous = last_at_or_before(schedule, found - timedelta(minutes=1))
    assert previous is None or previous <= start.replace(tzinfo=UTC)
