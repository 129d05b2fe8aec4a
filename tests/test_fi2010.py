"""FI-2010-format files: 149 rows x N columns of text, read into Genesis' rows and labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genesis.models.data import lob_features
from genesis.models.fi2010 import HORIZONS, N_ROWS, load_fi2010, label_agreement


def make_book(n: int, seed: int = 0):
    """A random-walk 10-level book (bid_px, bid_sz, ask_px, ask_sz), each (n, 10)."""
    rng = np.random.default_rng(seed)
    mid = 10.0 + np.cumsum(rng.choice([-0.01, 0.0, 0.01], n))
    depth = 0.01 * np.arange(1, 11)
    return (mid[:, None] - depth, rng.integers(1, 900, (n, 10)).astype(float),
            mid[:, None] + depth, rng.integers(1, 900, (n, 10)).astype(float))


def file_labels(mid: np.ndarray, k: int, up: int = 3, down: int = 1) -> np.ndarray:
    """FI-2010 labels from a mid: future mean vs now, 1/2/3 with ``up``/``down`` as given
    (the last k samples, with no future, are marked stationary as the dataset does)."""
    n = len(mid)
    out = np.full(n, 2.0)
    for t in range(n - k):
        change = mid[t + 1: t + k + 1].mean() / mid[t] - 1
        out[t] = up if change > 1e-4 else down if change < -1e-4 else 2
    return out


def write_fi2010(path: Path, n: int = 300, seed: int = 0, up: int = 3, down: int = 1) -> dict:
    """An FI-2010-format file of n samples; returns what it holds."""
    book = make_book(n, seed)
    lob = lob_features(*book, dtype=np.float64)  # (n, 40) ask px, ask sz, bid px, bid sz per level
    mid = (book[0][:, 0] + book[2][:, 0]) / 2
    hand = np.random.default_rng(seed + 1).normal(size=(n, 104))
    labels = np.column_stack([file_labels(mid, k, up, down) for k in HORIZONS])
    table = np.vstack([lob.T, hand.T, labels.T])
    assert table.shape == (N_ROWS, n)
    np.savetxt(path, table, fmt="%.10e", delimiter="  ")
    return {"lob": lob, "hand": hand, "labels": labels}


def test_load_fi2010_reads_rows_and_maps_labels(tmp_path):
    path = tmp_path / "Train_Dst_NoAuction_DecPre_CF_7.txt"
    truth = write_fi2010(path, n=300)
    data = load_fi2010(path)
    assert len(data) == 300 and data.lob.shape == (300, 40) and data.features.shape == (300, 104)
    np.testing.assert_allclose(data.lob, truth["lob"], rtol=1e-10)
    np.testing.assert_allclose(data.features, truth["hand"], rtol=1e-9)
    assert data.labels.dtype == np.int8 and data.labels.shape == (300, 5)
    # Default convention: 1 down, 2 stationary, 3 up -> -1, 0, 1.
    expected = np.select([truth["labels"] == 1, truth["labels"] == 3], [-1, 1], 0)
    np.testing.assert_array_equal(data.labels, expected)
    np.testing.assert_array_equal(data.label(10), expected[:, 4])
    assert set(np.unique(data.labels)) == {-1, 0, 1}
    swapped = load_fi2010(path, convention="1=up")
    np.testing.assert_array_equal(swapped.labels, -expected)
    with pytest.raises(ValueError, match="horizon=4"):
        data.label(4)


def test_label_agreement_tells_the_convention(tmp_path):
    path = tmp_path / "one_is_down.txt"
    write_fi2010(path, n=400, seed=3, up=3, down=1)
    right = label_agreement(load_fi2010(path), horizon=10)
    assert right["agree"] == 1.0 and right["swapped"] == 0.0 and right["samples"] > 50
    path2 = tmp_path / "one_is_up.txt"
    write_fi2010(path2, n=400, seed=3, up=1, down=3)
    wrong = label_agreement(load_fi2010(path2), horizon=10)  # read with the default: swapped
    assert wrong["agree"] == 0.0 and wrong["swapped"] == 1.0


def test_malformed_files_name_the_file_and_the_problem(tmp_path):
    good = tmp_path / "good.txt"
    write_fi2010(good, n=120)
    lines = good.read_text().splitlines()

    short = tmp_path / "short.txt"
    short.write_text("\n".join(lines[:148]) + "\n")
    with pytest.raises(ValueError, match=r"short\.txt: 148 rows, an FI-2010 file has 149"):
        load_fi2010(short)

    ragged = tmp_path / "ragged.txt"
    ragged.write_text("\n".join(lines[:10] + [lines[10].rsplit(None, 1)[0]] + lines[11:]) + "\n")
    with pytest.raises(ValueError, match=r"ragged\.txt: line 11 has 119 values, the first line has 120"):
        load_fi2010(ragged)

    text = tmp_path / "text.txt"
    text.write_text("\n".join(lines[:5] + ["abc " + lines[5].split(None, 1)[1]] + lines[6:]) + "\n")
    with pytest.raises(ValueError, match=r"text\.txt: line 6 holds 'abc', not a number"):
        load_fi2010(text)

    bad_label = tmp_path / "bad_label.txt"
    fields = lines[146].split()
    fields[7] = "4"
    bad_label.write_text("\n".join(lines[:146] + ["  ".join(fields)] + lines[147:]) + "\n")
    with pytest.raises(ValueError, match=r"bad_label\.txt: row 146 \(label, horizon 3\), column 7 is 4\.0"):
        load_fi2010(bad_label)

    nan_lob = tmp_path / "nan_lob.txt"
    fields = lines[2].split()
    fields[3] = "nan"
    nan_lob.write_text("\n".join(lines[:2] + ["  ".join(fields)] + lines[3:]) + "\n")
    with pytest.raises(ValueError, match=r"nan_lob\.txt: row 2 \(LOB\), column 3"):
        load_fi2010(nan_lob)

    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(ValueError, match=r"empty\.txt: empty file"):
        load_fi2010(empty)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_fi2010(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="convention"):
        load_fi2010(good, convention="up")
