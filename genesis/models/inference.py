"""Fast DeepLOB inference on CPU: a rolling live predictor and batch prediction over history.

Both paths rest on one fact about :class:`~genesis.models.deeplob.DeepLOB` in eval mode:
its three conv blocks have no padding along time and BatchNorm is then a fixed per-channel
affine map, so the conv output at time step j depends only on input rows j .. j+18 and not
on where the window starts. Overlapping windows therefore share all their conv work (about
3/4 of the network's multiply-adds):

* :func:`predict_windows` runs the conv blocks once over a chunk of the series. The
  inception module pads 'same' at a window's edges, so it is shift invariant only in a
  window's interior: it (and the LSTM's input projection after it) also runs once per
  chunk step, and per window only at the two first and two last steps. The LSTM
  recurrence runs per window, all windows of a batch at once. About 30x eager batched
  windows on 2 threads (``benchmarks/bench_deeplob.py``).
* :class:`RollingPredictor` computes the conv features of the newest row only (from the
  last 19 rows) on each push and keeps the last 82 of them in a ring buffer; a prediction
  then costs the inception module and the LSTM over one window. With ``fast=True`` the
  conv step (its BatchNorms folded into the convs) and the head run as frozen TorchScript
  graphs, which at batch 1, where the cost is per operation, saves about a third.

Results equal eager per-window PyTorch up to float rounding (the tests hold them to
1e-5 in probability). Nothing here trains: every function puts the model in eval mode for
its work and restores the mode it had.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from genesis.models.deeplob import CONV_CHANNELS, CONV_RECEPTIVE_FIELD, WINDOW, DeepLOB


class RowScaler(Protocol):
    """Anything with ``transform(rows (n, F)) -> (n, F)``: a fitted normaliser."""

    def transform(self, rows: np.ndarray) -> np.ndarray: ...


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the block (BatchNorm on running statistics), the old mode restored."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _check_window(model: DeepLOB, window: int) -> int:
    """The conv-feature length of a window; the window must cover the receptive field.

    Also checks that the model is on the CPU, where these paths are built to run.
    """
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ValueError(f"CPU inference needs a model on the CPU, got one on {device}; "
                         "pass model.cpu() (or a copy of it)")
    if window < CONV_RECEPTIVE_FIELD:
        raise ValueError(f"window must be >= {CONV_RECEPTIVE_FIELD} rows, got {window}")
    return window - CONV_RECEPTIVE_FIELD + 1


def _as_series(X: np.ndarray | torch.Tensor, n_features: int) -> torch.Tensor:
    """A (T, F) float32 CPU tensor from an array or tensor, shape checked."""
    t = torch.as_tensor(X, dtype=torch.float32, device="cpu")
    if t.dim() != 2 or t.shape[1] != n_features:
        raise ValueError(f"X must be (T, {n_features}) snapshots, got {tuple(t.shape)}")
    return t.contiguous()


#: Inception output steps at each end of a window that see its 'same' padding (5x1 conv).
_EDGE = 2
#: Conv-feature steps an edge needs: the edge steps plus the 5x1 kernel's reach inward.
_EDGE_SLICE = 2 * _EDGE + 1
#: predict_windows methods, fastest first.
METHODS = ("shared", "conv", "eager")


def _gate_order(n_hidden: int) -> torch.Tensor:
    """Row order putting PyTorch's LSTM gates (i, f, g, o) as (i, f, o, g): sigmoids first."""
    h = n_hidden
    return torch.cat([torch.arange(0, 2 * h), torch.arange(3 * h, 4 * h),
                      torch.arange(2 * h, 3 * h)])


