"""Classification metrics for LOB direction models, in NumPy (no scikit-learn).

Conventions (the same as scikit-learn's with ``zero_division=0``):

* a class never predicted has precision 0; a class absent from ``y_true`` has recall 0;
  F1 is 0 when precision + recall is 0;
* macro averages weigh every class in ``range(n_classes)`` equally, absent ones included
  (they contribute zeros); weighted averages weigh classes by their support in ``y_true``;
* MCC is Gorodkin's multiclass R_K, 0 when it is undefined (all labels or all predictions
  in one class); Cohen's kappa is 0 when chance agreement is 1 (and the observed one too),
  i.e. both vectors are all one class.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """(n_classes, n_classes) int64 counts; row = true class, column = predicted class.

    Labels must be integers in 0 .. n_classes-1 (map FI-2010's 1/2/3 or -1/0/1 first).
    """
    y_true = _labels(y_true, n_classes, "y_true")
    y_pred = _labels(y_pred, n_classes, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.shape[0]} vs "
                         f"{y_pred.shape[0]}")
    flat = y_true * n_classes + y_pred
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _labels(y: np.ndarray, n_classes: int, name: str) -> np.ndarray:
    """1-D int64 labels, checked to lie in 0 .. n_classes-1."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{name} must hold integer class labels")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        bad = arr[(arr < 0) | (arr >= n_classes)][0]
        raise ValueError(f"{name} holds label {bad} outside 0..{n_classes - 1}")
    return arr


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, 0 where den == 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def matthews_corrcoef(cm: np.ndarray) -> float:
    """Gorodkin's multiclass MCC (R_K) of a confusion matrix; 0 where undefined.

    R_K = (c s - sum_k p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)) with c the correct
    count, s the total, t_k the true and p_k the predicted count of class k.
    """
    cm = np.asarray(cm, dtype=np.float64)
    s, c = cm.sum(), np.trace(cm)
    t, p = cm.sum(axis=1), cm.sum(axis=0)
    den = np.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float((c * s - t @ p) / den) if den > 0 else 0.0


def cohen_kappa(cm: np.ndarray) -> float:
    """Cohen's kappa (p_o - p_e) / (1 - p_e) of a confusion matrix; 0 when p_e == 1."""
    cm = np.asarray(cm, dtype=np.float64)
    s = cm.sum()
    if s == 0:
        return 0.0
    p_o = np.trace(cm) / s
    p_e = float(cm.sum(axis=1) @ cm.sum(axis=0)) / (s * s)
    return float((p_o - p_e) / (1.0 - p_e)) if p_e < 1.0 else 0.0


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 3) -> dict:
    """Every metric of a classifier's predictions, as plain Python numbers (JSON-ready).

    Args:
        y_true, y_pred: (n,) integer labels in 0 .. n_classes-1.
        n_classes: number of classes (3: down, stationary, up).

    Returns a dict with keys ``n`` (samples), ``accuracy``, ``precision``, ``recall``,
    ``f1`` and ``support`` (per-class lists of length n_classes), ``macro_precision``,
    ``macro_recall``, ``macro_f1``, ``weighted_precision``, ``weighted_recall``,
    ``weighted_f1``, ``mcc``, ``kappa`` and ``confusion_matrix`` (list of lists, rows true,
    columns predicted). See the module docstring for the zero-division conventions.
    An empty input gives zeros everywhere.
    """
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    n = int(cm.sum())
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    weights = _safe_div(support, n)

    return {
        "n": n,
        "accuracy": float(_safe_div(tp.sum(), n)),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": support.tolist(),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "weighted_precision": float(weights @ precision),
        "weighted_recall": float(weights @ recall),
        "weighted_f1": float(weights @ f1),
        "mcc": matthews_corrcoef(cm),
        "kappa": cohen_kappa(cm),
        "confusion_matrix": cm.tolist(),
    }
