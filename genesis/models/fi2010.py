"""FI-2010 benchmark files (Ntakaris et al. 2018), for users who have that dataset.

A file (e.g. ``Train_Dst_NoAuction_ZScore_CF_7.txt``) is whitespace-separated text of 149
rows and N columns: one column per sample (event block), one row per variable:

- rows 0-39: the 10-level LOB, per level ask price, ask size, bid price, bid size (the
  order of :func:`genesis.models.data.lob_features`);
- rows 40-143: the paper's 104 hand-crafted features (not used by DeepLOB);
- rows 144-148: labels for the horizons k = 1, 2, 3, 5, 10 (in the dataset's sampling, every
  10 events), classes 1, 2, 3.

Label convention. The dataset's 1/2/3 are often quoted as "up/stationary/down", but the
people who trained on these files read them the other way: the DeepLOB author (Zhang, in the
reference repository's issue #20) labels "0 (lower), 1 (stationary), 2 (higher)" and feeds
``file_label - 1``; LOBCAST's FI-2010 loader (Prata et al.) documents its
``file_label - 1`` targets as 0 downward, 1 stationary, 2 upward. We follow them by default:
1 -> -1 (down), 2 -> 0 (stationary), 3 -> 1 (up), Genesis' convention
(:mod:`genesis.features.labels`). ``convention="1=up"`` reads the other way, and
:func:`label_agreement` checks a file empirically (the share of labels whose sign agrees with
the mid-price's later move computed from the file's own LOB rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

N_ROWS = 149
LOB_ROWS = slice(0, 40)
FEATURE_ROWS = slice(40, 144)
LABEL_ROWS = slice(144, 149)
HORIZONS = (1, 2, 3, 5, 10)
_MAPS = {
    "1=down": {1: -1, 2: 0, 3: 1},
    "1=up": {1: 1, 2: 0, 3: -1},
}


@dataclass
class FI2010:
    """One FI-2010 file: ``lob`` (N, 40) float64 rows, ``features`` (N, 104) hand-crafted
    features, ``labels`` (N, 5) int8 Genesis labels (-1, 0, 1) for :data:`HORIZONS`."""

    path: Path
    lob: np.ndarray
    features: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.lob)

    def label(self, horizon: int) -> np.ndarray:
        """(N,) labels for horizon k in 1, 2, 3, 5, 10."""
        if horizon not in HORIZONS:
            raise ValueError(f"horizon={horizon!r}: FI-2010 has labels for k in {HORIZONS}")
        return self.labels[:, HORIZONS.index(horizon)]


def load_fi2010(path, convention: Literal["1=down", "1=up"] = "1=down") -> FI2010:
    """Read an FI-2010-format text file (149 rows x N columns; see the module docstring).

    Returns :class:`FI2010` with the samples as rows (the file's columns). Raises ValueError
    naming the file and the problem when it is not 149 rows of numbers of equal length, holds
    non-finite values in the LOB or label rows, or a label other than 1, 2, 3.
    """
    path = Path(path)
    if convention not in _MAPS:
        raise ValueError(f"convention={convention!r}: expected one of {sorted(_MAPS)}")
    table = _read_table(path)
    if table.shape[0] != N_ROWS:
        raise ValueError(f"{path}: {table.shape[0]} rows, an FI-2010 file has {N_ROWS} "
                         f"(40 LOB + 104 features + 5 label rows, one column per sample)")
    lob = np.ascontiguousarray(table[LOB_ROWS].T)
    bad = np.argwhere(~np.isfinite(lob))
    if len(bad):
        sample, row = bad[0]
        raise ValueError(f"{path}: row {row} (LOB), column {sample} is {float(lob[sample, row])!r}; "
                         "expected a number (rows and columns counted from 0)")
    raw = table[LABEL_ROWS].T
    valid = np.isin(raw, (1.0, 2.0, 3.0))
    if not valid.all():
        sample, k = np.argwhere(~valid)[0]
        raise ValueError(f"{path}: row {144 + k} (label, horizon {HORIZONS[k]}), column {sample} is "
                         f"{float(raw[sample, k])!r}; expected 1, 2 or 3 (rows and columns counted from 0)")
    mapping = _MAPS[convention]
    lookup = np.array([0, mapping[1], mapping[2], mapping[3]], dtype=np.int8)
    labels = lookup[raw.astype(np.int64)]
    return FI2010(path, lob, np.ascontiguousarray(table[FEATURE_ROWS].T), labels)


def _read_table(path: Path) -> np.ndarray:
    """The file's numbers as a (rows, columns) float64 array, with errors that name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such FI-2010 file")
    rows = []
    width = None
    with path.open("r") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue  # blank lines (e.g. a trailing newline) carry nothing
            if width is None:
                width = len(fields)
            elif len(fields) != width:
                raise ValueError(f"{path}: line {number} has {len(fields)} values, the first line has {width} "
                                 "(every row of an FI-2010 file has one value per sample)")
            try:
                rows.append(np.array(fields, dtype=np.float64))
            except ValueError:
                bad = next(f for f in fields if not _is_number(f))
                raise ValueError(f"{path}: line {number} holds {bad!r}, not a number") from None
    if not rows:
        raise ValueError(f"{path}: empty file, expected {N_ROWS} rows of numbers")
    return np.vstack(rows)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def label_agreement(data: FI2010, horizon: int = 10) -> dict[str, float]:
    """How well the labels match the mid-price moves of the file's own LOB rows.

    The mid is ``(ask_px_1 + bid_px_1) / 2`` from the LOB rows (normalised files keep the
    order of prices only roughly: ask and bid columns are scaled separately, so read this as
    a sign check). For the up/down labels at horizon k it returns the share whose sign
    agrees with the sign of ``mean(mid[t+1..t+k]) - mid[t]`` (rows with no move excluded),
    under the loaded convention (``'agree'``) and with up and down swapped (``'swapped'``).
    A value well above 0.5 for ``'agree'`` confirms the convention.
    """
    labels = data.label(horizon).astype(np.int64)
    mid = (data.lob[:, 0] + data.lob[:, 2]) / 2.0
    n = len(mid)
    if n <= horizon:
        raise ValueError(f"{data.path}: {n} samples, too few for horizon {horizon}")
    sums = np.concatenate([[0.0], np.cumsum(mid)])
    t = np.arange(n - horizon)
    future = (sums[t + horizon + 1] - sums[t + 1]) / horizon
    move = np.sign(future - mid[t])
    lab = labels[t]
    used = (lab != 0) & (move != 0)
    if not used.any():
        return {"agree": float("nan"), "swapped": float("nan"), "samples": 0}
    agree = float(np.mean(lab[used] == move[used]))
    return {"agree": agree, "swapped": float(np.mean(-lab[used] == move[used])), "samples": int(used.sum())}
