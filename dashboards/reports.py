"""Reports: stored backtest and paper runs with their headline metrics, pipeline runs, a run's
full report, and its tables as CSV downloads.

The store is opened for each read and closed again (the embedded store admits one process at a
time). Served by ``genesis serve`` (Panel runs this script once per browser session).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the apps' shared module (not a package)
import common  # noqa: E402

from genesis.config import settings  # noqa: E402

pn.extension(notifications=False)

TABLES = ("fills", "trades", "equity", "daily", "metrics")


def pipeline_runs() -> pd.DataFrame:
    """Every pipeline run under GENESIS_HOME/runs (its run.json manifest), newest first."""
    rows = []
    for manifest in sorted(settings().runs_dir.glob("*/*/run.json")):
        try:
            m = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        rows.append({"pipeline": m.get("pipeline"), "started": m.get("started"), "ok": m.get("ok"),
                     "steps": len(m.get("steps", [])), "error": m.get("error") or "",
                     "folder": str(manifest.parent)})
    frame = pd.DataFrame(rows, columns=["pipeline", "started", "ok", "steps", "error", "folder"])
    return frame.sort_values("started", ascending=False).reset_index(drop=True) if len(frame) else frame


class ReportsApp(pn.viewable.Viewer):
    """Runs, metrics, one run's report and its CSV exports."""

    def __init__(self, **params):
        super().__init__(**params)
        self.engine = common.engine()
        self.store_url = self.engine.config.store_url
        self.runs = pd.DataFrame()
        self.result = None
        self._build()
        self.reload()

    def _build(self) -> None:
        self.reload_btn = pn.widgets.Button(name="Reload", width=90)
        self.reload_btn.on_click(lambda _event: self.reload())
        self.kind = pn.widgets.Select(name="kind", options=["all", "backtest", "paper"], value="all", width=120)
        self.kind.param.watch(lambda _event: self.reload(), "value")
        self.runs_pane = pn.pane.DataFrame(pd.DataFrame(), index=False, sizing_mode="stretch_width",
                                           float_format=lambda v: f"{v:,.4g}")
        self.metric = pn.widgets.Select(name="metric", options=["pnl_net", "sharpe", "max_drawdown", "win_rate",
                                                                  "trades", "fees", "turnover"], value="pnl_net",
                                        width=150)
        self.metric.param.watch(lambda _event: self._show_chart(), "value")
        self.chart_src = ColumnDataSource(dict(run=[], value=[]))
        self.chart = figure(title="Runs", height=240, x_range=[], sizing_mode="stretch_width", tools="",
                            toolbar_location=None)
        self.chart.vbar(x="run", top="value", width=0.8, source=self.chart_src, color="#1f77b4")
        self.chart.xaxis.major_label_orientation = 0.8
        self.pick = pn.widgets.Select(name="run", options=[], width=420)
        self.open_btn = pn.widgets.Button(name="Open report", button_type="primary", width=120)
        self.open_btn.on_click(self._open)
        self.table = pn.widgets.Select(name="table", options=list(TABLES), value="fills", width=120)
        self.download = pn.widgets.FileDownload(callback=self._csv, filename="fills.csv", label="Download CSV",
                                                button_type="success", width=160, disabled=True)
        self.table.param.watch(self._rename, "value")
        self.report = pn.Column(sizing_mode="stretch_width")
        self.message = pn.pane.HTML("", sizing_mode="stretch_width")
        self.pipelines_pane = pn.pane.DataFrame(pd.DataFrame(), index=False, sizing_mode="stretch_width")
        # An executed notebook of a pipeline run (papermill output, with its plots), to download and open.
        self.notebook = pn.widgets.Select(name="executed notebook", options={}, width=520)
        self.notebook_download = pn.widgets.FileDownload(callback=self._notebook_bytes, filename="notebook.ipynb",
                                                         label="Download notebook", width=180)
        self.notebook.param.watch(
            lambda event: setattr(self.notebook_download, "filename", Path(event.new).name if event.new else ""),
            "value")
        self._layout = pn.Column(
            common.header("reports", self.engine.config.mode, common.session_user()),
            pn.pane.HTML("<h3 style='margin:4px 0'>Backtest and paper runs</h3>"),
            pn.Row(self.kind, self.metric, self.reload_btn), pn.pane.Bokeh(self.chart, sizing_mode="stretch_width"),
            self.runs_pane,
            pn.Row(self.pick, self.open_btn, self.table, self.download), self.message,
            self.report,
            pn.pane.HTML("<h3 style='margin:4px 0'>Pipeline runs</h3>"), self.pipelines_pane,
            pn.Row(self.notebook, self.notebook_download),
            sizing_mode="stretch_width")

    def __panel__(self):
        return self._layout

    def reload(self) -> None:
        from genesis.backtest.store import list_runs
        from genesis.store import connect

        try:
            with connect(self.store_url) as store:
                runs = list_runs(store, kind=None if self.kind.value == "all" else self.kind.value)
        except (OSError, TimeoutError, ValueError) as exc:  # e.g. the embedded store held by another process
            self.message.object = common.message(f"could not read the runs: {exc}", False)
            runs = pd.DataFrame()
        self.runs = runs
        shown = runs.drop(columns=["params"], errors="ignore")
        self.runs_pane.object = shown
        self.pick.options = {f"{r.run_id} · {r.kind} · {r.strategy} · {r.symbols}": r.run_id
                             for r in runs.itertuples()} if len(runs) else {}
        self.open_btn.disabled = not len(runs)
        pipelines = pipeline_runs()
        self.pipelines_pane.object = pipelines
        self.notebook.options = {f"{Path(folder).parent.name}/{Path(folder).name}/{nb.name}": str(nb)
                                 for folder in pipelines["folder"] for nb in sorted(Path(folder).glob("*.ipynb"))}
        self._show_chart()

    def _show_chart(self) -> None:
        runs = self.runs
        if not len(runs):
            self.chart_src.data = dict(run=[], value=[])
            self.chart.x_range.factors = []
            return
        labels = [f"{r[:8]}" for r in runs["run_id"]]
        self.chart.x_range.factors = labels
        self.chart_src.data = dict(run=labels, value=pd.to_numeric(runs[self.metric.value], errors="coerce").tolist())
        self.chart.title.text = f"Runs: {self.metric.value}"

    def _open(self, _event=None) -> None:
        from genesis.backtest.metrics import compute_metrics
        from genesis.backtest.report import report_layout
        from genesis.backtest.store import load_run
        from genesis.store import connect

        run_id = self.pick.value
        if not run_id:
            return
        with connect(self.store_url) as store:
            self.result = load_run(store, run_id)
        metrics = compute_metrics(self.result)  # (the report's header lists them all)
        self.report.objects = [pn.pane.Bokeh(report_layout(self.result, metrics=metrics), sizing_mode="stretch_width")]
        self.download.disabled = False
        self.message.object = common.message(f"report of run {run_id}", True)

    def _notebook_bytes(self) -> io.BytesIO:
        return io.BytesIO(Path(self.notebook.value).read_bytes()) if self.notebook.value else io.BytesIO()

    def _rename(self, event) -> None:
        self.download.filename = f"{event.new}.csv"

    def _csv(self) -> io.BytesIO:
        import tempfile

        from genesis.backtest.report import export_csv

        with tempfile.TemporaryDirectory() as directory:
            paths = export_csv(self.result, directory)
            data = Path(paths[self.table.value]).read_bytes()
        return io.BytesIO(data)


if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
    ReportsApp().servable(title="Genesis reports")
