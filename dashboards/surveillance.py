"""Surveillance: prices and trades, the ladder, a depth heatmap, the feature strip, the alert
feed (click an alert: the replay jumps to it; change its state with a note), regime and health.

Served by ``genesis serve`` (Panel runs this script once per browser session).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, DataTable, DateFormatter, LinearColorMapper, NumberFormatter, TableColumn
from bokeh.plotting import figure

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the apps' shared module (not a package)
import common  # noqa: E402

from genesis.live.auth import NotAuthorized  # noqa: E402
from genesis.surveillance.alerts import STATES, IllegalTransition  # noqa: E402
from genesis.surveillance.regimes import REGIMES  # noqa: E402

pn.extension(notifications=False)

SPEED_LABELS = {"1x": 1.0, "2x": 2.0, "5x": 5.0, "10x": 10.0, "max": 0.0}
PRICE_POINTS = 3000  # points kept on the price chart and feature strip
TRADE_POINTS = 1500
HEAT_COLUMNS = 150  # ladder snapshots kept on the heatmap (one per refresh)
ALERT_COLUMNS = ["time", "symbol", "kind", "severity", "score", "side", "state", "repeats", "case_id", "start_ts",
                 "alert_id"]


def _time_figure(title: str, height: int, **kwargs):
    return figure(title=title, height=height, x_axis_type="datetime", sizing_mode="stretch_width",
                  tools="pan,xwheel_zoom,box_zoom,reset", toolbar_location="right", **kwargs)


class SurveillanceApp(pn.viewable.Viewer):
    """One browser session's surveillance view over the process's live engine."""

    symbol = param.String(doc="the symbol shown")
    selected_case = param.String(default="", doc="the case picked in the alert feed")

    def __init__(self, **params):
        self.engine, self.buffer = common.subscribe("surveillance")
        super().__init__(symbol=params.pop("symbol", self.engine.active_symbol()), **params)
        self.alerts = pd.DataFrame(columns=ALERT_COLUMNS + ["at_ts", "price", "end_ts"])
        self._qty_ref = 0.0
        self._last_heat = None
        self._build()

    # -- layout -------------------------------------------------------------------------
    def _build(self) -> None:
        e = self.engine
        mode = e.config.mode
        self.clock = pn.pane.HTML(sizing_mode="stretch_width")
        self.play = pn.widgets.Button(name="Pause" if e.playing else "Play", button_type="primary", width=90,
                                      disabled=mode == "live")
        self.play.on_click(self._toggle_play)
        self.speed = pn.widgets.RadioButtonGroup(options=list(SPEED_LABELS), width=260, disabled=mode == "live",
                                                 value=next((k for k, v in SPEED_LABELS.items() if v == e.speed), "1x"))
        self.speed.param.watch(self._set_speed, "value")
        lo, hi = e.range
        self.scrub = pn.widgets.IntSlider(name="replay time (s from start)", start=0, end=max(1, int((hi - lo) / 1e9)),
                                          value=0, sizing_mode="stretch_width", disabled=mode == "live")
        self.scrub.param.watch(self._scrub, "value_throttled")
        self.pick_symbol = pn.widgets.Select(name="symbol", options=list(e.symbols), value=self.symbol, width=260)
        self.pick_symbol.param.watch(self._pick_symbol, "value")
        from genesis.feeds.simulator import SCENARIOS

        self.scenario = pn.widgets.Select(name="scenario", options=list(SCENARIOS),
                                          value=e.config.scenario or SCENARIOS[0], width=180,
                                          visible=mode == "simulation")
        self.run_scenario = pn.widgets.Button(name="Run scenario", width=120, visible=mode == "simulation")
        self.run_scenario.on_click(self._run_scenario)
        self.regime = pn.pane.HTML(width=260)
        self.health = pn.pane.HTML(width=300)

        # Price: mid and microprice lines, trades as triangles (buy up/green, sell down/red) sized by quantity.
        self.price_src = ColumnDataSource(dict(x=[], mid=[], microprice=[]))
        self.trade_src = ColumnDataSource(dict(x=[], price=[], size=[], color=[], marker=[]))
        self.price_fig = _time_figure("Price: mid, microprice, trades", 320)
        self.price_fig.line("x", "mid", source=self.price_src, color="#1f77b4", legend_label="mid")
        self.price_fig.line("x", "microprice", source=self.price_src, color="#9467bd", line_dash="dashed",
                            legend_label="microprice")
        self.price_fig.scatter("x", "price", source=self.trade_src, size="size", color="color", marker="marker",
                               alpha=0.6, legend_label="trades")
        self.price_fig.legend.location = "top_left"
        self.price_fig.legend.click_policy = "hide"

        # Ladder: bids to the left, asks to the right, one bar per level.
        self.ladder_src = ColumnDataSource(dict(price=[], left=[], right=[], color=[]))
        self.ladder_fig = figure(title="Ladder (top 20)", height=320, width=300, tools="", toolbar_location=None,
                                 x_axis_label="size (bids < 0 < asks)")
        self.ladder_fig.hbar(y="price", left="left", right="right", height=0.8, color="color", source=self.ladder_src)
        self.spread = pn.pane.HTML(width=300)

        # Depth heatmap: time x price, colour = log size of the level.
        self.heat_src = ColumnDataSource(dict(x=[], y=[], w=[], h=[], logq=[]))
        self.heat_fig = _time_figure("Depth heatmap (log size)", 260, x_range=self.price_fig.x_range)
        mapper = LinearColorMapper(palette="Viridis256", low=0, high=5)
        self.heat_mapper = mapper
        self.heat_fig.rect("x", "y", width="w", height="h", source=self.heat_src, line_color=None,
                           fill_color={"field": "logq", "transform": mapper})

        # Feature strip.
        self.feat_src = ColumnDataSource(dict(x=[], ofi=[], obi=[], spread_z=[], vpin=[]))
        self.feat_figs = []
        for name, color in (("ofi", "#d62728"), ("obi", "#2ca02c"), ("spread_z", "#ff7f0e"), ("vpin", "#8c564b")):
            f = _time_figure(name.upper().replace("_", " "), 120, x_range=self.price_fig.x_range)
            f.line("x", name, source=self.feat_src, color=color)
            f.xaxis.visible = name == "vpin"
            self.feat_figs.append(f)

        # Alert feed.
        self.alert_src = ColumnDataSource({c: [] for c in ALERT_COLUMNS})
        columns = [TableColumn(field="time", title="raised (UTC)", formatter=DateFormatter(format="%H:%M:%S.%3N")),
                   TableColumn(field="severity", title="severity"), TableColumn(field="kind", title="kind"),
                   TableColumn(field="symbol", title="symbol"),
                   TableColumn(field="score", title="score", formatter=NumberFormatter(format="0.0")),
                   TableColumn(field="side", title="side"), TableColumn(field="state", title="state"),
                   TableColumn(field="repeats", title="repeats")]
        self.alert_table = DataTable(source=self.alert_src, columns=columns, height=260, sizing_mode="stretch_width",
                                     index_position=None, selectable=True, sortable=False, name="alert-table")
        self.alert_src.selected.on_change("indices", self._alert_clicked)
        self.f_severity = pn.widgets.MultiChoice(name="severity", options=list(common.SEVERITY_RANK),
                                                 value=list(common.SEVERITY_RANK), width=320)
        self.f_kind = pn.widgets.Select(name="kind", options=["all"], value="all", width=160)
        self.f_state = pn.widgets.Select(name="state", options=["all", *STATES], value="all", width=130)
        for w in (self.f_severity, self.f_kind, self.f_state):
            w.param.watch(lambda *_: self._show_alerts(), "value")
        self.case_info = pn.pane.HTML("<i>click an alert</i>", sizing_mode="stretch_width")
        self.to_state = pn.widgets.Select(name="new state", options=list(STATES[1:]), value="investigating", width=150)
        self.note = pn.widgets.TextInput(name="note", placeholder="why (goes to the audit trail)", width=320)
        self.apply_state = pn.widgets.Button(name="Change state", button_type="warning", width=130)
        self.apply_state.on_click(self._change_state)
        self.result = pn.pane.HTML("", sizing_mode="stretch_width")
        # What this page has received: the benchmark reads it (updates/s, server-to-page latency).
        self.received = 0
        self.stats = pn.pane.HTML("", sizing_mode="stretch_width")

        controls = pn.Row(self.play, self.speed, self.pick_symbol, self.scenario, self.run_scenario,
                          sizing_mode="stretch_width")
        self._layout = pn.Column(
            common.header("surveillance", mode, common.session_user()),
            pn.Row(self.clock, self.regime, sizing_mode="stretch_width"),
            controls, self.scrub,
            pn.Row(pn.Column(pn.pane.Bokeh(self.price_fig, sizing_mode="stretch_width"),
                             pn.pane.Bokeh(self.heat_fig, sizing_mode="stretch_width"),
                             *[pn.pane.Bokeh(f, sizing_mode="stretch_width") for f in self.feat_figs],
                             sizing_mode="stretch_width"),
                   pn.Column(pn.pane.Bokeh(self.ladder_fig), self.spread, self.health, width=320),
                   sizing_mode="stretch_width"),
            pn.pane.HTML("<h3 style='margin:4px 0'>Alerts</h3>"),
            pn.Row(self.f_severity, self.f_kind, self.f_state),
            pn.pane.Bokeh(self.alert_table, sizing_mode="stretch_width"),
            self.case_info, pn.Row(self.to_state, self.note, self.apply_state), self.result, self.stats,
            sizing_mode="stretch_width")

    def __panel__(self):
        return self._layout

    def start(self) -> SurveillanceApp:
        self.refresh()
        pn.state.add_periodic_callback(self.refresh, period=common.REFRESH_MS)
        return self

    # -- controls -----------------------------------------------------------------------
    def _toggle_play(self, _event=None) -> None:
        if self.engine.playing:
            self.engine.pause()
        else:
            self.engine.play()
        self.play.name = "Pause" if self.engine.playing else "Play"

    def _set_speed(self, event) -> None:
        self.engine.set_speed(SPEED_LABELS[event.new])

    def _scrub(self, event) -> None:
        self.engine.seek(self.engine.range[0] + int(event.new * 1e9))

    def _pick_symbol(self, event) -> None:
        self.symbol = event.new
        self._clear()
        self.buffer.put(self.engine.snapshot())

    def _run_scenario(self, _event=None) -> None:
        self.engine.set_scenario(self.scenario.value)
        self.pick_symbol.options = list(self.engine.symbols)
        self.pick_symbol.value = self.engine.symbols[0]
        lo, hi = self.engine.range
        self.scrub.end = max(1, int((hi - lo) / 1e9))
        self.alerts = self.alerts.iloc[0:0]
        self._show_alerts()

    def _alert_clicked(self, attr, old, new) -> None:
        if not new:
            return
        row = self.alert_src.data
        k = new[0]
        case_id, start_ts = row["case_id"][k], int(row["start_ts"][k])
        self.selected_case = case_id
        if self.engine.config.mode != "live":
            # Jump to just before the episode, and pause there for the analyst.
            self.engine.pause()
            self.play.name = "Play"
            self.engine.seek(start_ts - 2_000_000_000)
        self.case_info.object = (f"case <b id='selected-case' data-start-ns='{start_ts}'>{case_id}</b>: "
                                 f"{row['kind'][k]} on {row['symbol'][k]}, "
                                 f"state <b>{row['state'][k]}</b>, started {common.utc(start_ts)}")

    def _change_state(self, _event=None) -> None:
        if not self.selected_case:
            self.result.object = common.message("pick an alert first", False)
            return
        try:
            out = self.engine.change_alert(self.selected_case, self.to_state.value, self.note.value,
                                           common.session_user())
        except (NotAuthorized, IllegalTransition, ValueError) as exc:
            self.result.object = common.message(str(exc), False)
            return
        self.result.object = common.message(f"case {out['case_id']} -> {out['state']} by {out['actor']}", True)
        self.note.value = ""

    # -- data ---------------------------------------------------------------------------
    def _clear(self) -> None:
        for src in (self.price_src, self.trade_src, self.heat_src, self.feat_src):
            src.data = {k: [] for k in src.data}
        self._last_heat = None

    def refresh(self) -> None:
        updates = self.buffer.drain()
        if not updates:
            return
        price, feats, trades = [], [], []
        for u in updates:
            if u.get("reset"):
                self._clear()
                price, feats, trades = [], [], []
                if self.symbol not in u["symbols"] and u["symbols"]:  # a new simulated market (another session)
                    self.pick_symbol.options = list(u["symbols"])
                    self.symbol = self.pick_symbol.value = next(iter(u["symbols"]))
            s = u["symbols"].get(self.symbol, {})
            if "ts" in s:
                x = common.ms(s["ts"])
                price.append((x, s["mid"], s["microprice"]))
                feats.append((x, s["ofi"], s["obi"], s["spread_z"], s["vpin"]))
            if "trades" in s:
                trades.append(s["trades"])
            if u["alerts"]:
                self._add_alerts(u["alerts"])
            for case in u["cases"]:
                self.alerts.loc[self.alerts["case_id"] == case["case_id"], "state"] = case["state"]
        if price:
            x, mid, micro = (np.concatenate(p) for p in zip(*price))
            self.price_src.stream(dict(x=x, mid=mid, microprice=micro), rollover=PRICE_POINTS)
            x, ofi, obi, z, vpin = (np.concatenate(p) for p in zip(*feats))
            self.feat_src.stream(dict(x=x, ofi=ofi, obi=obi, spread_z=z, vpin=vpin), rollover=PRICE_POINTS)
        if trades:
            self._stream_trades(trades)
        last = updates[-1]
        self.received += len(updates)
        self.stats.object = (f"<div style='font-size:10px;color:#999'>updates received <span id='update-stats' "
                             f"data-received='{self.received}' data-seq='{last['seq']}' data-wall-ns='{last['wall_ns']}' "
                             f"data-drops='{self.buffer.dropped}'>{self.received}</span> "
                             f"(this session dropped {self.buffer.dropped})</div>")
        self._show_header(last)
        top = last["symbols"].get(self.symbol, {}).get("top")
        if top is not None:
            self._show_ladder(top)
        if any(u["alerts"] or u["cases"] for u in updates):
            self._show_alerts()

    def _stream_trades(self, batches) -> None:
        ts = np.concatenate([b["ts"] for b in batches])
        price = np.concatenate([b["price"] for b in batches])
        qty = np.concatenate([b["qty"] for b in batches])
        side = np.concatenate([b["side"] for b in batches])
        if len(qty):
            self._qty_ref = max(self._qty_ref * 0.99, float(np.median(qty)) or 1.0)
        size = 4 + 6 * np.sqrt(np.clip(qty / max(self._qty_ref, 1e-12), 0, 25))
        self.trade_src.stream(dict(x=common.ms(ts), price=price, size=size,
                                   color=np.where(side > 0, "#2e7d32", "#c62828").tolist(),
                                   marker=np.where(side > 0, "triangle", "inverted_triangle").tolist()),
                              rollover=TRADE_POINTS)

    def _show_header(self, u) -> None:
        e = self.engine
        state = "playing" if u["playing"] else ("ended" if u["ended"] else "paused")
        speed = "max" if u["speed"] == 0 else f"{u['speed']:g}x"
        scenario = f" · scenario <b>{u['scenario']}</b>" if u.get("scenario") else ""
        self.clock.object = (f"<div style='font-size:14px'>replay clock <b id='clock' data-ns='{u['clock_ts']}'>"
                             f"{common.utc(u['clock_ts'])}</b> UTC · <span id='play-state'>{state}</span> · "
                             f"speed <span id='speed'>{speed}</span>{scenario}</div>")
        self.play.name = "Pause" if u["playing"] else "Play"
        if e.config.mode != "live" and u["range"][1] > u["range"][0]:
            self.scrub.value = int(min(max(u["clock_ts"] - u["range"][0], 0), u["range"][1] - u["range"][0]) / 1e9)
        code = u["symbols"].get(self.symbol, {}).get("regime", 0)
        name = REGIMES[code]
        self.regime.object = (f"<div>regime <span id='regime' style='background:{common.REGIME_COLOR[name]};color:white;"
                              f"padding:2px 8px;border-radius:4px'>{name.replace('_', ' ')}</span></div>")
        h = u["health"]
        self.health.object = "<b>engine health</b>" + common.kv_html({
            "messages/s": common.fmt(h["messages_per_s"]), "lag p50 ms": common.fmt(h["lag_p50_ms"]),
            "lag p99 ms": common.fmt(h["lag_p99_ms"]), "resyncs": h["resyncs"], "reconnects": h["reconnects"],
            "drops": h["session_drops"] + h["feed_dropped"], "backlog": h["backlog"], "sessions": h["sessions"],
            "errors": "; ".join(h["errors"]) or "none"}, "health")

    def _show_ladder(self, top) -> None:
        bid_px, bid_sz, ask_px, ask_sz = (np.asarray(top[k]) for k in ("bid_px", "bid_sz", "ask_px", "ask_sz"))
        b, a = np.isfinite(bid_px), np.isfinite(ask_px)
        prices = np.concatenate((bid_px[b], ask_px[a]))
        self.ladder_src.data = dict(price=prices, left=np.concatenate((-bid_sz[b], np.zeros(a.sum()))),
                                    right=np.concatenate((np.zeros(b.sum()), ask_sz[a])),
                                    color=["#2e7d32"] * int(b.sum()) + ["#c62828"] * int(a.sum()))
        tick = float(np.median(np.diff(np.sort(prices)))) if len(prices) > 1 else 1.0
        self.ladder_fig.renderers[0].glyph.height = tick * 0.8
        spread = ask_px[0] - bid_px[0] if b[0] and a[0] else float("nan")
        self.spread.object = (f"<div style='font-size:12px'>best bid <b>{common.fmt(bid_px[0], 8)}</b> · best ask "
                              f"<b>{common.fmt(ask_px[0], 8)}</b> · spread <b id='spread'>{common.fmt(spread, 4)}</b></div>")
        # One heatmap column per refresh from this ladder.
        x = float(top["ts"]) / 1e6
        width = (x - self._last_heat) if self._last_heat is not None and x > self._last_heat else 100.0
        self._last_heat = x
        sizes = np.concatenate((bid_sz[b], ask_sz[a]))
        logq = np.log10(1 + sizes)
        self.heat_mapper.high = max(float(self.heat_mapper.high), float(logq.max()) if len(logq) else 1.0)
        self.heat_src.stream(dict(x=np.full(len(prices), x - width / 2), y=prices, w=np.full(len(prices), width),
                                  h=np.full(len(prices), tick), logq=logq), rollover=HEAT_COLUMNS * 40)

    def _add_alerts(self, rows) -> None:
        new = pd.DataFrame(rows)
        new["time"] = common.ms(new["at_ts"])
        new = new.reindex(columns=self.alerts.columns)
        self.alerts = pd.concat([self.alerts, new], ignore_index=True) if len(self.alerts) else new
        # A first picture and the next update may both carry an alert: keep its latest row.
        self.alerts = self.alerts.drop_duplicates("alert_id", keep="last").reset_index(drop=True)
        kinds = sorted(set(self.alerts["kind"]))
        self.f_kind.options = ["all", *kinds]

    def _show_alerts(self) -> None:
        a = self.alerts
        if len(a):
            a = a[a["severity"].isin(self.f_severity.value)]
            if self.f_kind.value != "all":
                a = a[a["kind"] == self.f_kind.value]
            if self.f_state.value != "all":
                a = a[a["state"] == self.f_state.value]
            # Most severe first, newest first within a severity.
            a = a.assign(rank=a["severity"].map(common.SEVERITY_RANK)).sort_values(["rank", "time"],
                                                                                  ascending=False)
        self.alert_src.selected.indices = []
        self.alert_src.data = {c: a[c].tolist() if len(a) else [] for c in ALERT_COLUMNS}


if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
    SurveillanceApp().start().servable(title="Genesis surveillance")
