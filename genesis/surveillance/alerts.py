"""Alert cases: merging repeats, escalation, the analyst's workflow, and the audit trail.

Detectors raise alerts (:mod:`genesis.surveillance.engine`). The :class:`AlertManager` turns
them into *cases* an analyst works on:

* a new alert opens a case, unless an open case of the same symbol, kind and side saw an
  alert ending no more than ``merge_window_s`` before this one starts: then it is merged
  into that case, which counts it (``repeats``) and stretches its time span;
* repetition escalates severity: one level at ``escalate_at[0]`` repeats, two at
  ``escalate_at[1]`` (never above critical);
* the workflow is ``open -> investigating -> escalated -> closed`` (see ``TRANSITIONS``);
  every change names who made it and why, and an illegal one is refused;
* every change is one appended audit row (``alert_audit``); nothing is updated in place.
  :func:`fold_case` rebuilds a case from its audit rows, so the trail reproduces its history.

With ``persist=True`` the manager writes alerts and audit rows as they happen (one short
lease per call); :meth:`AlertManager.load` rebuilds the cases from the store and persists.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Iterable

import numpy as np
import pandas as pd

from genesis.surveillance.base import SEVERITIES

STATES = ("open", "investigating", "escalated", "closed")
TRANSITIONS = {
    "open": ("investigating", "closed"),
    "investigating": ("escalated", "closed"),
    "escalated": ("investigating", "closed"),
    "closed": ("open",),  # reopen, with a reason
}
SYSTEM = "system"


class IllegalTransition(ValueError):
    """A workflow change the rules do not allow (the message says which ones are)."""


@dataclass(frozen=True)
class AuditRow:
    case_id: str
    seq: int
    at: datetime
    actor: str
    action: str  # opened, merged, escalated, state, assigned, note
    state: str
    severity: str
    repeats: int
    owner: str
    why: str
    detail: str = "{}"


@dataclass
class Case:
    """The current state of one case (the fold of its audit rows)."""

    case_id: str
    symbol: str
    kind: str
    side: int
    state: str = "open"
    severity: str = "info"
    repeats: int = 1
    owner: str = ""
    start_ts: int | None = None  # span of the alerts merged into it (ns)
    end_ts: int | None = None
    notes: list[str] = field(default_factory=list)
    seq: int = -1  # last audit row applied


def _apply(case: Case, row: AuditRow) -> None:
    """One audit row onto the case it belongs to (the only way a case changes)."""
    if row.seq != case.seq + 1:
        raise ValueError(f"audit trail of case {row.case_id} has a hole: row {row.seq} after {case.seq}")
    case.state, case.severity, case.repeats, case.owner, case.seq = (
        row.state, row.severity, row.repeats, row.owner, row.seq)
    detail = json.loads(row.detail or "{}")
    if "start_ts" in detail:
        case.start_ts = detail["start_ts"] if case.start_ts is None else min(case.start_ts, detail["start_ts"])
        case.end_ts = detail["end_ts"] if case.end_ts is None else max(case.end_ts, detail["end_ts"])
    if row.actor != SYSTEM:
        case.notes.append(f"{row.actor}: {row.why}")


def fold_case(rows: Iterable[AuditRow], *, symbol: str = "", kind: str = "", side: int = 0) -> Case:
    """The case as its audit rows, applied in ``seq`` order, leave it."""
    rows = sorted(rows, key=lambda r: r.seq)
    if not rows:
        raise ValueError("no audit rows")
    case = Case(rows[0].case_id, symbol, kind, side)
    for row in rows:
        _apply(case, row)
    return case


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _raise_severity(level: str, steps: int) -> str:
    return SEVERITIES[min(len(SEVERITIES) - 1, SEVERITIES.index(level) + steps)]


class AlertManager:
    """Cases from alerts, with the workflow; see the module docstring.

    ``persist``: write alerts and audit rows to the store at ``store_url`` (None: the default
    store) as they happen; without it everything stays in memory.
    """

    def __init__(self, store_url: str | None = None, *, persist: bool = False, merge_window_s: float = 60.0,
                 escalate_at: tuple[int, int] = (3, 10)):
        if merge_window_s < 0:
            raise ValueError(f"merge_window_s={merge_window_s}: must be >= 0")
        if not 1 < escalate_at[0] <= escalate_at[1]:
            raise ValueError(f"escalate_at={escalate_at}: need 1 < first <= second")
        self.store_url = store_url
        self.persist = persist
        self.merge_window_ns = int(merge_window_s * 1e9)
        self.escalate_at = escalate_at
        self.cases: dict[str, Case] = {}
        self.audit: dict[str, list[AuditRow]] = {}
        self._open_by_key: dict[tuple[str, str, int], str] = {}
        self._pending_alerts: list[dict] = []
        self._pending_audit: list[AuditRow] = []

    # -- detectors -> cases ---------------------------------------------------------------
    def submit(self, alerts: pd.DataFrame, *, run_id: str = "", params: dict[str, dict] | None = None) -> pd.DataFrame:
        """Take new alerts (rows of :func:`genesis.surveillance.engine.detect`), in ``at_ts``
        order. Returns one row per alert: its id, the case it went to and whether it opened it."""
        out = []
        for row in alerts.sort_values("at_ts", kind="stable").itertuples(index=False):
            alert_id = str(uuid.uuid4())
            key = (row.symbol, row.kind, int(row.side))
            case_id = self._open_by_key.get(key)
            case = self.cases.get(case_id) if case_id else None
            detail = {"alert_id": alert_id, "score": float(row.score), "start_ts": int(row.start_ts),
                      "end_ts": int(row.end_ts)}
            if case is not None and case.state != "closed" and int(row.start_ts) <= case.end_ts + self.merge_window_ns:
                repeats = case.repeats + 1
                severity = max(case.severity, row.severity, key=SEVERITIES.index)
                self._append(case, SYSTEM, "merged", case.state, severity, repeats, case.owner,
                             f"repeat {repeats} of this episode", detail)
                steps = (repeats >= self.escalate_at[0]) + (repeats >= self.escalate_at[1])
                escalated = _raise_severity(row.severity, steps)
                if SEVERITIES.index(escalated) > SEVERITIES.index(case.severity):
                    self._append(case, SYSTEM, "escalated", case.state, escalated, repeats, case.owner,
                                 f"{repeats} repeats: severity {case.severity} -> {escalated}", {})
                opened = False
            else:
                case = Case(alert_id, row.symbol, row.kind, int(row.side))
                self.cases[case.case_id] = case
                self.audit[case.case_id] = []
                self._open_by_key[key] = case.case_id
                self._append(case, SYSTEM, "opened", "open", row.severity, 1, "", f"{row.detector} alert", detail)
                opened = True
            self._pending_alerts.append({**row._asdict(), "alert_id": alert_id, "case_id": case.case_id,
                                         "run_id": run_id, "params": (params or {}).get(row.detector, {})})
            out.append({"alert_id": alert_id, "case_id": case.case_id, "opened": opened})
        self.flush()
        return pd.DataFrame(out, columns=["alert_id", "case_id", "opened"])

    # -- the analyst's workflow -----------------------------------------------------------
    def transition(self, case_id: str, to_state: str, *, actor: str, why: str) -> Case:
        """Move a case along the workflow; refused (IllegalTransition) unless ``TRANSITIONS`` allow it."""
        case = self._case(case_id)
        if to_state not in STATES:
            raise IllegalTransition(f"unknown state {to_state!r}; states are {', '.join(STATES)}")
        if to_state not in TRANSITIONS[case.state]:
            allowed = " or ".join(TRANSITIONS[case.state])
            raise IllegalTransition(
                f"case {case_id} is {case.state}: it can go to {allowed}, not {to_state}")
        self._require(actor, why)
        severity = _raise_severity(case.severity, 1) if to_state == "escalated" else case.severity
        self._append(case, actor, "state", to_state, severity, case.repeats, case.owner, why,
                     {"from": case.state, "to": to_state})
        if to_state == "closed":
            self._open_by_key.pop((case.symbol, case.kind, case.side), None)
        elif case.state == "closed":  # reopened: repeats merge into it again
            self._open_by_key[(case.symbol, case.kind, case.side)] = case.case_id
        self.flush()
        return case

    def assign(self, case_id: str, owner: str, *, actor: str, why: str = "") -> Case:
        case = self._case(case_id)
        if case.state == "closed":
            raise IllegalTransition(f"case {case_id} is closed: reopen it before assigning it")
        self._require(actor, why or f"assigned to {owner}")
        self._append(case, actor, "assigned", case.state, case.severity, case.repeats, owner,
                     why or f"assigned to {owner}", {"from": case.owner, "to": owner})
        self.flush()
        return case

    def note(self, case_id: str, text: str, *, actor: str) -> Case:
        case = self._case(case_id)
        self._require(actor, text)
        self._append(case, actor, "note", case.state, case.severity, case.repeats, case.owner, text, {})
        self.flush()
        return case

    def history(self, case_id: str) -> pd.DataFrame:
        """The case's audit rows, oldest first."""
        return pd.DataFrame([asdict(r) for r in self.audit[self._case(case_id).case_id]])

    def frame(self) -> pd.DataFrame:
        """One row per case: current state, severity, repeats, owner, span."""
        return pd.DataFrame([{k: v for k, v in asdict(c).items() if k != "notes"} for c in self.cases.values()])

    # -- store ---------------------------------------------------------------------------
    @classmethod
    def load(cls, store_url: str | None = None, *, symbol: str | None = None, **options) -> AlertManager:
        """A manager holding the cases in the store (all, or one symbol's), rebuilt from their audit rows."""
        from genesis.store import connect

        manager = cls(store_url, persist=True, **options)
        symbol_filter = " AND symbol = {symbol:String}" if symbol else ""
        with connect(store_url) as store:
            heads = store.query_rows(
                "SELECT toString(alert_id), symbol, kind, side FROM alerts WHERE alert_id = case_id" + symbol_filter,
                {"symbol": symbol} if symbol else None)
            rows = store.query_rows(
                "SELECT toString(case_id), seq, at, actor, action, state, severity, repeats, owner, why, detail"
                " FROM alert_audit WHERE case_id IN {ids:Array(UUID)} ORDER BY case_id, seq",
                {"ids": [h[0] for h in heads]}) if heads else []
        by_case: dict[str, list[AuditRow]] = {}
        for r in rows:
            by_case.setdefault(r[0], []).append(AuditRow(*r))
        for case_id, symbol_, kind, side in heads:
            trail = by_case.get(case_id, [])
            if not trail:
                continue
            case = fold_case(trail, symbol=symbol_, kind=kind, side=int(side))
            manager.cases[case_id] = case
            manager.audit[case_id] = trail
            if case.state != "closed":
                manager._open_by_key[(symbol_, kind, int(side))] = case_id
        return manager

    def flush(self) -> None:
        """Write what is pending to the store (called by every change)."""
        if not self.persist or not (self._pending_alerts or self._pending_audit):
            self._pending_alerts.clear()
            self._pending_audit.clear()
            return
        from genesis.store import connect, migrate

        with connect(self.store_url) as store:
            migrate(store)
            if self._pending_alerts:
                a = pd.DataFrame(self._pending_alerts)
                now = _now()
                store.insert_columns("alerts", {
                    "alert_id": a["alert_id"].tolist(), "case_id": a["case_id"].tolist(),
                    "symbol": a["symbol"].tolist(), "kind": a["kind"].tolist(), "detector": a["detector"].tolist(),
                    "params_version": a["params_version"].tolist(),
                    "params": [json.dumps(p, sort_keys=True) for p in a["params"]],
                    "side": a["side"].to_numpy(np.int8), "severity": a["severity"].tolist(),
                    "score": a["score"].to_numpy(np.float64), "start_ts": a["start_ts"].to_numpy(np.int64),
                    "end_ts": a["end_ts"].to_numpy(np.int64), "at_ts": a["at_ts"].to_numpy(np.int64),
                    "evidence": [json.dumps(e, default=_json_default) for e in a["evidence"]],
                    "order_ids": [list(map(int, ids)) for ids in a["order_ids"]],
                    "run_id": a["run_id"].tolist(), "created_at": [now] * len(a),
                })
            if self._pending_audit:
                rows = self._pending_audit
                store.insert_columns("alert_audit", {
                    "case_id": [r.case_id for r in rows], "seq": np.array([r.seq for r in rows], np.uint32),
                    "at": [r.at for r in rows], "actor": [r.actor for r in rows], "action": [r.action for r in rows],
                    "state": [r.state for r in rows], "severity": [r.severity for r in rows],
                    "repeats": np.array([r.repeats for r in rows], np.uint32), "owner": [r.owner for r in rows],
                    "why": [r.why for r in rows], "detail": [r.detail for r in rows],
                })
        self._pending_alerts.clear()
        self._pending_audit.clear()

    # -- internals -----------------------------------------------------------------------
    def _case(self, case_id: str) -> Case:
        case = self.cases.get(case_id)
        if case is None:
            raise ValueError(f"no case {case_id!r} (genesis surveil cases lists them)")
        return case

    @staticmethod
    def _require(actor: str, why: str) -> None:
        if not actor or actor == SYSTEM:
            raise ValueError("a workflow change needs the user making it (actor)")
        if not why or not why.strip():
            raise ValueError("a workflow change needs a reason (why)")

    def _append(self, case: Case, actor: str, action: str, state: str, severity: str, repeats: int, owner: str,
                why: str, detail: dict) -> None:
        row = AuditRow(case.case_id, case.seq + 1, _now(), actor, action, state, severity, repeats, owner, why,
                       json.dumps(detail, sort_keys=True))
        _apply(case, row)
        self.audit[case.case_id].append(row)
        self._pending_audit.append(row)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


__all__ = ["AlertManager", "AuditRow", "Case", "IllegalTransition", "STATES", "TRANSITIONS", "fold_case"]