def _shared_head(model: DeepLOB, feats: torch.Tensor, count: int) -> torch.Tensor:
    """Logits of ``count`` consecutive windows from their chunk's conv features, sharing work.

    Args:
        feats: (32, count + S - 1) conv features of the chunk, S steps per window.

    Window b sees feature steps b .. b+S-1. The inception module is shift invariant except
    where its 'same' padding reaches: the first and last :data:`_EDGE` steps of a window.
    So the inception output and the LSTM's input projection (W_ih y + b) are computed once
    per chunk step and are exact for every window's interior steps; each window's edge steps
    come from the inception module run on its first and last :data:`_EDGE_SLICE` feature
    steps (which pad exactly as the full window does). The recurrence then runs over all
    windows at once: at step t the windows' projected inputs are the contiguous rows
    t .. t+count-1 of the chunk's projection, no gather.
    """
    n_steps = feats.shape[1] - count + 1
    lstm = model.lstm
    order = _gate_order(lstm.hidden_size)
    w_ih = lstm.weight_ih_l0[order].T                                # (192, 4H)
    w_hh = lstm.weight_hh_l0[order].T.contiguous()                   # (H, 4H)
    bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0)[order]

    y_chunk = model.inception(feats[None, :, :, None])[0, :, :, 0]   # (192, L)
    g_chunk = torch.addmm(bias, y_chunk.T, w_ih)                     # (L, 4H), row = step

    slices = feats.unfold(1, _EDGE_SLICE, 1)                         # (32, L-4, 5) view
    heads = slices[:, :count]                                        # window b: steps b..b+4
    tails = slices[:, n_steps - _EDGE_SLICE:n_steps - _EDGE_SLICE + count]
    edges = torch.cat([heads, tails], dim=1).permute(1, 0, 2).unsqueeze(3)
    y_edges = model.inception(edges.contiguous())[:, :, :, 0]        # (2 count, 192, 5)
    # Edge steps as rows of one 2-D matmul (a batched matmul over windows is ~10x slower):
    # rows [0, count) are window steps 0 and 1, rows [count, 2 count) steps S-2 and S-1.
    y_edge_rows = torch.cat([y_edges[:count, :, :_EDGE],
                             y_edges[count:, :, _EDGE_SLICE - _EDGE:]], dim=2)
    g_edges = torch.addmm(bias, y_edge_rows.transpose(1, 2).reshape(-1, y_chunk.shape[0]),
                          w_ih).view(count, 2 * _EDGE, -1)            # (count, 4, 4H)

    hidden = lstm.hidden_size
    h = torch.zeros(count, hidden)
    c = torch.zeros(count, hidden)
    for t in range(n_steps):
        if t < _EDGE:
            g_in = g_edges[:, t]
        elif t >= n_steps - _EDGE:
            g_in = g_edges[:, t - (n_steps - 2 * _EDGE)]
        else:
            g_in = g_chunk[t:t + count]
        gates = torch.addmm(g_in, h, w_hh)
        sig = torch.sigmoid(gates[:, :3 * hidden])
        cand = torch.tanh(gates[:, 3 * hidden:])
        c = torch.addcmul(sig[:, hidden:2 * hidden] * c, sig[:, :hidden], cand)
        h = sig[:, 2 * hidden:] * torch.tanh(c)
    return model.fc1(h)


@torch.inference_mode()
def predict_windows(model: DeepLOB, X: np.ndarray | torch.Tensor, *, window: int = WINDOW,
                    batch_size: int = 2048, method: str = "shared") -> np.ndarray:
    """Class probabilities of every window of a long series, windows ending at rows >= window-1.

    Args:
        model: a DeepLOB (its weights are used as they are; eval mode for the call).
        X: (T, F) normalised snapshots, time ascending, float32 (other dtypes converted).
        window: rows per window (100 in the paper).
        batch_size: windows per batch (one chunk of window + batch_size - 1 rows). Memory
            grows linearly with it: at 2048, tens of MB for ``"shared"``, a few hundred MB
            for ``"conv"``, over a GB for ``"eager"``.
        method: how much work overlapping windows share:

            * ``"shared"`` (default, fastest): the conv blocks once per chunk; the inception
              module and the LSTM's input projection once per chunk step too, recomputed
              per window only at the window's two first and two last steps (where 'same'
              padding makes them differ); the LSTM recurrence per window, batched.
            * ``"conv"``: the conv blocks once per chunk, each window's feature slice then
              through the eager inception module and LSTM.
            * ``"eager"``: every window through the whole eager model (the reference).

    Returns:
        (T - window + 1, n_classes) float32 probabilities; row i belongs to the window of
        rows i .. i + window - 1, i.e. to the prediction made at row ``i + window - 1``.
        Empty (0, n_classes) when T < window. NaN rows in X give NaN probabilities for
        every window that contains them (and, with ``"shared"``, for no other window).
    """
    n_steps = _check_window(model, window)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "shared" and n_steps < 2 * _EDGE_SLICE:
        method = "conv"                      # windows too short to have an interior
    series = _as_series(X, model.n_features)
    n_windows = series.shape[0] - window + 1
    if n_windows <= 0:
        return np.zeros((0, model.n_classes), dtype=np.float32)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = np.empty((n_windows, model.n_classes), dtype=np.float32)
    with _eval_mode(model):
        for first in range(0, n_windows, batch_size):
            count = min(batch_size, n_windows - first)
            # Rows first .. first+count+window-2 hold every window of this batch.
            rows = series[first:first + count + window - 1]
            if method == "eager":
                windows = rows.unfold(0, window, 1).transpose(1, 2)        # (count, 100, F)
                logits = model(windows.unsqueeze(1).contiguous())
            else:
                feats = model.conv_features(rows[None, None])[0, :, :, 0]   # (32, count+81)
                if method == "shared":
                    logits = _shared_head(model, feats, count)
                else:
                    # windows[b] = feats[:, b:b+82]; unfold gives a view, the head copies.
                    windows = feats.unfold(1, n_steps, 1).permute(1, 0, 2)  # (count, 32, 82)
                    logits = model.head(windows.unsqueeze(3).contiguous())
            out[first:first + count] = torch.softmax(logits, dim=-1).numpy()
    return out


