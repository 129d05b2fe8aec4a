"""Alert cases: merging repeats, escalation, the workflow, and the audit trail in the store."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from genesis.store import connect
from genesis.surveillance.alerts import AlertManager, AuditRow, IllegalTransition, fold_case
from genesis.surveillance.engine import ALERT_COLUMNS

S = 1_000_000_000


def alert(start_s, end_s=None, *, kind="spoofing", side=1, score=45.0, symbol="sim:TEST"):
    end_s = start_s if end_s is None else end_s
    from genesis.surveillance.base import severity

    return {"symbol": symbol, "kind": kind, "severity": severity(score), "score": score, "side": side,
            "start_ts": int(start_s * S), "end_ts": int(end_s * S), "at_ts": int(end_s * S), "price": 100.0,
            "size": 5.0, "level": 0, "metric": 12.0, "n_events": 2, "order_ids": [7, 8], "detector": kind,
            "params_version": "abc123", "evidence": {"order_ids": [7, 8]}}


def frame(*rows):
    return pd.DataFrame(list(rows), columns=["symbol", *ALERT_COLUMNS])


def test_repeats_of_one_episode_merge_and_escalate():
    manager = AlertManager(merge_window_s=60, escalate_at=(3, 10))
    result = manager.submit(frame(alert(0, 5), alert(30, 40), alert(10, kind="layering"), alert(12, side=-1)))
    assert result["opened"].tolist() == [True, True, True, False]  # sorted by at_ts: 5, 10, 12, 40
    first = result["case_id"][0]
    assert manager.cases[first].repeats == 2
    assert (manager.cases[first].start_ts, manager.cases[first].end_ts) == (0, 40 * S)

    for k in range(1, 9):  # eight more repeats, each within a minute of the last
        manager.submit(frame(alert(40 + 10 * k)))
    assert manager.submit(frame(alert(200)))["opened"].tolist() == [True]  # 80 s after the last: a new case
    actions = manager.history(first)["action"].tolist()
    assert manager.cases[first].repeats == 10
    assert actions.count("merged") == 9 and actions.count("escalated") == 2
    assert manager.cases[first].severity == "critical"  # medium + 2 levels at 10 repeats
    escalations = manager.history(first).query("action == 'escalated'")
    assert escalations["repeats"].tolist() == [3, 10]


def test_workflow_transitions_and_refusals():
    manager = AlertManager()
    case_id = manager.submit(frame(alert(0)))["case_id"][0]
    manager.assign(case_id, "alice", actor="bob", why="she covers this desk")
    manager.transition(case_id, "investigating", actor="alice", why="looking at the order book")
    with pytest.raises(IllegalTransition, match="it can go to escalated or closed, not open"):
        manager.transition(case_id, "open", actor="alice", why="oops")
    with pytest.raises(IllegalTransition, match="unknown state"):
        manager.transition(case_id, "done", actor="alice", why="x")
    with pytest.raises(ValueError, match="needs a reason"):
        manager.transition(case_id, "escalated", actor="alice", why=" ")
    with pytest.raises(ValueError, match="needs the user"):
        manager.transition(case_id, "escalated", actor="", why="serious")
    manager.transition(case_id, "escalated", actor="alice", why="same owner both sides")
    assert manager.cases[case_id].severity == "high"  # escalating raises the severity one level
    manager.note(case_id, "sent to compliance", actor="alice")
    manager.transition(case_id, "closed", actor="carol", why="reported")
    with pytest.raises(IllegalTransition, match="closed: reopen it"):
        manager.assign(case_id, "dave", actor="carol")
    # A closed case takes no more repeats: a new alert opens a new case.
    assert manager.submit(frame(alert(1)))["opened"].tolist() == [True]
    manager.transition(case_id, "open", actor="carol", why="new evidence")
    assert manager.cases[case_id].state == "open"

    history = manager.history(case_id)
    assert history["seq"].tolist() == list(range(len(history)))
    assert history["action"].tolist() == ["opened", "assigned", "state", "state", "note", "state", "state"]
    assert history["actor"].tolist() == ["system", "bob", "alice", "alice", "alice", "carol", "carol"]
    assert history["state"].tolist() == ["open", "open", "investigating", "escalated", "escalated", "closed", "open"]


def test_audit_trail_reproduces_the_case():
    manager = AlertManager()
    case_id = manager.submit(frame(alert(0, 2), alert(3, 9), alert(20, 25)))["case_id"][0]
    manager.assign(case_id, "alice", actor="bob")
    manager.transition(case_id, "investigating", actor="alice", why="checking")
    rebuilt = fold_case(manager.audit[case_id], symbol="sim:TEST", kind="spoofing", side=1)
    assert rebuilt == manager.cases[case_id]
    with pytest.raises(ValueError, match="hole"):
        fold_case([r for r in manager.audit[case_id] if r.seq != 1])


def test_cases_persist_append_only_and_reload(store_url):
    manager = AlertManager(store_url, persist=True)
    ids = manager.submit(frame(alert(0), alert(10), alert(5, kind="wash_trades", side=0)), run_id="run-1",
                         params={"spoofing": {"min_size_multiple": 5.0}})
    spoof_case = ids["case_id"][0]
    manager.transition(spoof_case, "investigating", actor="alice", why="look")
    manager.transition(spoof_case, "closed", actor="alice", why="benign: market maker refreshing")

    with connect(store_url) as store:
        alerts = store.query_df("SELECT toString(alert_id) AS alert_id, toString(case_id) AS case_id, kind, params,"
                                " evidence, run_id FROM alerts ORDER BY at_ts")
        audit = store.query_df("SELECT toString(case_id) AS case_id, seq, action, state, actor, why FROM alert_audit"
                               " ORDER BY case_id, seq")
        current = store.query_df("SELECT toString(case_id) AS case_id, state, repeats FROM alert_cases")
    assert len(alerts) == 3 and set(alerts["run_id"]) == {"run-1"}
    assert alerts["case_id"].tolist().count(spoof_case) == 2
    assert json.loads(alerts["params"][0]) == {"min_size_multiple": 5.0}
    assert json.loads(alerts["evidence"][0]) == {"order_ids": [7, 8]}
    mine = audit[audit.case_id == spoof_case]
    assert mine["action"].tolist() == ["opened", "merged", "state", "state"]
    assert current.set_index("case_id").loc[spoof_case].tolist() == ["closed", 2]

    reloaded = AlertManager.load(store_url)
    assert reloaded.cases[spoof_case] == manager.cases[spoof_case]
    assert set(reloaded.cases) == set(manager.cases)
    # The reloaded manager goes on appending: the closed case stays closed, a repeat opens a new one.
    new = reloaded.submit(frame(alert(12)))
    assert new["opened"].tolist() == [True]
    with connect(store_url) as store:
        assert store.query_rows("SELECT count() FROM alert_audit")[0][0] == len(audit) + 1


def test_audit_row_shape_is_stable():
    assert [f for f in AuditRow.__dataclass_fields__] == [
        "case_id", "seq", "at", "actor", "action", "state", "severity", "repeats", "owner", "why", "detail"]
