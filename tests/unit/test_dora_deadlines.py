"""Reporting deadlines and the Belgian calendar (DORA.md section 2; Delegated Regulation (EU) 2025/301 Art. 5).

Expected instants are written by hand from the rules, in UTC (Europe/Brussels is UTC+1 in winter, UTC+2 from the
last Sunday of March to the last Sunday of October):

* initial: 4 hours after classification as major, but no later than 24 hours after awareness; classified more
  than 24 hours after awareness: 4 hours after classification;
* intermediate: 72 hours after the initial notification was submitted;
* final: one month after the latest intermediate report (same Brussels date and wall-clock time, clamped to the
  month's end);
* a deadline on a Saturday, Sunday or Belgian public holiday (Brussels date) moves to 12:00 Brussels of the next
  working day, except initial and intermediate reports of credit institutions, CCPs, trading-venue operators
  and NIS2 entities (their final report does move).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from ledger.dora.calendar import BRUSSELS, belgian_holidays, easter_sunday, is_working_day, next_working_day
from ledger.dora.deadlines import add_one_month, final_deadline, initial_deadline, intermediate_deadline
from ledger.errors import ValidationError


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def initial(aware: datetime, classified: datetime, **options: Any) -> Any:
    return initial_deadline(aware, classified, **options)


def intermediate(submitted: datetime, **options: Any) -> Any:
    return intermediate_deadline(submitted, **options)


def final(submitted: datetime, **options: Any) -> Any:
    return final_deadline(submitted, **options)


def d(case_id: str, compute: Any, args: tuple[datetime, ...], expected: datetime, moved: bool, **options: Any) -> Any:
    return pytest.param(compute, args, options, expected, moved, id=case_id)


CI = {"entity_type": "credit_institution"}
NO_RULE = {"weekend_rule": False}

DEADLINE_CASES = [
    # --- initial notification: 4 h after classification, capped at 24 h after awareness --------------------
    d(
        "initial-4h-after-classification",
        initial,
        (utc(2026, 1, 12, 8), utc(2026, 1, 12, 10)),
        utc(2026, 1, 12, 14),
        False,
    ),
    d(
        "initial-exactly-20h-both-limits-agree",
        initial,
        (utc(2026, 1, 12, 8), utc(2026, 1, 13, 4)),
        utc(2026, 1, 13, 8),
        False,
    ),
    d("initial-22h-24h-cap-applies", initial, (utc(2026, 1, 12, 8), utc(2026, 1, 13, 6)), utc(2026, 1, 13, 8), False),
    d(
        "initial-classified-at-24h-cap-applies",
        initial,
        (utc(2026, 1, 12, 8), utc(2026, 1, 13, 8)),
        utc(2026, 1, 13, 8),
        False,
    ),
    d(
        "initial-classified-24h01-4h-from-classification",
        initial,
        (utc(2026, 1, 12, 8), utc(2026, 1, 13, 8, 1)),
        utc(2026, 1, 13, 12, 1),
        False,
    ),
    d(
        "initial-classified-49h-late-4h-from-classification",
        initial,
        (utc(2026, 1, 12, 8), utc(2026, 1, 14, 9)),
        utc(2026, 1, 14, 13),
        False,
    ),
    # --- weekend rule, entity_type "other" ---------------------------------------------------------------
    # Saturday 10 January 2026 10:00 UTC (11:00 CET) -> Monday 12 January 12:00 CET.
    d("initial-saturday-moved", initial, (utc(2026, 1, 9, 14), utc(2026, 1, 10, 6)), utc(2026, 1, 12, 11), True),
    d("initial-sunday-moved", initial, (utc(2026, 1, 11, 7), utc(2026, 1, 11, 8)), utc(2026, 1, 12, 11), True),
    # Friday 23:30 UTC is Saturday 00:30 in Brussels.
    d(
        "initial-friday-evening-lands-on-saturday",
        initial,
        (utc(2026, 1, 9, 19), utc(2026, 1, 9, 19, 30)),
        utc(2026, 1, 12, 11),
        True,
    ),
    # Sunday 23:30 UTC is Monday 00:30 in Brussels: a working day.
    d(
        "initial-sunday-utc-monday-brussels-not-moved",
        initial,
        (utc(2026, 1, 11, 19), utc(2026, 1, 11, 19, 30)),
        utc(2026, 1, 11, 23, 30),
        False,
    ),
    # Summer: Friday 12 June 2026 22:30 UTC is Saturday 00:30 CEST -> Monday 15 June 12:00 CEST = 10:00 UTC.
    d(
        "initial-summer-friday-evening-moved",
        initial,
        (utc(2026, 6, 12, 18), utc(2026, 6, 12, 18, 30)),
        utc(2026, 6, 15, 10),
        True,
    ),
    d(
        "initial-saturday-weekend-rule-off",
        initial,
        (utc(2026, 1, 9, 14), utc(2026, 1, 10, 6)),
        utc(2026, 1, 10, 10),
        False,
        **NO_RULE,
    ),
    # --- exemptions: initial and intermediate do not move, the final report does ----------------------------
    d(
        "initial-saturday-credit-institution-not-moved",
        initial,
        (utc(2026, 1, 9, 14), utc(2026, 1, 10, 6)),
        utc(2026, 1, 10, 10),
        False,
        **CI,
    ),
    d("intermediate-sunday-other-moved", intermediate, (utc(2026, 1, 8, 12),), utc(2026, 1, 12, 11), True),
    d(
        "intermediate-sunday-credit-institution-not-moved",
        intermediate,
        (utc(2026, 1, 8, 12),),
        utc(2026, 1, 11, 12),
        False,
        **CI,
    ),
    # 14 January 2026 11:00 CET + one month = Saturday 14 February 11:00 CET -> Monday 16 February 12:00 CET.
    d("final-saturday-credit-institution-moved", final, (utc(2026, 1, 14, 10),), utc(2026, 2, 16, 11), True, **CI),
    d("final-saturday-other-moved", final, (utc(2026, 1, 14, 10),), utc(2026, 2, 16, 11), True),
    d(
        "initial-easter-monday-credit-institution-not-moved",
        initial,
        (utc(2026, 4, 6, 6), utc(2026, 4, 6, 7)),
        utc(2026, 4, 6, 11),
        False,
        **CI,
    ),
    # --- Belgian public holidays (entity_type "other") ----------------------------------------------------
    # Easter Monday 6 April 2026, 11:00 UTC (13:00 CEST) -> Tuesday 7 April 12:00 CEST = 10:00 UTC.
    d("initial-easter-monday-2026", initial, (utc(2026, 4, 6, 6), utc(2026, 4, 6, 7)), utc(2026, 4, 7, 10), True),
    # Ascension Thursday 14 May 2026 -> Friday 15 May.
    d("intermediate-ascension-2026", intermediate, (utc(2026, 5, 11, 9),), utc(2026, 5, 15, 10), True),
    # Whit Monday 25 May 2026 -> Tuesday 26 May.
    d("intermediate-whit-monday-2026", intermediate, (utc(2026, 5, 22, 8),), utc(2026, 5, 26, 10), True),
    # Easter Monday 29 March 2027 (CEST since 28 March) -> Tuesday 30 March 12:00 CEST.
    d("initial-easter-monday-2027", initial, (utc(2027, 3, 29, 5), utc(2027, 3, 29, 5)), utc(2027, 3, 30, 10), True),
    # Ascension Thursday 6 May 2027: 6 April 2027 10:00 CEST + one month -> Friday 7 May 12:00 CEST.
    d("final-ascension-2027", final, (utc(2027, 4, 6, 8),), utc(2027, 5, 7, 10), True),
    # Labour Day Friday 1 May 2026 -> Monday 4 May.
    d("intermediate-labour-day-2026", intermediate, (utc(2026, 4, 28, 12),), utc(2026, 5, 4, 10), True),
    # National Day Tuesday 21 July 2026 -> Wednesday 22 July.
    d("intermediate-21-july-2026", intermediate, (utc(2026, 7, 18, 10),), utc(2026, 7, 22, 10), True),
    # Assumption Tuesday 15 August 2028: 15 July 2028 11:00 CEST + one month -> Wednesday 16 August 12:00 CEST.
    d("final-15-august-2028", final, (utc(2028, 7, 15, 9),), utc(2028, 8, 16, 10), True),
    # All Saints' Monday 1 November 2027 (CET since 31 October) -> Tuesday 2 November 12:00 CET = 11:00 UTC.
    d("initial-1-november-2027", initial, (utc(2027, 11, 1, 8), utc(2027, 11, 1, 9)), utc(2027, 11, 2, 11), True),
    # Armistice Wednesday 11 November 2026 -> Thursday 12 November.
    d("intermediate-11-november-2026", intermediate, (utc(2026, 11, 8, 15),), utc(2026, 11, 12, 11), True),
    # Christmas on Friday 25 December 2026, then a weekend -> Monday 28 December.
    d(
        "intermediate-christmas-friday-then-weekend",
        intermediate,
        (utc(2026, 12, 22, 10),),
        utc(2026, 12, 28, 11),
        True,
    ),
    # New Year's Day Friday 1 January 2027: 1 December 2026 10:00 CET + one month -> Monday 4 January 2027.
    d("final-new-year-2027", final, (utc(2026, 12, 1, 9),), utc(2027, 1, 4, 11), True),
    # 26 December 2025 (Friday) is not a Belgian public holiday.
    d("intermediate-26-december-not-a-holiday", intermediate, (utc(2025, 12, 23, 10),), utc(2025, 12, 26, 10), False),
    # Good Friday 3 April 2026 is not a Belgian public holiday.
    d("intermediate-good-friday-not-a-holiday", intermediate, (utc(2026, 3, 31, 9),), utc(2026, 4, 3, 9), False),
    # --- intermediate: 72 elapsed hours ------------------------------------------------------------------
    d("intermediate-72h", intermediate, (utc(2026, 1, 12, 9, 15),), utc(2026, 1, 15, 9, 15), False),
    # Across the spring DST change: Friday 27 March 2026 11:00 CET -> Monday 30 March 12:00 CEST.
    d("intermediate-72h-across-spring-dst", intermediate, (utc(2026, 3, 27, 10),), utc(2026, 3, 30, 10), False),
    # Across the autumn change, on Sunday 25 October 2026 -> Monday 26 October 12:00 CET = 11:00 UTC.
    d("intermediate-autumn-dst-sunday-moved", intermediate, (utc(2026, 10, 22, 10),), utc(2026, 10, 26, 11), True),
    d(
        "intermediate-autumn-dst-sunday-credit-institution",
        intermediate,
        (utc(2026, 10, 22, 10),),
        utc(2026, 10, 25, 10),
        False,
        **CI,
    ),
    # --- final: one month after the latest intermediate report -------------------------------------------
    d("final-31-january-to-28-february-2026", final, (utc(2026, 1, 31, 10),), utc(2026, 2, 28, 10), False, **NO_RULE),
    # 28 February 2026 is a Saturday -> Monday 2 March 12:00 CET.
    d("final-31-january-to-28-february-saturday-moved", final, (utc(2026, 1, 31, 10),), utc(2026, 3, 2, 11), True),
    d("final-31-january-to-29-february-leap-2028", final, (utc(2028, 1, 31, 10),), utc(2028, 2, 29, 10), False),
    d("final-30-april-to-30-may-2025", final, (utc(2025, 4, 30, 8),), utc(2025, 5, 30, 8), False),
    d("final-30-april-to-30-may-2026-rule-off", final, (utc(2026, 4, 30, 8),), utc(2026, 5, 30, 8), False, **NO_RULE),
    # Saturday 30 May 2026 -> Monday 1 June 12:00 CEST.
    d("final-30-april-to-30-may-2026-saturday-moved", final, (utc(2026, 4, 30, 8),), utc(2026, 6, 1, 10), True),
    d("final-31-march-to-30-april", final, (utc(2026, 3, 31, 10),), utc(2026, 4, 30, 10), False),
    # 10 March 2026 11:00 CET -> 10 April 2026 11:00 CEST = 09:00 UTC.
    d("final-spring-dst-inside-the-month", final, (utc(2026, 3, 10, 10),), utc(2026, 4, 10, 9), False),
    # 13 October 2026 12:00 CEST -> 13 November 2026 12:00 CET = 11:00 UTC.
    d("final-autumn-dst-inside-the-month", final, (utc(2026, 10, 13, 10),), utc(2026, 11, 13, 11), False),
    d("final-31-december-to-31-january", final, (utc(2026, 12, 31, 10),), utc(2027, 1, 31, 10), False, **NO_RULE),
    d("final-saturday-weekend-rule-off", final, (utc(2026, 1, 14, 10),), utc(2026, 2, 14, 10), False, **NO_RULE),
    d("final-christmas-weekend-rule-off", final, (utc(2026, 11, 25, 10),), utc(2026, 12, 25, 10), False, **NO_RULE),
]


@pytest.mark.parametrize(("compute", "args", "options", "expected", "moved"), DEADLINE_CASES)
def test_deadline(
    compute: Any, args: tuple[datetime, ...], options: dict[str, Any], expected: datetime, moved: bool
) -> None:
    deadline = compute(*args, **options)
    assert deadline.due_at == expected
    assert deadline.due_at.utcoffset() == timedelta(0)
    assert (deadline.moved_from is not None) is moved


def test_there_are_at_least_twenty_deadline_cases() -> None:
    assert len(DEADLINE_CASES) >= 20


@pytest.mark.parametrize("entity_type", ["central_counterparty", "trading_venue_operator", "nis2_entity"])
def test_other_exempt_entities(entity_type: str) -> None:
    # Initial on Saturday 10 January 2026 and intermediate on Sunday 11 January: not moved.
    first = initial_deadline(utc(2026, 1, 9, 14), utc(2026, 1, 10, 6), entity_type=entity_type)
    assert first.due_at == utc(2026, 1, 10, 10)
    assert first.moved_from is None
    second = intermediate_deadline(utc(2026, 1, 8, 12), entity_type=entity_type)
    assert second.due_at == utc(2026, 1, 11, 12)
    assert second.moved_from is None
    # Final on Saturday 14 February 2026: moved to Monday 16 February 12:00 CET.
    last = final_deadline(utc(2026, 1, 14, 10), entity_type=entity_type)
    assert last.due_at == utc(2026, 2, 16, 11)
    assert last.moved_from == utc(2026, 2, 14, 10)


def test_moved_deadline_keeps_the_original() -> None:
    deadline = initial_deadline(utc(2026, 1, 9, 14), utc(2026, 1, 10, 6))
    assert deadline.stage == "initial"
    assert deadline.moved_from == utc(2026, 1, 10, 10)
    assert deadline.due_at.astimezone(BRUSSELS).hour == 12
    assert deadline.moved_because


def test_stages() -> None:
    assert initial_deadline(utc(2026, 1, 12, 8), utc(2026, 1, 12, 10)).stage == "initial"
    assert intermediate_deadline(utc(2026, 1, 12, 8)).stage == "intermediate"
    assert final_deadline(utc(2026, 1, 12, 8)).stage == "final"


def test_offset_inputs_give_the_same_instant_in_utc() -> None:
    aware = datetime(2026, 1, 12, 9, 0, tzinfo=BRUSSELS)  # 08:00 UTC
    classified = datetime(2026, 1, 12, 12, 0, tzinfo=timezone(timedelta(hours=2)))  # 10:00 UTC
    deadline = initial_deadline(aware, classified)
    assert deadline.due_at == utc(2026, 1, 12, 14)
    assert deadline.due_at.utcoffset() == timedelta(0)
    assert intermediate_deadline(classified).due_at == utc(2026, 1, 15, 10)
    assert final_deadline(classified).due_at == utc(2026, 2, 12, 10)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param(utc(2026, 1, 31, 10), utc(2026, 2, 28, 10), id="31-january-2026"),
        pytest.param(utc(2028, 1, 31, 10), utc(2028, 2, 29, 10), id="31-january-2028-leap"),
        pytest.param(utc(2026, 4, 30, 8), utc(2026, 5, 30, 8), id="30-april"),
        pytest.param(utc(2026, 3, 10, 10), utc(2026, 4, 10, 9), id="spring-dst"),
        pytest.param(utc(2026, 10, 13, 10), utc(2026, 11, 13, 11), id="autumn-dst"),
        pytest.param(utc(2026, 12, 31, 10), utc(2027, 1, 31, 10), id="year-end"),
        pytest.param(utc(2026, 8, 31, 9), utc(2026, 9, 30, 9), id="31-august-to-30-september"),
    ],
)
def test_add_one_month(moment: datetime, expected: datetime) -> None:
    assert add_one_month(moment) == expected


NAIVE = datetime(2026, 1, 12, 8, 0)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: initial_deadline(NAIVE, utc(2026, 1, 12, 10)), id="initial-naive-awareness"),
        pytest.param(lambda: initial_deadline(utc(2026, 1, 12, 8), NAIVE), id="initial-naive-classification"),
        pytest.param(lambda: intermediate_deadline(NAIVE), id="intermediate-naive"),
        pytest.param(lambda: final_deadline(NAIVE), id="final-naive"),
        pytest.param(lambda: add_one_month(NAIVE), id="add-one-month-naive"),
        pytest.param(
            lambda: initial_deadline(utc(2026, 1, 12, 8), utc(2026, 1, 12, 10), entity_type="bank"),
            id="initial-unknown-entity",
        ),
        pytest.param(
            lambda: intermediate_deadline(utc(2026, 1, 12, 8), entity_type="insurer"), id="intermediate-unknown-entity"
        ),
        pytest.param(lambda: final_deadline(utc(2026, 1, 12, 8), entity_type=""), id="final-unknown-entity"),
    ],
)
def test_refused(call: Any) -> None:
    with pytest.raises(ValidationError):
        call()


# --- calendar ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expected",
    [
        date(2000, 4, 23),
        date(2008, 3, 23),
        date(2011, 4, 24),
        date(2019, 4, 21),
        date(2024, 3, 31),
        date(2025, 4, 20),
        date(2026, 4, 5),
        date(2027, 3, 28),
        date(2028, 4, 16),
        date(2038, 4, 25),
        date(2285, 3, 22),
    ],
    ids=str,
)
def test_easter_sunday(expected: date) -> None:
    assert easter_sunday(expected.year) == expected


def test_belgian_holidays_2026() -> None:
    assert set(belgian_holidays(2026)) == {
        date(2026, 1, 1),
        date(2026, 4, 6),  # Easter Monday
        date(2026, 5, 1),
        date(2026, 5, 14),  # Ascension
        date(2026, 5, 25),  # Whit Monday
        date(2026, 7, 21),
        date(2026, 8, 15),
        date(2026, 11, 1),
        date(2026, 11, 11),
        date(2026, 12, 25),
    }


def test_belgian_movable_holidays_2027() -> None:
    holidays = set(belgian_holidays(2027))
    assert {date(2027, 3, 29), date(2027, 5, 6), date(2027, 5, 17)} <= holidays
    assert len(holidays) == 10


@pytest.mark.parametrize(
    ("day", "working"),
    [
        pytest.param(date(2026, 1, 12), True, id="monday"),
        pytest.param(date(2026, 1, 10), False, id="saturday"),
        pytest.param(date(2026, 1, 11), False, id="sunday"),
        pytest.param(date(2026, 4, 3), True, id="good-friday"),
        pytest.param(date(2026, 4, 6), False, id="easter-monday"),
        pytest.param(date(2025, 12, 26), True, id="26-december"),
        pytest.param(date(2026, 12, 25), False, id="christmas"),
    ],
)
def test_is_working_day(day: date, working: bool) -> None:
    assert is_working_day(day) is working


def test_next_working_day() -> None:
    assert next_working_day(date(2026, 12, 24)) == date(2026, 12, 28)
    assert next_working_day(date(2026, 12, 31)) == date(2027, 1, 4)
    assert next_working_day(date(2026, 5, 13)) == date(2026, 5, 15)
    assert next_working_day(date(2026, 1, 12)) == date(2026, 1, 13)


def test_brussels_zoned_inputs_count_elapsed_hours_across_dst() -> None:
    # 72 hours are elapsed hours whatever the input's time zone: Friday 27 March 2026 11:00 CET (10:00 UTC)
    # plus 72 hours is Monday 30 March 10:00 UTC (12:00 CEST), as for the same instant given in UTC.
    submitted = datetime(2026, 3, 27, 11, 0, tzinfo=BRUSSELS)
    assert intermediate_deadline(submitted).due_at == utc(2026, 3, 30, 10)


def test_brussels_zoned_inputs_24h_cap_across_dst() -> None:
    # Aware Saturday 28 March 2026 10:00 CET (09:00 UTC); classified Sunday 29 March 08:00 CEST (06:00 UTC).
    # 4 h after classification is 10:00 UTC, later than the cap 24 h after awareness, 29 March 09:00 UTC.
    aware = datetime(2026, 3, 28, 10, 0, tzinfo=BRUSSELS)
    classified = datetime(2026, 3, 29, 8, 0, tzinfo=BRUSSELS)
    deadline = initial_deadline(aware, classified, entity_type="credit_institution")
    assert deadline.due_at == utc(2026, 3, 29, 9)