def fold_conv_batchnorm(model: DeepLOB) -> nn.Sequential:
    """The eval-mode conv blocks with every BatchNorm but the last folded into the next conv.

    In eval mode BatchNorm is y -> a y + b per channel. The next conv in the blocks has no
    padding, so conv(a y + b) is a conv with weights scaled by a along its input channels
    and a bias raised by the weights' sums times b: the same function (up to float
    rounding) with 8 of the 9 BatchNorm passes gone, which matters at batch 1 where the
    cost is per operation. The last BatchNorm stays (the inception module pads after it).
    Returns a new module ``(N, 1, T, F) -> (N, 32, T - 18, 1)``; ``model`` is not changed.
    """
    layers = [copy.deepcopy(layer) for block in (model.conv1, model.conv2, model.conv3)
              for layer in block]
    fused: list[nn.Module] = []
    pending: nn.BatchNorm2d | None = None
    with torch.no_grad():
        for layer in layers:
            if isinstance(layer, nn.BatchNorm2d):
                pending = layer
                continue
            if isinstance(layer, nn.Conv2d) and pending is not None:
                scale = pending.weight / torch.sqrt(pending.running_var + pending.eps)
                shift = pending.bias - pending.running_mean * scale
                layer.bias.add_((layer.weight * shift[None, :, None, None]).sum(dim=(1, 2, 3)))
                layer.weight.mul_(scale[None, :, None, None])
                pending = None
            elif pending is not None:        # an activation after a BatchNorm: keep both
                fused.append(pending)
                pending = None
            fused.append(layer)
    if pending is not None:
        fused.append(pending)
    return nn.Sequential(*fused).eval()


class _Full(nn.Module):
    """Eval-mode DeepLOB with folded conv BatchNorms + softmax, for tracing."""

    def __init__(self, model: DeepLOB) -> None:
        super().__init__()
        self.conv = fold_conv_batchnorm(model)
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # conv + head, not model.forward: forward's shape checks do not trace.
        return torch.softmax(self.model.head(self.conv(x)), dim=-1)


class _Head(nn.Module):
    """Inception + LSTM + softmax of a DeepLOB, for tracing: (1, 32, S, 1) -> (1, C)."""

    def __init__(self, model: DeepLOB) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model.head(z), dim=-1)


def _freeze(module: nn.Module, example: torch.Tensor) -> Any:
    """TorchScript-trace an eval-mode module and freeze it (weights become constants).

    Freezing alone is what pays at batch 1 (measured: conv blocks 0.41 -> 0.26 ms, head
    0.76 -> 0.55 ms with 2 threads); ``optimize_for_inference``'s MKLDNN layouts and
    ``torch.compile`` were both slower for these tiny shapes. TorchScript is deprecated
    from torch 2.10 on (its warnings are silenced here); where it fails, the eager module
    is returned, which gives the same numbers, only slower.
    """
    module = module.eval()
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            return torch.jit.freeze(torch.jit.trace(module, example, check_trace=False))
    except (RuntimeError, AttributeError) as exc:  # TorchScript gone or unable to trace
        warnings.warn(f"TorchScript freezing failed ({exc}); using the eager module",
                      RuntimeWarning, stacklevel=2)
        return module


def freeze_for_inference(model: DeepLOB, window: int = WINDOW) -> Any:
    """A frozen TorchScript copy of the eval model for one window: (1, 1, window, F) -> probs.

    Conv BatchNorms folded (:func:`fold_conv_batchnorm`), then traced and frozen. The
    single-window path when there is no rolling state (a one-off prediction);
    :class:`RollingPredictor` is faster because it reuses conv work between pushes. The
    returned module does not change when ``model`` is later trained.
    """
    _check_window(model, window)
    return _freeze(_Full(copy.deepcopy(model).eval()),
                   torch.zeros(1, 1, window, model.n_features))


