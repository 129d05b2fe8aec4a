"""Cron expressions (against a brute-force minute-by-minute reference) and the scheduler on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from genesis.pipelines.schedule import CronExpression, Scheduler, launch_subprocess, schedules_of

T0 = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)  # a Saturday


def brute_force(cron: CronExpression, start: datetime, minutes: int) -> list[datetime]:
    return [t for t in (start + timedelta(minutes=m) for m in range(1, minutes + 1)) if cron.matches(t)]


@pytest.mark.parametrize(
    "text, fields",
    [
        ("* * * * *", (60, 24, 31, 12, 7)),
        ("*/15 9-17 * * MON-FRI", ({0, 15, 30, 45}, set(range(9, 18)), 31, 12, {1, 2, 3, 4, 5})),
        ("5,10-12,50/5 0 1,15 jan,JUL 7", ({5, 10, 11, 12, 50, 55}, {0}, {1, 15}, {1, 7}, {0})),
        ("0 */6 * 2-12/5 0-6/3", ({0}, {0, 6, 12, 18}, 31, {2, 7, 12}, {0, 3, 6})),
    ],
)
def test_fields_parse(text, fields):
    cron = CronExpression.parse(text)
    for values, expected in zip((cron.minutes, cron.hours, cron.days, cron.months, cron.weekdays), fields,
                                strict=True):
        assert (len(values) if isinstance(expected, int) else set(values)) == expected


@pytest.mark.parametrize(
    "text, problem",
    [
        ("* * * *", "expected five fields"),
        ("60 * * * *", "minute field '60': 60 is outside 0-59"),
        ("* 24 * * *", "hour field '24': 24 is outside 0-23"),
        ("* * 0 * *", "day-of-month field '0': 0 is outside 1-31"),
        ("* * * 13 *", "month field '13'"),
        ("* * * * 8", "day-of-week field '8'"),
        ("*/0 * * * *", "step '0' must be a positive integer"),
        ("5-1 * * * *", "range 5-1 runs backwards"),
        ("1,,2 * * * *", "empty list item"),
        ("* * * * FUNDAY", "'FUNDAY' is not a number or a name (SUN, MON"),
        ("0 0 31 2 *", "day-of-month 31 never occurs in month(s) 2"),
    ],
)
def test_malformed_expressions_name_the_field(text, problem):
    with pytest.raises(ValueError) as info:
        CronExpression.parse(text)
    assert problem in str(info.value) and repr(text) in str(info.value)


@pytest.mark.parametrize(
    "text",
    ["*/7 * * * *", "30 2 * * *", "0 9-17/2 * * 1-5", "15 3 1,15 * *", "0 0 13 * FRI", "0 12 * 12 0", "59 23 31 * *"],
)
def test_next_after_and_matches_agree_with_a_minute_by_minute_scan(text):
    cron = CronExpression.parse(text)
    start = T0 + timedelta(minutes=7)
    minutes = 60 * 24 * 62  # two months: month ends and both weekday rules
    expected = brute_force(cron, start, minutes)
    assert expected, text
    assert cron.times_between(start, start + timedelta(minutes=minutes)) == expected


def test_day_of_month_and_weekday_both_restricted_fire_on_either():
    cron = CronExpression.parse("0 0 13 * FRI")
    days = [t.date() for t in cron.times_between(T0, T0 + timedelta(days=40))]
    fridays = [d for d in days if d.isoweekday() == 5]
    thirteenths = [d for d in days if d.day == 13]
    assert sorted(set(fridays) | set(thirteenths)) == days
    assert len(fridays) == 5 and thirteenths == [datetime(2026, 12, 13).date()]  # 27 Nov ... 25 Dec; a Sunday


def test_a_starred_day_field_with_a_step_does_not_widen_the_other():
    # '*/2' starts with '*': as in Vixie cron it is not a restriction, so days must match both fields.
    cron = CronExpression.parse("0 0 */2 * MON")
    days = [t.date() for t in cron.times_between(T0, T0 + timedelta(days=60))]
    assert days and all(d.isoweekday() == 1 and d.day % 2 == 1 for d in days)


def test_next_after_finds_a_leap_day():
    cron = CronExpression.parse("0 0 29 2 *")
    assert cron.next_after(T0) == datetime(2028, 2, 29, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


class FakeRun:
    """A run that lasts ``minutes`` of the fake clock."""

    def __init__(self, clock: FakeClock, minutes: float) -> None:
        self.clock, self.ends = clock, clock.now + timedelta(minutes=minutes)

    def poll(self) -> int | None:
        return None if self.clock.now < self.ends else 0


def test_the_scheduler_fires_the_expected_runs_and_never_overlaps_one_pipeline():
    clock = FakeClock(T0 + timedelta(seconds=20))
    durations = {"quarterly": 20.0, "nightly": 5.0}  # quarterly runs outlast their 15-minute period
    launched: list[tuple[str, datetime]] = []
    runs: dict[str, list[FakeRun]] = {"quarterly": [], "nightly": []}

    def launcher(name: str) -> FakeRun:
        assert all(run.poll() is not None for run in runs[name]), f"{name} launched while a run goes on"
        launched.append((name, clock.now))
        runs[name].append(FakeRun(clock, durations[name]))
        return runs[name][-1]

    scheduler = Scheduler({"quarterly": "*/15 * * * *", "nightly": "30 1 * * *"}, launcher=launcher,
                          clock=clock, sleep=clock.sleep)
    scheduler.run(until=T0 + timedelta(hours=2, minutes=1))

    at = [T0 + timedelta(minutes=m) for m in range(0, 121, 15)]
    # quarterly: fires at 00:15, its run ends 00:35, so 00:30 is skipped; fires again at 00:45 ...
    assert [t for name, t in launched if name == "quarterly"] == [at[1], at[3], at[5], at[7]]
    assert [t for name, t in launched if name == "nightly"] == [T0 + timedelta(hours=1, minutes=30)]
    skipped = [(e.pipeline, e.when) for e in scheduler.events if e.action == "skipped"]
    assert skipped == [("quarterly", at[2]), ("quarterly", at[4]), ("quarterly", at[6]), ("quarterly", at[8])]
    assert all(e.detail == "its previous run is still going" for e in scheduler.events if e.action == "skipped")
    assert not [e for e in scheduler.events if e.action not in ("launched", "skipped")]
    assert max(clock.slept) <= 30.0  # never sleeps long enough to miss a clock jump


def test_a_held_up_scheduler_fires_once_and_reports_the_missed_times():
    clock = FakeClock(T0)
    launched = []
    scheduler = Scheduler({"p": "*/10 * * * *"}, launcher=lambda name: launched.append(clock.now) or FakeRun(clock, 1),
                          clock=clock, sleep=clock.sleep)
    scheduler.tick()
    clock.now += timedelta(minutes=35)  # a suspended laptop
    events = scheduler.tick()
    assert [(e.action, e.when.minute) for e in events] == [("missed", 10), ("missed", 20), ("launched", 30)]
    assert launched == [T0 + timedelta(minutes=35)]


def test_a_launch_failure_is_logged_and_the_scheduler_goes_on():
    clock = FakeClock(T0)

    def launcher(name):
        raise OSError("no such interpreter")

    scheduler = Scheduler({"p": "* * * * *"}, launcher=launcher, clock=clock, sleep=clock.sleep)
    scheduler.run(until=T0 + timedelta(minutes=3))
    assert [e.action for e in scheduler.events] == ["failed to launch"] * 3
    assert "OSError: no such interpreter" in scheduler.events[0].detail


def test_the_default_launcher_starts_the_genesis_command():
    proc = launch_subprocess("no-such-pipeline")
    assert proc.wait(timeout=60) == 2  # the CLI's exit status for a bad argument: it did run `genesis pipeline run`


def test_schedules_come_from_the_specs():
    class Spec:
        def __init__(self, name, schedule):
            self.name, self.schedule = name, schedule

    schedules = schedules_of([Spec("a", "0 2 * * *"), Spec("b", None)])
    assert list(schedules) == ["a"] and schedules["a"].text == "0 2 * * *"
    with pytest.raises(ValueError, match="no pipeline to schedule"):
        Scheduler({})
