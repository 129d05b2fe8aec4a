"""Strategy: start / stop / reset the paper strategy, its parameters, signal and model
probabilities, position, PnL (realized, unrealized, total), equity curve, the last 50 trades
with their PnL, and the decision-path latency.

Served by ``genesis serve`` (Panel runs this script once per browser session).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the apps' shared module (not a package)
import common  # noqa: E402

from genesis.live.auth import NotAuthorized  # noqa: E402
from genesis.strategy import get_strategy  # noqa: E402

pn.extension(notifications=False)

EQUITY_POINTS = 5000
LAST_TRADES = 50


class StrategyApp(pn.viewable.Viewer):
    """One browser session's view of the engine's paper strategy."""

    def __init__(self, **params):
        super().__init__(**params)
        self.engine, self.buffer = common.subscribe("strategy")
        self.trades = pd.DataFrame(columns=["time", "side", "price", "qty", "fee", "maker", "position", "pnl"])
        self._last_equity_ts = None
        self._build()

    def _build(self) -> None:
        e = self.engine
        s = e.strategy
        self.start_btn = pn.widgets.Button(name="Start", button_type="success", width=90)
        self.stop_btn = pn.widgets.Button(name="Stop", button_type="warning", width=90)
        self.reset_btn = pn.widgets.Button(name="Reset", button_type="danger", width=90)
        for button, action in ((self.start_btn, e.strategy_start), (self.stop_btn, e.strategy_stop),
                               (self.reset_btn, e.strategy_reset)):
            button.on_click(lambda _event, action=action: self._act(action))
        self.state = pn.pane.HTML(width=420)
        self.result = pn.pane.HTML("", sizing_mode="stretch_width")
        # One input per strategy parameter (thresholds, size, stops: whatever the strategy declares).
        self.inputs = {}
        if s is not None:
            defaults = dict(get_strategy(s.name).params)
            for name, default in defaults.items():
                self.inputs[name] = pn.widgets.FloatInput(name=name, value=float(s.params.get(name, default)),
                                                          width=110)
        self.apply = pn.widgets.Button(name="Apply parameters", width=150, disabled=s is None)
        self.apply.on_click(self._apply_params)
        self.signal = pn.pane.HTML(width=420)
        self.pnl = pn.pane.HTML(width=420)
        self.latency = pn.pane.HTML(width=420)

        self.equity_src = ColumnDataSource(dict(x=[], equity=[], realized=[]))
        self.equity_fig = figure(title="Equity (quote currency)", height=300, x_axis_type="datetime",
                                 sizing_mode="stretch_width", tools="pan,xwheel_zoom,box_zoom,reset")
        self.equity_fig.line("x", "equity", source=self.equity_src, color="#1f77b4", legend_label="total")
        self.equity_fig.line("x", "realized", source=self.equity_src, color="#2ca02c", line_dash="dashed",
                             legend_label="realized - fees")
        self.equity_fig.legend.location = "top_left"
        self.trades_pane = pn.pane.DataFrame(self.trades, index=False, sizing_mode="stretch_width", max_rows=LAST_TRADES,
                                             float_format=lambda v: f"{v:,.6g}")
        name = f"{s.name} on {s.symbol}" if s is not None else "no strategy (genesis serve --strategy NAME)"
        self._layout = pn.Column(
            common.header("strategy", e.config.mode, common.session_user()),
            pn.pane.HTML(f"<h3 style='margin:4px 0'>Paper strategy: <span id='strategy-name'>{name}</span></h3>"),
            pn.Row(self.start_btn, self.stop_btn, self.reset_btn, self.state),
            self.result,
            pn.Row(*self.inputs.values(), self.apply),
            pn.Row(pn.Column(self.pnl, self.signal, self.latency, width=440),
                   pn.pane.Bokeh(self.equity_fig, sizing_mode="stretch_width"), sizing_mode="stretch_width"),
            pn.pane.HTML(f"<h3 style='margin:4px 0'>Last {LAST_TRADES} trades</h3>"),
            self.trades_pane, sizing_mode="stretch_width")

    def __panel__(self):
        return self._layout

    def start(self) -> StrategyApp:
        self.refresh()
        pn.state.add_periodic_callback(self.refresh, period=common.REFRESH_MS)
        return self

    # -- controls -----------------------------------------------------------------------
    def _act(self, action) -> None:
        try:
            who = action(common.session_user())
        except (NotAuthorized, ValueError) as exc:
            self.result.object = common.message(str(exc), False)
            return
        verb = action.__name__.removeprefix("strategy_")
        self.result.object = common.message(f"{verb} by {who}", True)
        if verb == "reset":
            self.trades = self.trades.iloc[0:0]
            self.trades_pane.object = self.trades
        self._show_status(self.engine.strategy.update(consume=False))

    def _apply_params(self, _event=None) -> None:
        params = {k: w.value for k, w in self.inputs.items()}
        try:
            who = self.engine.set_strategy_params(params, common.session_user())
        except (NotAuthorized, ValueError) as exc:
            self.result.object = common.message(str(exc), False)
            return
        self.result.object = common.message(f"parameters applied by {who}: the paper trader restarts flat", True)

    # -- data ---------------------------------------------------------------------------
    def refresh(self) -> None:
        updates = self.buffer.drain()
        updates = [u for u in updates if u.get("strategy")]
        if not updates:
            return
        xs, eq, real = [], [], []
        for u in updates:
            st = u["strategy"]
            if u.get("reset") and st["replay_ts"] and self._last_equity_ts is not None \
                    and st["replay_ts"] < self._last_equity_ts:
                self.equity_src.data = dict(x=[], equity=[], realized=[])  # the replay went back
                self._last_equity_ts = None
            if st["replay_ts"] > 0 and (self._last_equity_ts is None or st["replay_ts"] > self._last_equity_ts):
                xs.append(st["replay_ts"] / 1e6)
                eq.append(st["equity"])
                real.append(st["realized_pnl"] - st["fees"])
                self._last_equity_ts = st["replay_ts"]
            if st["new_fills"]:
                new = pd.DataFrame(st["new_fills"])
                new.insert(0, "time", [common.utc(t) for t in new.pop("exch_ts")])
                new["side"] = np.where(new["side"] > 0, "buy", "sell")
                # (a first picture and the next update may both carry a fill: keep one)
                self.trades = pd.concat([new.iloc[::-1], self.trades], ignore_index=True).drop_duplicates(
                    ).head(LAST_TRADES)
                self.trades_pane.object = self.trades
        if xs:
            self.equity_src.stream(dict(x=xs, equity=eq, realized=real), rollover=EQUITY_POINTS)
        self._show_status(updates[-1]["strategy"], updates[-1])

    def _show_status(self, st, update=None) -> None:
        state = "running" if st["started"] else "stopped"
        self.state.object = (f"<div style='font-size:14px'>state <b id='strategy-state'>{state}</b> "
                             f"({st['mode'].replace('_', ' ')}) · replay {common.utc(st['replay_ts'])}</div>")
        total = st["realized_pnl"] + st["unrealized_pnl"] - st["fees"]
        self.pnl.object = "<b>position and PnL</b>" + common.kv_html({
            "position": common.fmt(st["position"]), "entry": common.fmt(st["entry_price"], 8),
            "realized": common.fmt(st["realized_pnl"]), "unrealized": common.fmt(st["unrealized_pnl"]),
            "fees": common.fmt(st["fees"]), "total": common.fmt(total), "fills": st["fills"],
            "orders": st["orders_sent"]}, "pnl")
        last = {}
        if update is not None:
            last = update["symbols"].get(st["symbol"], {}).get("last", {})
        probs = st.get("probabilities")
        signal = {"OFI (last book)": common.fmt(last.get("ofi", np.nan)), "OBI": common.fmt(last.get("obi", np.nan)),
                  "mid": common.fmt(last.get("mid", np.nan), 8), "mode": st["mode"].replace("_", " ")}
        if probs:
            signal.update({"p(down)": f"{probs[0]:.3f}", "p(stationary)": f"{probs[1]:.3f}", "p(up)": f"{probs[2]:.3f}"})
        else:
            signal["model"] = "none (genesis serve --model ID)"
        self.signal.object = "<b>signal</b>" + common.kv_html(signal, "signal")
        spec = st.get("instrument") or {}
        self.latency.object = "<b>decision path</b>" + common.kv_html({
            "p50 ms": common.fmt(st["decision_ms_p50"]), "p99 ms": common.fmt(st["decision_ms_p99"]),
            "rows replayed": st["rows"],
            # The terms fills are computed with, and where they came from (venue, store, inferred).
            "tick": common.fmt(spec.get("tick_size", np.nan), 10), "lot": common.fmt(spec.get("lot_size") or np.nan, 10),
            "spec from": common.fmt(spec.get("source", "n/a"))}, "latency")


if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
    StrategyApp().start().servable(title="Genesis strategy")
