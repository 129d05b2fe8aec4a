"""Training DeepLOB with Lightning, and the two baselines it must beat on the same split.

:class:`DeepLOBModule` is the LightningModule (the network, a class-weighted cross-entropy,
Adam); the :class:`lightning.Trainer` owns the loop: ``accelerator="auto"`` (CPU or GPU),
early stopping and checkpoints on validation macro-F1, a progress bar, seeds and an optional
deterministic mode. :func:`train_deeplob` trains on a datamodule's train split, picks the
best checkpoint on validation, and reports DeepLOB and the baselines on the test split:

* majority: always the class most frequent in the training labels;
* logistic regression: multinomial, on engineered features of each window's last row
  (:func:`window_features`: book imbalance at 1/3/5/10 levels, spread, returns and signed
  flow proxies over the window), fitted on the training windows only.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch import nn

from genesis.models.deeplob import DeepLOB
from genesis.models.metrics import classification_report

CLASSES = (-1, 0, 1)  # down, stationary, up: genesis.features.labels' convention; class index = label + 1


class DeepLOBModule(L.LightningModule):
    """DeepLOB + class-weighted cross-entropy + Adam(W); logs losses and validation macro-F1."""

    def __init__(self, class_weights: torch.Tensor | None = None, lr: float = 1e-3, weight_decay: float = 0.0,
                 **model_kwargs):
        super().__init__()
        self.save_hyperparameters(ignore=["class_weights"])
        self.model = DeepLOB(**model_kwargs)
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.ones(3))
        self.loss = nn.CrossEntropyLoss(weight=self.class_weights)
        self._val_true: list[torch.Tensor] = []
        self._val_pred: list[torch.Tensor] = []

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.loss(logits, y), prog_bar=True, on_step=False, on_epoch=True)
        self._val_true.append(y.detach().cpu())
        self._val_pred.append(logits.argmax(dim=1).detach().cpu())

    def on_validation_epoch_end(self):
        if not self._val_true:
            return
        y = torch.cat(self._val_true).numpy()
        p = torch.cat(self._val_pred).numpy()
        self._val_true.clear()
        self._val_pred.clear()
        self.log("val_macro_f1", float(classification_report(y, p, n_classes=3)["macro_f1"]), prog_bar=True)

    def configure_optimizers(self):
        # AdamW: decoupled weight decay (0 = plain Adam, the reference's optimiser).
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr,
                                 weight_decay=self.hparams.get("weight_decay", 0.0))


@dataclass
class TrainResult:
    module: Any
    best_checkpoint: str | None
    epochs: int
    seconds: float
    samples_per_s: float
    reports: dict[str, dict[str, dict]] = field(default_factory=dict)  # split -> model -> report

    def table(self, split: str = "test"):
        import pandas as pd

        rows = []
        for name, report in self.reports.get(split, {}).items():
            rows.append({"model": name, **{k: report[k] for k in ("accuracy", "macro_f1", "weighted_f1", "mcc",
                                                                    "kappa")}})
        return pd.DataFrame(rows).set_index("model")


def predict_loader(module, loader) -> tuple[np.ndarray, np.ndarray]:
    """(true class indices, predicted probabilities (n, 3)) over a loader, in eval mode."""
    module.eval()
    true, probs = [], []
    with torch.inference_mode():
        for x, y in loader:
            probs.append(torch.softmax(module(x.to(module.device)), dim=1).cpu())
            true.append(y)
    if not true:
        return np.empty(0, np.int64), np.empty((0, 3), np.float32)
    return torch.cat(true).numpy(), torch.cat(probs).numpy()


# -- baselines ------------------------------------------------------------------------------
def window_features(windows: np.ndarray) -> np.ndarray:
    """Engineered features of (n, W, 40) windows of RAW rows in DeepLOB layout (per level:
    ask px, ask size, bid px, bid size; W >= 100), from the last row and the window:
    order-book imbalance over 1/3/5/10 levels, spread, mid returns over 10/50/W-1 rows, and
    the change of best-level sizes over the window. (n, 10) float32."""
    windows = np.asarray(windows)
    return _features(windows[:, -1], windows[:, -11], windows[:, -51], windows[:, 0])


def end_row_features(rows: np.ndarray, ends: np.ndarray, window: int = 100) -> np.ndarray:
    """:func:`window_features` of the windows ending at ``ends``, read from the (N, 40) rows
    of a series directly (no windows built): the same numbers, a fraction of the memory."""
    ends = np.asarray(ends, dtype=np.int64)
    return _features(rows[ends], rows[ends - 10], rows[ends - 50], rows[ends - window + 1])


def _features(last, lag10, lag50, first) -> np.ndarray:
    """The 10 baseline features from four (n, 40) rows of each window."""
    out = []
    for k in (1, 3, 5, 10):
        b = last[:, 3:4 * k:4].sum(axis=1)
        a = last[:, 1:4 * k:4].sum(axis=1)
        out.append((b - a) / (np.abs(b) + np.abs(a) + 1e-9))
    out.append(last[:, 0] - last[:, 2])
    mid = lambda row: (row[:, 0] + row[:, 2]) / 2  # noqa: E731
    for earlier in (lag10, lag50, first):
        out.append(mid(last) - mid(earlier))
    out.append(last[:, 3] - first[:, 3])
    out.append(last[:, 1] - first[:, 1])
    return np.stack(out, axis=1).astype(np.float32)


class LogisticBaseline:
    """Multinomial logistic regression (L2-regularised, full-batch L-BFGS in torch)."""

    def __init__(self, l2: float = 1e-3, max_iter: int = 200, class_weights: torch.Tensor | None = None):
        self.l2, self.max_iter, self.class_weights = l2, max_iter, class_weights

    def fit(self, x: np.ndarray, y: np.ndarray) -> LogisticBaseline:
        self.mean = x.mean(axis=0)
        self.std = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        xt = torch.as_tensor(np.nan_to_num((x - self.mean) / self.std), dtype=torch.float32)
        yt = torch.as_tensor(y, dtype=torch.long)
        self.linear = nn.Linear(x.shape[1], 3)
        loss_fn = nn.CrossEntropyLoss(weight=self.class_weights)
        optimizer = torch.optim.LBFGS(self.linear.parameters(), max_iter=self.max_iter, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = loss_fn(self.linear(xt), yt) + self.l2 * self.linear.weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        xt = torch.as_tensor(np.nan_to_num((x - self.mean) / self.std), dtype=torch.float32)
        with torch.no_grad():
            return torch.softmax(self.linear(xt), dim=1).numpy()


def baseline_reports(datamodule, splits=("val", "test")) -> dict[str, dict[str, dict]]:
    """Majority-class and logistic-regression reports on the datamodule's splits; the
    logistic features come from the raw book rows (whatever the network's normalisation)."""
    def features(split):
        dataset = datamodule.datasets[split]
        return end_row_features(datamodule.raw_rows, dataset.ends, datamodule.window), dataset.classes

    datamodule.setup()
    x_train, y_train = features("train")
    majority = int(np.bincount(y_train, minlength=3).argmax())
    logistic = LogisticBaseline(class_weights=datamodule.class_weights).fit(x_train, y_train)
    out: dict[str, dict[str, dict]] = {}
    for split in splits:
        x, y = features(split)
        out[split] = {
            "majority": classification_report(y, np.full(len(y), majority), n_classes=3),
            "logistic": classification_report(y, logistic.predict_proba(x).argmax(axis=1), n_classes=3),
        }
    return out


# -- training -----------------------------------------------------------------------------
def train_deeplob(datamodule, *, max_epochs: int = 20, patience: int = 3, lr: float = 1e-3,
                  weight_decay: float = 0.0, seed: int = 0, deterministic: bool = False, accelerator: str = "auto",
                  out_dir: str | Path | None = None, progress: bool = True,
                  limit_train_batches: int | float | None = None) -> TrainResult:
    """Train on the datamodule's train split; early stopping and the kept checkpoint follow
    validation macro-F1; reports on val and test for DeepLOB and both baselines.

    ``out_dir`` keeps the checkpoints; None writes them to a temporary directory that is
    removed once the best one is loaded (``best_checkpoint`` then names a deleted file)."""
    if out_dir is None:  # never into the working directory, and nothing left behind in /tmp
        import tempfile

        with tempfile.TemporaryDirectory(prefix="genesis-deeplob-") as scratch:
            return train_deeplob(datamodule, max_epochs=max_epochs, patience=patience, lr=lr,
                                 weight_decay=weight_decay, seed=seed, deterministic=deterministic,
                                 accelerator=accelerator, out_dir=scratch, progress=progress,
                                 limit_train_batches=limit_train_batches)
    L.seed_everything(seed, workers=True)
    datamodule.setup("fit")
    module = DeepLOBModule(class_weights=datamodule.class_weights, lr=lr, weight_decay=weight_decay)
    checkpoint = ModelCheckpoint(dirpath=str(out_dir), monitor="val_macro_f1", mode="max",
                                 save_top_k=1, filename="best-{epoch}-{val_macro_f1:.3f}")
    trainer = L.Trainer(max_epochs=max_epochs, accelerator=accelerator, devices=1, deterministic=deterministic,
                        callbacks=[EarlyStopping(monitor="val_macro_f1", mode="max", patience=patience), checkpoint],
                        enable_progress_bar=progress, logger=False, enable_model_summary=False,
                        default_root_dir=str(out_dir), limit_train_batches=limit_train_batches)
    began = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - began
    best = checkpoint.best_model_path or None
    if best:
        module = type(module).load_from_checkpoint(best, class_weights=datamodule.class_weights)
    n_seen = trainer.current_epoch * len(datamodule.train_dataloader()) * datamodule.batch_size
    reports = baseline_reports(datamodule)
    for split in ("val", "test"):
        y, probs = predict_loader(module, getattr(datamodule, f"{split}_dataloader")())
        reports[split]["deeplob"] = classification_report(y, probs.argmax(axis=1), n_classes=3)
    return TrainResult(module, best, trainer.current_epoch, seconds,
                       n_seen / seconds if seconds > 0 else math.nan, reports)


__all__ = ["DeepLOBModule", "train_deeplob", "TrainResult", "LogisticBaseline", "window_features", "end_row_features",
           "baseline_reports",
           "predict_loader", "CLASSES"]


def train_and_register(datamodule, *, directory=None, model_id: str | None = None, data_note: dict | None = None,
                       **train_options) -> tuple[Path, TrainResult]:
    """Train (:func:`train_deeplob`) and write the model's registry directory with its card."""
    from genesis.models.registry import save_model

    result = train_deeplob(datamodule, **train_options)
    options = datamodule.config()
    splits = datamodule.split_info()
    config = {
        "data": {"symbols": options["symbols"], "label": f"{options['label']} (horizon {options['horizon']} rows, "
                 f"alpha {options['alpha']})", "levels": options["levels"], "window": options["window"],
                 "class balance (train)": _balance_text(datamodule.class_balance.get("train")),
                 **(data_note or {})},
        "splits": {f"{r.split} {r.symbol}": f"{r.windows} windows, {r.start} .. {r.end}" for r in splits.itertuples()}
                  | {"purge rows": options["purge"], "fold": f"{options['fold']} of {options['n_folds']}"},
        "training": {"epochs run": result.epochs, "best checkpoint": Path(result.best_checkpoint).name
                     if result.best_checkpoint else "last", "seconds": round(result.seconds, 1),
                     "samples per second": round(result.samples_per_s), "seed": options["seed"],
                     **{k: v for k, v in train_options.items() if k in ("max_epochs", "patience", "lr", "weight_decay", "deterministic")}},
        "datamodule": options,
    }
    path = save_model(result.module.model, datamodule.scaler, config, result.reports, model_id=model_id,
                      directory=directory)
    return path, result


def _balance_text(balance) -> str:
    """'down 31% (1,204), flat 40% (...), up 29% (...)' from a class_balance DataFrame."""
    if balance is None or not len(balance):
        return ""
    return ", ".join(f"{r.name} {r.share:.0%} ({r.count:,})" for r in balance.itertuples())
