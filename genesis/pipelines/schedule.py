"""Cron schedules for pipelines, and the long-lived scheduler behind ``genesis pipeline schedule``.

A pipeline's ``schedule:`` is a five-field cron expression, read in UTC::

    minute hour day-of-month month day-of-week
    0-59   0-23 1-31         1-12  0-7 (0 and 7 are Sunday)

Each field is ``*``, a number, a range ``a-b``, a step ``*/n`` or ``a-b/n`` or ``a/n``, or a
comma-separated list of those; months and weekdays may be named (``JAN``, ``MON``). As in
Vixie cron, when both day-of-month and day-of-week are restricted (do not start with ``*``)
a day matching *either* fires (``0 0 1 * MON``: the first of the month and every Monday).

The :class:`Scheduler` takes its clock, its sleep and its launcher as arguments, so a test
drives it on a fake clock; by default it starts ``genesis pipeline run NAME`` in a child
process. A pipeline whose previous run is still going when its next time comes is skipped,
and the skip is logged: runs of one pipeline never overlap (the runner's lock makes sure of
that across processes too).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

log = logging.getLogger("genesis.pipelines.schedule")

_FIELDS = (  # name, lowest, highest, names for values
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, {m: i for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}),
    ("day-of-week", 0, 7, {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}),
)
_SEARCH_YEARS = 8  # a valid expression fires within 8 years (Feb 29 on a given weekday: 28)


@dataclass(frozen=True)
class CronExpression:
    """A parsed five-field cron expression; times are UTC, to the minute.

    >>> cron = CronExpression.parse("*/15 9-17 * * MON-FRI")
    >>> cron.matches(datetime(2026, 11, 23, 9, 30, tzinfo=UTC))
    True
    >>> cron.next_after(datetime(2026, 11, 21, 12, 0, tzinfo=UTC))   # a Saturday
    datetime.datetime(2026, 11, 23, 9, 0, tzinfo=datetime.timezone.utc)
    """

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday (7 folded into 0)
    days_restricted: bool  # the day-of-month field does not start with '*'
    weekdays_restricted: bool

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Parse ``text``; a malformed expression raises ValueError naming the field and the problem."""
        if not isinstance(text, str):
            raise ValueError(f"cron expression {text!r}: expected a string of five fields")
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(
                f"cron expression {text!r}: expected five fields (minute hour day-of-month month day-of-week), "
                f"got {len(parts)}"
            )
        values = [_parse_field(part, *spec, text) for part, spec in zip(parts, _FIELDS, strict=True)]
        minutes, hours, days, months, weekdays = values
        weekdays = frozenset(d % 7 for d in weekdays)
        # As Vixie cron: a field starting with '*' ('*', '*/2') leaves the day unrestricted.
        restricted_days, restricted_weekdays = not parts[2].startswith("*"), not parts[4].startswith("*")
        if not restricted_weekdays and all(day > _days_in_month_max(m) for m in months for day in days):
            raise ValueError(f"cron expression {text!r}: day-of-month {parts[2]} never occurs in month(s) {parts[3]}")
        return cls(text, minutes, hours, days, months, weekdays,
                   days_restricted=restricted_days, weekdays_restricted=restricted_weekdays)

    def matches(self, when: datetime) -> bool:
        """Whether the expression fires in ``when``'s minute (``when`` aware, any zone; read in UTC)."""
        when = _utc(when)
        return when.minute in self.minutes and when.hour in self.hours and self._day_matches(when)

    def next_after(self, when: datetime) -> datetime:
        """The first firing minute strictly after ``when`` (UTC, seconds zero)."""
        start = _utc(when).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for _ in range(366 * _SEARCH_YEARS):
            if day.month in self.months and self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = day.replace(hour=hour, minute=minute)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)
        raise ValueError(f"cron expression {self.text!r}: does not fire within {_SEARCH_YEARS} years of {when}")

    def times_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Every firing minute in ``(start, end]``, in order."""
        out, when = [], start
        while (when := self.next_after(when)) <= _utc(end):
            out.append(when)
        return out

    def _day_matches(self, when: datetime) -> bool:
        if when.month not in self.months:
            return False
        in_days = when.day in self.days
        in_weekdays = (when.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays  # Vixie cron: either restricted day field
        return in_days and in_weekdays


def _parse_field(part: str, name: str, low: int, high: int, names: dict[str, int], text: str) -> frozenset[int]:
    where = f"cron expression {text!r}: {name} field {part!r}"
    out: set[int] = set()
    for item in part.split(","):
        if not item:
            raise ValueError(f"{where}: empty list item")
        span, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{where}: step {step_text!r} must be a positive integer")
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = _value(a, name, low, high, names, where), _value(b, name, low, high, names, where)
            if first > last:
                raise ValueError(f"{where}: range {span} runs backwards")
        else:
            first = _value(span, name, low, high, names, where)
            last = high if step_text else first  # 'a/n': from a to the end, every n
        out.update(range(first, last + 1, step))
    return frozenset(out)


def _value(text: str, name: str, low: int, high: int, names: dict[str, int], where: str) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ValueError(f"{where}: {text!r} is not a number" + (f" or a name ({', '.join(names)})" if names else ""))
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{where}: {value} is outside {low}-{high}")
    return value


def _days_in_month_max(month: int) -> int:
    return 29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"{when}: a naive datetime; give a timezone-aware one (UTC)")
    return when.astimezone(UTC)


# --- the scheduler ----------------------------------------------------------------------------


class RunHandle(Protocol):
    def poll(self) -> int | None:
        """None while the run goes on, its exit status once it ended (as ``subprocess.Popen``)."""


Launcher = Callable[[str], RunHandle]


def launch_subprocess(name: str) -> subprocess.Popen:
    """Start ``genesis pipeline run NAME -q`` in a child process of this interpreter."""
    return subprocess.Popen([sys.executable, "-m", "genesis.cli", "pipeline", "run", name, "-q"])


@dataclass
class ScheduledEvent:
    """What the scheduler did at one firing time: 'launched', 'skipped' (still running) or 'missed'."""

    pipeline: str
    when: datetime
    action: str
    detail: str = ""


@dataclass
class Scheduler:
    """Fire pipelines at their cron times, one run per pipeline at a time.

    ``schedules`` maps pipeline names to cron expressions (text or parsed). ``clock()`` returns
    an aware datetime (default: now, UTC); ``sleep(seconds)`` waits (default ``time.sleep``);
    ``launcher(name)`` starts a run and returns a handle whose ``poll()`` is None while it goes
    on (default: a ``genesis pipeline run`` child process). Every decision is appended to
    ``events`` and logged.

    Firing times are the cron minutes after the scheduler starts. If the process was held up
    past several firing times of a pipeline (a suspended laptop), it fires once for the latest
    and records the earlier ones as 'missed', rather than running a burst of catch-up runs.
    """

    schedules: dict[str, CronExpression | str]
    launcher: Launcher = launch_subprocess
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], None] = time.sleep
    events: list[ScheduledEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.schedules:
            raise ValueError("no pipeline to schedule (none of them has a 'schedule:' cron expression)")
        self.schedules = {
            name: cron if isinstance(cron, CronExpression) else CronExpression.parse(cron)
            for name, cron in self.schedules.items()
        }
        self._running: dict[str, RunHandle] = {}
        self._last_check: datetime | None = None

    def next_times(self) -> dict[str, datetime]:
        """Each pipeline's next firing time after now."""
        now = self.clock()
        return {name: cron.next_after(now) for name, cron in self.schedules.items()}

    def tick(self) -> list[ScheduledEvent]:
        """Fire what came due since the previous tick (the first tick only starts the clock)."""
        now = self.clock()
        previous, self._last_check = self._last_check, now
        if previous is None:
            return []
        fired = []
        for name, cron in self.schedules.items():
            due = cron.times_between(previous, now)
            if not due:
                continue
            for when in due[:-1]:
                fired.append(self._record(name, when, "missed", "the scheduler was not running at that time"))
            fired.append(self._fire(name, due[-1]))
        return fired

    def run(self, until: datetime | None = None, max_sleep_s: float = 30.0) -> None:
        """Tick until ``until`` (default: forever), sleeping up to the next firing time.

        Sleeps are at most ``max_sleep_s``, so that a clock jump or a finished run is noticed soon.
        """
        self.tick()
        log.info("scheduling %s", ", ".join(f"{n} ({c.text})" for n, c in self.schedules.items()))
        while until is None or self.clock() < until:
            now = self.clock()
            upcoming = min(self.next_times().values())
            if until is not None:
                upcoming = min(upcoming, until)
            self.sleep(min(max((upcoming - now).total_seconds(), 0.0), max_sleep_s))
            self.tick()

    def _fire(self, name: str, when: datetime) -> ScheduledEvent:
        handle = self._running.get(name)
        if handle is not None and handle.poll() is None:
            return self._record(name, when, "skipped", "its previous run is still going")
        self._running.pop(name, None)
        try:
            self._running[name] = self.launcher(name)
        except Exception as exc:  # a launch failure is logged; the scheduler keeps going
            return self._record(name, when, "failed to launch", f"{type(exc).__name__}: {exc}")
        return self._record(name, when, "launched")

    def _record(self, name: str, when: datetime, action: str, detail: str = "") -> ScheduledEvent:
        event = ScheduledEvent(name, when, action, detail)
        self.events.append(event)
        level = logging.INFO if action == "launched" else logging.WARNING
        log.log(level, "%s %s at %s%s", action, name, when.isoformat(), f": {detail}" if detail else "")
        return event


def schedules_of(specs: Iterable) -> dict[str, CronExpression]:
    """``name -> CronExpression`` for the pipeline specs that have a ``schedule``."""
    return {spec.name: CronExpression.parse(spec.schedule) for spec in specs if spec.schedule}
