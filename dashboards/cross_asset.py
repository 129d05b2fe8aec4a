"""Cross-asset: OHLCV bars, a pair's spread with its z-score and signal, the correlation heatmap
of returns, and price alerts (over the stored history, and live on the engine's trades).

Bars come from the store (kept by ClickHouse materialized views from trades); the store is
opened for each read and closed again. Live price alerts run in this session on the trades the
engine publishes to it (up to ``EngineConfig.trades_per_update`` per update, the latest kept:
a burst beyond that is seen through its last trades), from when "Watch live" is pressed; a seek
back restarts the rules. Storing alerts changes state, so it needs a logged-in user when the
server authenticates. Served by ``genesis serve`` (Panel runs this script once per browser session).
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the apps' shared module (not a package)
import common  # noqa: E402

from genesis.analytics.bars import INTERVALS, bar_symbols, close_matrix, csv_frame, read_bars  # noqa: E402
from genesis.analytics.correlation import correlation_heatmap, correlation_matrix, rolling_correlation  # noqa: E402
from genesis.analytics.pairs import pair_spread  # noqa: E402
from genesis.analytics.plots import bars_figure, correlation_figure, spread_figure  # noqa: E402
from genesis.analytics.price_alerts import (  # noqa: E402
    PriceAlertMonitor, PriceRule, evaluate_store, load_triggers, save_triggers,
)
from genesis.live.auth import NotAuthorized, authorize  # noqa: E402

pn.extension(notifications=False)

ALERT_COLUMNS = ["time", "symbol", "kind", "level", "price", "prev_price", "direction", "mode"]
LIVE_ALERTS_KEPT = 200


def _alert_rows(fired: pd.DataFrame, mode: str) -> pd.DataFrame:
    if not len(fired):
        return pd.DataFrame(columns=ALERT_COLUMNS)
    out = fired.copy()
    out["time"] = [common.utc(t) for t in out["at_ts"].astype("int64")]
    out["direction"] = np.where(out["direction"].astype(int) > 0, "up", "down")
    out["mode"] = out["mode"] if "mode" in out else mode
    return out[ALERT_COLUMNS]


class CrossAssetApp(pn.viewable.Viewer):
    """Bars, pair spread, correlation and price alerts over the store's symbols."""

    def __init__(self, **params):
        super().__init__(**params)
        self.engine, self.buffer = common.subscribe("cross_asset")
        self.store_url = self.engine.config.store_url
        self.bars: dict[str, pd.DataFrame] = {}
        self.monitor: PriceAlertMonitor | None = None
        self.live_alerts = pd.DataFrame(columns=ALERT_COLUMNS)
        self._build()
        self.reload()
        pn.state.add_periodic_callback(self.refresh, period=common.REFRESH_MS * 5)

    # -- layout -------------------------------------------------------------------------
    def _build(self) -> None:
        self.interval = pn.widgets.Select(name="interval", options=list(INTERVALS), value="1s", width=90)
        self.symbols = pn.widgets.MultiChoice(name="symbols", options=[], width=520)
        self.reload_btn = pn.widgets.Button(name="Reload", button_type="primary", width=90)
        self.reload_btn.on_click(lambda _event: self.reload())
        self.bars_symbol = pn.widgets.Select(name="bars of", options=[], width=260)
        self.bars_symbol.param.watch(lambda _event: self._draw_bars(), "value")
        self.download = pn.widgets.FileDownload(callback=self._bars_csv, filename="bars.csv", label="Download CSV",
                                                button_type="success", width=150)
        self.pair_y = pn.widgets.Select(name="y", options=[], width=240)
        self.pair_x = pn.widgets.Select(name="x", options=[], width=240)
        self.method = pn.widgets.Select(name="hedge ratio", options=["kalman", "ols"], value="kalman", width=100)
        self.window = pn.widgets.IntInput(name="OLS window", value=60, start=2, width=100)
        self.entry = pn.widgets.FloatInput(name="entry z", value=2.0, start=0.1, step=0.1, width=90)
        self.exit = pn.widgets.FloatInput(name="exit z", value=0.5, start=0.0, step=0.1, width=90)
        self.pair_btn = pn.widgets.Button(name="Draw pair", width=100)
        self.pair_btn.on_click(lambda _event: self._draw_pair())
        self.corr_window = pn.widgets.IntInput(name="correlation window", value=60, start=2, width=140)
        self.corr_btn = pn.widgets.Button(name="Draw correlation", width=140)
        self.corr_btn.on_click(lambda _event: self._draw_correlation())
        self.rules = pn.widgets.TextAreaInput(name="price alert rules (one per line: SYMBOL above|below|cross LEVEL)",
                                              value="", height=90, width=520)
        self.history_btn = pn.widgets.Button(name="Evaluate on history", width=160)
        self.history_btn.on_click(lambda _event: self._evaluate_history())
        self.save = pn.widgets.Checkbox(name="store fired alerts", value=False)
        self.live_btn = pn.widgets.Button(name="Watch live", button_type="success", width=110)
        self.live_btn.on_click(lambda _event: self._watch_live())
        self.bars_pane = pn.pane.Bokeh(sizing_mode="stretch_width")
        self.pair_pane = pn.pane.Bokeh(sizing_mode="stretch_width")
        self.pair_info = pn.pane.HTML("", sizing_mode="stretch_width")
        self.heatmap_pane = pn.pane.Bokeh()
        self.corr_pane = pn.pane.Bokeh(sizing_mode="stretch_width")
        self.alerts_pane = pn.pane.DataFrame(pd.DataFrame(columns=ALERT_COLUMNS), index=False,
                                             sizing_mode="stretch_width", max_rows=50)
        self.live_pane = pn.pane.DataFrame(self.live_alerts, index=False, sizing_mode="stretch_width", max_rows=50)
        self.message = pn.pane.HTML("", sizing_mode="stretch_width")
        self.live_state = pn.pane.HTML("<span id='live-alerts-state'>not watching</span>")
        self._layout = pn.Column(
            common.header("cross-asset", self.engine.config.mode, common.session_user()),
            pn.Row(self.symbols, self.interval, self.reload_btn), self.message,
            pn.pane.HTML("<h3 style='margin:4px 0'>Bars</h3>"), pn.Row(self.bars_symbol, self.download),
            self.bars_pane,
            pn.pane.HTML("<h3 style='margin:4px 0'>Pair spread</h3>"),
            pn.Row(self.pair_y, self.pair_x, self.method, self.window, self.entry, self.exit, self.pair_btn),
            self.pair_info, self.pair_pane,
            pn.pane.HTML("<h3 style='margin:4px 0'>Correlation of returns</h3>"),
            pn.Row(self.corr_window, self.corr_btn), pn.Row(self.heatmap_pane, self.corr_pane),
            pn.pane.HTML("<h3 style='margin:4px 0'>Price alerts</h3>"),
            pn.Row(self.rules, pn.Column(self.history_btn, self.save, self.live_btn, self.live_state)),
            pn.pane.HTML("<b>Over the history</b> (and stored)"), self.alerts_pane,
            pn.pane.HTML("<b>Live</b> (on the engine's trades)"), self.live_pane,
            sizing_mode="stretch_width")

    def __panel__(self):
        return self._layout

    # -- data ---------------------------------------------------------------------------
    def _say(self, text: str, ok: bool = True) -> None:
        self.message.object = common.message(text, ok)

    def reload(self) -> None:
        from genesis.store import connect, migrate

        try:
            with connect(self.store_url) as store:
                migrate(store)  # (a store from before the bars migration gets it, with its backfill)
                held = bar_symbols(store, self.interval.value)
                stored = load_triggers(store)
        except (OSError, TimeoutError, ValueError) as exc:  # e.g. the embedded store held by another process
            self._say(f"could not read the store: {exc}", False)
            return
        self.symbols.options = held
        chosen = [s for s in self.symbols.value if s in held] or held[:4]
        self.symbols.value = chosen
        for select in (self.bars_symbol, self.pair_y, self.pair_x):
            select.options = chosen
        if chosen:
            self.bars_symbol.value = chosen[0]
            self.pair_x.value = chosen[0]
            self.pair_y.value = chosen[1] if len(chosen) > 1 else chosen[0]
        if not self.rules.value and chosen:
            self.rules.value = "\n".join(self._default_rules(chosen))
        self.alerts_pane.object = _alert_rows(stored.tail(200), "history")
        self._say(f"{len(held)} symbol(s) with {self.interval.value} bars in the store", True)
        self._load_bars()
        self._draw_bars()
        self._draw_pair()
        self._draw_correlation()

    def _load_bars(self) -> None:
        from genesis.store import connect

        with connect(self.store_url) as store:
            self.bars = {s: read_bars(store, s, self.interval.value) for s in self.symbols.value}

    def _default_rules(self, symbols: list[str]) -> list[str]:
        """A cross of the median close per symbol: something that fires on any data."""
        self._load_bars()
        return [f"{s} cross {self.bars[s]['close'].median():.6g}" for s in symbols if len(self.bars.get(s, ()))]

    def _closes(self) -> pd.DataFrame:
        from genesis.store import connect

        with connect(self.store_url) as store:
            return close_matrix(store, list(self.symbols.value), self.interval.value)

    def _draw_bars(self) -> None:
        symbol = self.bars_symbol.value
        bars = self.bars.get(symbol)
        if bars is None or not len(bars):
            self.bars_pane.object = None
            return
        self.download.filename = f"bars_{symbol.replace(':', '_')}_{self.interval.value}.csv"
        self.bars_pane.object = bars_figure(bars, title=f"{symbol}: {self.interval.value} bars", width=1100)

    def _bars_csv(self):
        import io

        symbol = self.bars_symbol.value
        bars = self.bars.get(symbol, pd.DataFrame())
        return io.StringIO(csv_frame(bars, symbol, self.interval.value).to_csv(index=False))

    def _draw_pair(self) -> None:
        y, x = self.pair_y.value, self.pair_x.value
        if not y or not x or y == x:
            self.pair_info.object = "<i>pick two different symbols</i>"
            self.pair_pane.object = None
            return
        try:
            closes = self._closes()
            pair = pair_spread(closes, y, x, method=self.method.value, window=self.window.value,
                               z_window=self.window.value, entry=self.entry.value, exit=self.exit.value,
                               delta=1e-9, obs_var=1e-8)
        except (LookupError, ValueError) as exc:
            self.pair_info.object = common.message(str(exc), False)
            return
        changes = int((np.diff(pair["position"].to_numpy()) != 0).sum())
        self.pair_info.object = common.kv_html({
            "pair": html.escape(f"{y} ~ {x}"), "beta (last)": common.fmt(pair["beta"].iloc[-1]),
            "z (last)": common.fmt(pair["z"].iloc[-1]), "position": int(pair["position"].iloc[-1]),
            "position changes": changes, "cumulative return": common.fmt(pair["pnl"].sum())}, "pair")
        self.pair_pane.object = spread_figure(pair, self.entry.value, self.exit.value, title=f"{y} ~ {x}", width=1100)

    def _draw_correlation(self) -> None:
        if len(self.symbols.value) < 2:
            self.heatmap_pane.object = self.corr_pane.object = None
            return
        try:
            closes = self._closes()
            rolling = rolling_correlation(closes, self.corr_window.value)
        except (LookupError, ValueError) as exc:
            self._say(str(exc), False)
            return
        self.heatmap_pane.object = correlation_heatmap(correlation_matrix(closes),
                                                       title=f"Correlation of {self.interval.value} log returns")
        first, second = closes.columns[:2]
        self.corr_pane.object = correlation_figure(rolling.pair(first, second), width=650)

    # -- price alerts -------------------------------------------------------------------
    def _parse_rules(self) -> list[PriceRule] | None:
        try:
            rules = [PriceRule.parse(line) for line in self.rules.value.splitlines() if line.strip()]
        except ValueError as exc:
            self._say(str(exc), False)
            return None
        if not rules:
            self._say("no price alert rules: write one per line, e.g. binance-usdm:BTCUSDT above 62000", False)
            return None
        return rules

    def _evaluate_history(self) -> None:
        from genesis.store import connect

        rules = self._parse_rules()
        if rules is None:
            return
        who = None
        if self.save.value:
            try:
                who = authorize(self.engine.config.address, common.session_user(), "storing price alerts",
                                auth=self.engine.config.auth)
            except NotAuthorized as exc:
                self._say(str(exc), False)
                return
        with connect(self.store_url) as store:
            fired = evaluate_store(store, rules)
            run_id = save_triggers(store, fired, mode="history") if who else None
        self.alerts_pane.object = _alert_rows(fired, "history")
        stored = f", stored as run {run_id} by {who}" if run_id else ""
        self._say(f"{len(fired)} alert(s) over the stored trades{stored}", True)

    def _watch_live(self) -> None:
        rules = self._parse_rules()
        if rules is None:
            return
        self.monitor = PriceAlertMonitor(rules)
        self.live_state.object = f"<span id='live-alerts-state'>watching {len(rules)} rule(s)</span>"

    def refresh(self) -> None:
        updates = self.buffer.drain()
        if self.monitor is None:
            return
        fired = []
        for update in updates:
            if update.get("reset"):  # the replay went back: the rules start again
                self.monitor = PriceAlertMonitor(self.monitor.rules)
            for symbol, part in (update.get("symbols") or {}).items():
                trades = part.get("trades")
                if not trades or not len(trades["ts"]):
                    continue
                names = {r.symbol for r in self.monitor.rules if r.symbol == symbol or r.symbol.endswith(":" + symbol)}
                for name in names:
                    try:
                        fired.append(self.monitor.on_prices(name, np.asarray(trades["ts"]),
                                                            np.asarray(trades["price"])))
                    except ValueError:  # out of order after a seek: start again from here
                        self.monitor = PriceAlertMonitor(self.monitor.rules)
        fired = [f for f in fired if len(f)]
        if fired:
            rows = _alert_rows(pd.concat(fired, ignore_index=True), "live")
            self.live_alerts = pd.concat([rows.iloc[::-1], self.live_alerts], ignore_index=True).head(LIVE_ALERTS_KEPT)
            self.live_pane.object = self.live_alerts


if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
    CrossAssetApp().servable(title="Genesis cross-asset")
