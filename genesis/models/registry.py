"""The model registry: ``models/<model_id>/`` holds everything needed to use and judge a model.

* ``model.pt``: the network's weights (state dict) and its constructor arguments;
* ``scaler.json``: the normalisation fitted on the training period only;
* ``config.json``: data (symbols, ranges, label kind and horizon), splits, training settings;
* ``metrics.json``: DeepLOB and the two baselines on validation and test;
* ``MODEL_CARD.md``: the same, for people: data, ranges, splits, metrics against baselines.

The directory is ``GENESIS_MODELS_DIR`` if set, else the repository's ``models/``.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
_METRIC_KEYS = ("accuracy", "macro_f1", "weighted_f1", "mcc", "kappa")


def models_dir(directory: str | Path | None = None) -> Path:
    return Path(directory or os.environ.get("GENESIS_MODELS_DIR") or REPO_MODELS).expanduser()


def new_model_id(config: dict) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return f"deeplob-{stamp}-{digest}"


def save_model(model: torch.nn.Module, scaler: Any, config: dict, reports: dict[str, dict[str, dict]], *,
               model_id: str | None = None, directory: str | Path | None = None) -> Path:
    """Write a trained model's directory; returns its path. ``reports``: split -> model -> report."""
    model_id = model_id or new_model_id(config)
    path = models_dir(directory) / model_id
    path.mkdir(parents=True, exist_ok=False)
    torch.save({"state_dict": model.state_dict(), "kwargs": getattr(model, "init_kwargs", {})}, path / "model.pt")
    (path / "scaler.json").write_text(json.dumps(scaler.to_dict(), indent=2))
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    (path / "config.json").write_text(json.dumps({"model_id": model_id, "created": created, **config}, indent=2,
                                                 default=str))
    (path / "metrics.json").write_text(json.dumps(reports, indent=2, default=float))
    (path / "MODEL_CARD.md").write_text(model_card(model_id, created, config, reports))
    return path


def model_card(model_id: str, created: str, config: dict, reports: dict[str, dict[str, dict]]) -> str:
    """The model card: what it was trained on, how it was split, how it does against baselines."""
    data = config.get("data", {})
    lines = [f"# {model_id}", "", f"DeepLOB (Zhang, Zohren and Roberts 2019), trained {created}.", "",
             "## Data", ""]
    for key, value in data.items():
        lines.append(f"- **{key}**: {value}")
    lines += ["", "## Splits", "",
              "Time-ordered (walk-forward), with a purge gap of at least the label horizon plus the window "
              "between training and validation/test windows; normalisation fitted on the training period only.", ""]
    for key, value in config.get("splits", {}).items():
        lines.append(f"- **{key}**: {value}")
    lines += ["", "## Training", ""]
    for key, value in config.get("training", {}).items():
        lines.append(f"- **{key}**: {value}")
    for split in ("test", "val"):
        if split not in reports:
            continue
        lines += ["", f"## Metrics on {split} (DeepLOB against the baselines, same windows)", "",
                  "| model | " + " | ".join(_METRIC_KEYS) + " |", "|---" * (len(_METRIC_KEYS) + 1) + "|"]
        for name, report in reports[split].items():
            lines.append(f"| {name} | " + " | ".join(f"{report[k]:.3f}" for k in _METRIC_KEYS) + " |")
        deeplob = reports[split].get("deeplob")
        if deeplob:
            lines += ["", f"Confusion matrix of DeepLOB on {split} (rows: true down/stationary/up; "
                          f"columns: predicted): `{deeplob['confusion_matrix']}`"]
    verdict = _verdict(reports.get("test", {}))
    if verdict:
        lines += ["", "## Verdict", "", verdict]
    return "\n".join(lines) + "\n"


def _verdict(test: dict[str, dict]) -> str:
    if "deeplob" not in test:
        return ""
    ours = test["deeplob"]["macro_f1"]
    others = {k: v["macro_f1"] for k, v in test.items() if k != "deeplob"}
    best_name, best = max(others.items(), key=lambda kv: kv[1]) if others else ("", float("nan"))
    if ours > best:
        return f"DeepLOB beats both baselines on test macro-F1 ({ours:.3f} against {best_name} {best:.3f})."
    return (f"DeepLOB does not beat the baselines on test macro-F1 ({ours:.3f} against {best_name} {best:.3f}); "
            "do not trade on it.")


def list_models(directory: str | Path | None = None) -> pd.DataFrame:
    """One row per model: id, created, symbols, label, and test macro-F1 of DeepLOB and baselines."""
    rows = []
    root = models_dir(directory)
    for path in sorted(root.glob("*/config.json")):
        config = json.loads(path.read_text())
        metrics_path = path.parent / "metrics.json"
        test = json.loads(metrics_path.read_text()).get("test", {}) if metrics_path.exists() else {}
        rows.append({"model_id": config.get("model_id", path.parent.name), "created": config.get("created"),
                     "symbols": ", ".join(config.get("data", {}).get("symbols", [])),
                     "label": config.get("data", {}).get("label", ""),
                     **{f"test_macro_f1_{k}": v.get("macro_f1") for k, v in test.items()}})
    return pd.DataFrame(rows)


def load_model(model_id: str, directory: str | Path | None = None):
    """``(model in eval mode, scaler, config)`` of a registered model."""
    from genesis.models.data import Scaler
    from genesis.models.deeplob import DeepLOB

    path = models_dir(directory) / model_id
    if not (path / "model.pt").exists():
        known = ", ".join(list_models(directory).get("model_id", pd.Series(dtype=str)).tolist()) or "none"
        raise FileNotFoundError(f"no model {model_id!r} in {models_dir(directory)} (known: {known})")
    saved = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
    model = DeepLOB(**saved.get("kwargs", {}))
    model.load_state_dict(saved["state_dict"])
    model.eval()
    scaler = Scaler.from_dict(json.loads((path / "scaler.json").read_text()))
    return model, scaler, json.loads((path / "config.json").read_text())


__all__ = ["models_dir", "save_model", "load_model", "list_models", "model_card", "new_model_id"]