class RollingPredictor:
    """Live DeepLOB prediction: push one snapshot at a time, get probabilities per push.

    Keeps two ring buffers, both allocated once:

    * the last 19 normalised rows (the conv blocks' receptive field), from which each push
      computes the conv features of the newest time step only, and
    * the last ``window - 18`` conv feature vectors (82 for window 100), the input of the
      inception module and LSTM.

    Each ring is stored twice over (length 2n, every value written at i and i + n), so the
    newest n entries are always one contiguous slice: no copy and no reallocation to
    assemble a window.

    Args:
        model: a DeepLOB. A deep copy is taken in eval mode (later training of ``model`` does
            not change the predictor); rebuild the predictor to pick up new weights.
        scaler: None if pushed rows are already normalised; else an object whose
            ``transform(rows (n, F)) -> (n, F)`` normalises raw rows (fitted on training
            data only).
        window: rows per window (100 in the paper).
        fast: True (default) runs the conv step with its BatchNorms folded into the convs
            (:func:`fold_conv_batchnorm`) and both conv step and head as frozen TorchScript
            graphs; False runs the eager modules (same numbers up to float rounding).
        num_threads: if given, ``torch.set_num_threads(num_threads)`` (process-wide!);
            2 is a good value for single-window latency.

    Usage::

        rp = RollingPredictor(model, scaler)
        for row in snapshots:          # (40,) each, raw if a scaler is given
            p = rp.push(row)           # None until `window` rows were pushed, else (C,)
    """

    def __init__(self, model: DeepLOB, scaler: RowScaler | None = None, window: int = WINDOW,
                 *, fast: bool = True, num_threads: int | None = None) -> None:
        self.n_steps = _check_window(model, window)
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self.window = window
        self.scaler = scaler
        self.n_features = model.n_features
        self.n_classes = model.n_classes
        self._model = copy.deepcopy(model).eval()
        rf, steps = CONV_RECEPTIVE_FIELD, self.n_steps
        self._rows = torch.zeros(2 * rf, self.n_features)           # row ring, stored twice
        self._feats = torch.zeros(1, CONV_CHANNELS, 2 * steps, 1)   # feature ring, twice
        self._rows_np = self._rows.numpy()                          # same memory
        self._n_pushed = 0
        if fast:
            conv, head = fold_conv_batchnorm(self._model), _Head(self._model)
            self._conv = _freeze(conv, torch.zeros(1, 1, rf, self.n_features))
            self._head = _freeze(head, torch.zeros(1, CONV_CHANNELS, steps, 1))
        else:
            self._conv, self._head = self._model.conv_features, _Head(self._model)

    @property
    def n_pushed(self) -> int:
        """Snapshots pushed since construction or the last :meth:`reset`."""
        return self._n_pushed

    @property
    def ready(self) -> bool:
        """True once ``window`` snapshots are buffered (push then returns probabilities)."""
        return self._n_pushed >= self.window

    def reset(self) -> None:
        """Forget the buffered snapshots (e.g. after a gap in the feed)."""
        self._n_pushed = 0

    def push(self, row: np.ndarray) -> np.ndarray | None:
        """Add one snapshot (F,) (raw if a scaler was given); probabilities (C,) or None.

        Returns None until ``window`` snapshots have been pushed, then the class
        probabilities of the window ending with this snapshot.
        """
        row = np.asarray(row, dtype=np.float64)
        if row.shape != (self.n_features,):
            raise ValueError(f"push expects one snapshot of shape ({self.n_features},), "
                             f"got {row.shape}")
        if self.scaler is not None:
            row = np.asarray(self.scaler.transform(row[None, :]), dtype=np.float64)[0]
        rf, steps = CONV_RECEPTIVE_FIELD, self.n_steps
        i = self._n_pushed % rf
        self._rows_np[i] = row
        self._rows_np[i + rf] = row
        self._n_pushed += 1
        if self._n_pushed < rf:
            return None
        with torch.inference_mode():
            # Newest rf rows in time order: slots i+1 .. i+rf of the doubled ring.
            recent = self._rows[i + 1:i + 1 + rf]
            feat = self._conv(recent[None, None])                   # (1, 32, 1, 1)
            j = (self._n_pushed - rf) % steps
            self._feats[:, :, j] = feat[:, :, 0]
            self._feats[:, :, j + steps] = feat[:, :, 0]
            if self._n_pushed < self.window:
                return None
            probs = self._head(self._feats[:, :, j + 1:j + 1 + steps])
        return probs[0].numpy().copy()
