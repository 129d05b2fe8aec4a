"""The Voila surveillance review app, notebooks/surveillance_review.ipynb: its helpers in
genesis.surveillance.review, the notebook under papermill on an empty store, and the notebook
served by Voila over HTTP against a throwaway GENESIS_HOME whose store holds alerts.

Voila sends the executed notebook in the page but not the widgets' state: the browser asks the
kernel for it over a websocket. The served-page test does the same (without a browser), so it
checks what an analyst would see: the alert list, the picked alert's evidence and its chart.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from genesis.config import embedded_url
from genesis.pipelines.runner import REPO_ROOT, run_pipeline
from genesis.surveillance import review

NOTEBOOK = REPO_ROOT / "notebooks" / "surveillance_review.ipynb"
SYMBOL = "sim:REVIEW-1"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
NS = 1_000_000_000


# -- helpers on hand-made alerts -----------------------------------------------------------
def alert_rows(*rows) -> pd.DataFrame:
    """An alerts_table-shaped frame from (symbol, detector, severity, score, state) tuples."""
    frame = pd.DataFrame(rows, columns=["symbol", "detector", "severity", "score", "state"])
    frame.insert(0, "alert_id", [f"a{k}" for k in range(len(frame))])
    frame["kind"] = frame["detector"]
    return frame


ROWS = alert_rows(("x:A", "spoofing", "low", 25.0, "open"),
                  ("x:A", "spoofing", "high", 65.0, "closed"),
                  ("x:A", "layering", "medium", 45.0, "open"),
                  ("x:B", "spoofing", "medium", 55.0, "investigating"),
                  ("x:B", "wash_trades", "info", 5.0, None))


def test_filter_alerts_orders_by_severity_then_score_and_filters():
    assert review.filter_alerts(ROWS)["alert_id"].tolist() == ["a1", "a3", "a2", "a0", "a4"]
    assert review.filter_alerts(ROWS, min_severity="medium")["alert_id"].tolist() == ["a1", "a3", "a2"]
    assert review.filter_alerts(ROWS, symbol="x:A", detector="spoofing")["alert_id"].tolist() == ["a1", "a0"]
    assert review.filter_alerts(ROWS, state="open", min_severity="low")["alert_id"].tolist() == ["a2", "a0"]
    assert review.filter_alerts(ROWS, symbol="x:C").empty
    assert review.filter_alerts(ROWS.iloc[:0]).empty
    with pytest.raises(ValueError, match="min_severity='severe': severities are info, low"):
        review.filter_alerts(ROWS, min_severity="severe")
    with pytest.raises(ValueError, match="state='done': states are open, investigating"):
        review.filter_alerts(ROWS, state="done")


def test_alert_overview_counts_by_symbol_and_detector():
    table = review.alert_overview(ROWS)
    assert list(table.columns) == ["info", "low", "medium", "high", "critical", "open", "investigating", "closed",
                                   "(no case)", "total"]
    assert table.loc[("x:A", "spoofing")].tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0, 2]
    assert table.loc[("x:B", "wash_trades"), "(no case)"] == 1
    assert table["total"].sum() == len(ROWS)
    assert review.alert_overview(ROWS.iloc[:0]).empty
    # A case without audit rows: '' from the store's LEFT JOIN, or a missing value.
    blank = review.alert_overview(ROWS.assign(state=pd.array(["open", "", "open", "open", None], dtype="string")))
    assert blank["(no case)"].tolist() == [0, 1, 0, 1] and blank["open"].tolist() == [1, 1, 1, 0]


def test_evidence_table_shows_times_and_shortens_long_lists():
    alert = pd.Series({"evidence": {"start_ts": 1_723_075_200 * NS + 5, "order_price": 99.5, "order_ids": list(range(20)),
                                    "levels": [1, 2]}})
    table = review.evidence_table(alert).set_index("name")["value"]
    assert table["start_ts"] == pd.Timestamp("2024-08-08 00:00:00.000000005", tz="UTC")
    assert table["order_price"] == 99.5
    assert table["order_ids"].startswith("20 values: 0, 1, 2") and table["order_ids"].endswith("11, ...")
    assert table["levels"] == [1, 2]
    assert review.evidence_table(pd.Series({"evidence": {}})).empty


def test_url_parameters_reads_known_names_only():
    assert review.url_parameters("symbol=sim%3ASPOOFING%2BLAYERING-1&window_s=2.5&token=x") == {
        "symbol": "sim:SPOOFING+LAYERING-1", "window_s": 2.5}
    assert review.url_parameters("") == {}
    with pytest.raises(ValueError, match="URL parameter window_s='wide': not a float"):
        review.url_parameters("window_s=wide")


def test_url_parameters_default_to_voilas_query_string(monkeypatch):
    monkeypatch.setenv("QUERY_STRING", "detector=spoofing&min_severity=high")
    assert review.url_parameters() == {"detector": "spoofing", "min_severity": "high"}
    monkeypatch.delenv("QUERY_STRING")
    assert review.url_parameters() == {}


# -- a store with alerts ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def alert_home(tmp_path_factory) -> Path:
    """A GENESIS_HOME whose embedded store holds a minute of a simulated market with spoofing
    episodes, and the alerts the default detectors raise over it (as `make run` leaves it)."""
    from genesis.pipelines.ingest_events import ingest_simulation
    from genesis.surveillance.store import run_surveillance

    home = tmp_path_factory.mktemp("review-home")
    with pytest.MonkeyPatch.context() as env:  # (module scope: the autouse home is not set yet)
        env.setenv("GENESIS_HOME", str(home))
        env.delenv("GENESIS_CLICKHOUSE_URL", raising=False)
        url = embedded_url(home)
        ingest_simulation(scenarios=("spoofing",), seconds=60.0, seed=1, symbol=SYMBOL, store_url=url)
        run = run_surveillance(SYMBOL, store_url=url)
    assert len(run.alerts) >= 2 and "spoofing" in set(run.alerts["kind"])
    return home


@pytest.fixture
def stored(alert_home) -> tuple[str, pd.DataFrame]:
    url = embedded_url(alert_home)
    return url, review.alerts_table(store_url=url)


@pytest.mark.slow
def test_stored_alert_helpers(stored):
    url, alerts = stored
    spoofing = review.filter_alerts(alerts, detector="spoofing").iloc[0]
    history = review.case_history(spoofing["case_id"], store_url=url)
    assert history["seq"].iloc[0] == 0 and history["action"].iloc[0] == "opened" and history["actor"].iloc[0] == "system"
    assert review.case_history(str(uuid.uuid4()), store_url=url).empty

    # The simulated spoofing episode is found for the spoofing alert, by the evaluation's rule.
    episodes = review.matching_episodes(spoofing, store_url=url)
    assert len(episodes) >= 1 and set(episodes["kind"]) == {"spoofing"}
    assert (episodes["start_ts"] <= spoofing["end"] + pd.Timedelta(seconds=1)).all()
    assert review.matching_episodes(spoofing.copy().replace({SYMBOL: "x:REAL"}), store_url=url) is None

    figure = review.alert_replay(spoofing, window_s=1.0, store_url=url)
    frame = review.standalone_html(figure, height=300, title="the alert")
    assert frame.startswith('<iframe srcdoc="&lt;!DOCTYPE html&gt;') and 'style="width:100%;height:300px' in frame
    assert "Bokeh" in frame and f"shaded: spoofing ({spoofing['severity']}, score" in frame
    far = spoofing.copy()
    far["start"] = far["end"] = pd.Timestamp("2030-01-01")
    with pytest.raises(ValueError, match=f"{SYMBOL} has no book snapshots in"):
        review.alert_replay(far, store_url=url)


# -- the notebook ------------------------------------------------------------------------------
@pytest.mark.slow
def test_notebook_on_an_empty_store_says_how_to_create_alerts(tmp_path, store_url):
    spec = tmp_path / "review.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: review
        steps:
          - notebook: {NOTEBOOK}
            parameters: {json.dumps({"store_url": store_url, "min_severity": "low"})}
        """))
    result = run_pipeline(spec, progress=False)
    assert result.ok, result.summary()
    executed = nbformat.read(result.steps[0].output, as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "0 alerts on 0 symbols" in text and "No alerts in this store yet" in text
    assert "make run" in text and "05_surveillance.ipynb" in text and "nothing to review" in text
    assert not any(WIDGET_VIEW in o.get("data", {}) for o in outputs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str, server: subprocess.Popen, log: Path, deadline_s: float = 240.0) -> str:
    """GET ``url`` once the server answers (Voila runs the notebook for the request)."""
    deadline = time.monotonic() + deadline_s
    while True:
        if server.poll() is not None:
            pytest.fail(f"voila exited with {server.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=deadline_s) as response:
                return response.read().decode()
        except (urllib.error.URLError, ConnectionError) as error:
            if time.monotonic() > deadline:
                pytest.fail(f"voila did not answer {url} within {deadline_s} s ({error}):\n{log.read_text()[-4000:]}")
            time.sleep(0.5)


def cell_outputs(page: str) -> list[dict]:
    """The executed outputs a Voila page carries for its frontend to draw (all but the plain
    text ones, which it writes as HTML)."""
    blocks = re.findall(r'<script type="application/vnd.voila.cell-output\+json">(.*?)</script>', page, re.S)
    return [json.loads(block) for block in blocks]


def widget_states(port: int, kernel_id: str, timeout_s: float = 60.0) -> dict[str, dict]:
    """Every widget's state, asked of the page's kernel as the browser asks it (ipywidgets'
    ``jupyter.widget.control`` comm): model id -> {model_name, state, ...}."""
    from websockets.sync.client import connect

    session, comm_id = uuid.uuid4().hex, uuid.uuid4().hex

    def message(msg_type: str, content: dict, metadata: dict | None = None) -> tuple[str, str]:
        msg_id = uuid.uuid4().hex
        return msg_id, json.dumps({
            "header": {"msg_id": msg_id, "msg_type": msg_type, "session": session, "username": "test",
                       "date": pd.Timestamp.now(tz="UTC").isoformat(), "version": "5.3"},
            "parent_header": {}, "metadata": metadata or {}, "content": content, "channel": "shell", "buffers": []})

    def until(done) -> dict:
        while time.monotonic() < deadline:
            try:
                frame = ws.recv(timeout=max(deadline - time.monotonic(), 0.1))
            except TimeoutError:
                break
            reply = json.loads(frame) if isinstance(frame, str) else {}
            if done(reply):
                return reply
        pytest.fail(f"the kernel did not answer the widget control comm within {timeout_s} s")

    deadline = time.monotonic() + timeout_s
    with connect(f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels?session_id={session}",
                 max_size=None, open_timeout=timeout_s) as ws:
        # Open the comm and wait until the kernel has handled it, then ask for the states.
        opened, text = message("comm_open", {"comm_id": comm_id, "target_name": "jupyter.widget.control", "data": {}},
                               {"version": "1.0.0"})
        ws.send(text)
        until(lambda r: r.get("msg_type") == "status" and r["content"].get("execution_state") == "idle"
              and r.get("parent_header", {}).get("msg_id") == opened)
        ws.send(message("comm_msg", {"comm_id": comm_id, "data": {"method": "request_states"}})[1])
        reply = until(lambda r: r.get("msg_type") == "comm_msg" and r["content"].get("comm_id") == comm_id)
    assert reply["content"]["data"]["method"] == "update_states"
    return reply["content"]["data"]["states"]


@pytest.mark.slow
def test_voila_serves_the_executed_review_app(alert_home, stored, tmp_path):
    _, alerts = stored
    wanted = review.filter_alerts(alerts, detector="spoofing_l2")
    assert len(wanted) >= 1, "the simulated minute should raise spoofing_l2 alerts too"
    voila = Path(sys.executable).with_name("voila")
    port = free_port()
    log = tmp_path / "voila.log"
    env = {k: v for k, v in os.environ.items() if k != "GENESIS_CLICKHOUSE_URL"}
    env.update(GENESIS_HOME=str(alert_home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    with log.open("w") as out:
        server = subprocess.Popen([str(voila), str(NOTEBOOK), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1"],
                                  cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        # The URL picks a detector, as a link from the dashboard would.
        page = fetch(f"http://127.0.0.1:{port}/?detector=spoofing_l2", server, log)
        (tmp_path / "page.html").write_text(page)  # kept for a look when an assertion fails

        # The executed output is in the page: the store line, the overview table, the app's widget.
        assert f"{len(alerts):,} alerts on 1 symbols" in page
        outputs = cell_outputs(page)
        assert not [o for o in outputs if o["output_type"] == "error"] and "Traceback" not in page
        overview = next(o["data"] for o in outputs if "<th>critical</th>" in o.get("data", {}).get("text/html", ""))
        for detector in set(alerts["detector"]):
            assert re.search(rf"{re.escape(SYMBOL)}\s+{detector}\s|\n\s+{detector}\s", overview["text/plain"])
        assert sum(WIDGET_VIEW in o.get("data", {}) for o in outputs) == 1

        # The widgets, as the browser gets them from the page's kernel.
        kernel_id = re.search(r'"kernelId": "([0-9a-f-]+)"', page).group(1)
        states = [s["state"] for s in widget_states(port, kernel_id).values()]
        picker = next(s for s in states if s.get("_model_name") == "SelectModel")
        labels = picker["_options_labels"]
        assert len(labels) == len(wanted) and all("spoofing_l2" in label for label in labels)
        assert picker["index"] == 0  # the highest-scored spoofing_l2 alert is shown
        html = "\n".join(s["value"] for s in states if s.get("_model_name") == "HTMLModel")
        first = wanted.iloc[0]
        assert f"alert {first['alert_id']}" in html and f"{first['score']:.1f}" in html
        assert "<b>evidence</b>" in html and "<b>case history</b>" in html and "ground truth:" in html
        assert html.count('<iframe srcdoc="') == 1 and "Bokeh" in html and "book ladder" in html
        dropdowns = {s["description"]: s for s in states if s.get("_model_name") == "DropdownModel"}
        detector = dropdowns["detector"]
        assert detector["_options_labels"][detector["index"]] == "spoofing_l2"
        assert np.array_equal(sorted(detector["_options_labels"]), sorted(["(any)", *set(alerts["detector"])]))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=20)
