"""classification_report against hand-computed cases and its zero-division conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genesis.models.metrics import classification_report, cohen_kappa, confusion_matrix


def test_hand_computed_three_class_case():
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 1])
    y_pred = np.array([0, 1, 0, 1, 2, 2, 2, 0, 2, 1])
    r = classification_report(y_true, y_pred)
    # rows true, columns predicted
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 2, 1], [1, 0, 3]]
    assert r["support"] == [3, 3, 4]
    assert r["n"] == 10
    assert r["accuracy"] == pytest.approx(0.7)
    # precision: tp / column sum = 2/3, 2/3, 3/4; recall: tp / row sum = 2/3, 2/3, 3/4
    assert r["precision"] == pytest.approx([2 / 3, 2 / 3, 3 / 4])
    assert r["recall"] == pytest.approx([2 / 3, 2 / 3, 3 / 4])
    assert r["f1"] == pytest.approx([2 / 3, 2 / 3, 3 / 4])
    assert r["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 3 / 4) / 3)
    assert r["weighted_f1"] == pytest.approx(0.3 * 2 / 3 + 0.3 * 2 / 3 + 0.4 * 3 / 4)
    # Gorodkin: c=7, s=10, t=p=(3,3,4): (70 - 34) / sqrt((100-34)(100-34)) = 36/66
    assert r["mcc"] == pytest.approx(36 / 66)
    # kappa: p_o=0.7, p_e=0.34 -> 0.36/0.66
    assert r["kappa"] == pytest.approx(0.36 / 0.66)


def test_asymmetric_case_precision_recall_differ():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 1, 2, 1, 1, 1, 2])
    r = classification_report(y_true, y_pred)
    assert r["confusion_matrix"] == [[2, 1, 1], [0, 2, 0], [0, 1, 1]]
    assert r["precision"] == pytest.approx([1.0, 0.5, 0.5])
    assert r["recall"] == pytest.approx([0.5, 1.0, 0.5])
    f1 = [2 * 0.5 / 1.5, 2 * 0.5 / 1.5, 0.5]
    assert r["f1"] == pytest.approx(f1)
    assert r["macro_precision"] == pytest.approx(2 / 3)
    assert r["weighted_recall"] == pytest.approx(0.5 * 0.5 + 0.25 * 1.0 + 0.25 * 0.5)
    assert r["weighted_f1"] == pytest.approx(0.5 * f1[0] + 0.25 * f1[1] + 0.25 * f1[2])
    # c=5, s=8, t=(4,2,2), p=(2,4,2): t.p=20, t.t=p.p=24 -> (40 - 20) / sqrt(40 * 40)
    assert r["mcc"] == pytest.approx(0.5)
    # p_o = 40/64, p_e = 20/64 -> (40 - 20) / (64 - 20)
    assert r["kappa"] == pytest.approx(20 / 44)


def test_two_class_mcc_equals_phi_coefficient():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 2, 200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, 1 - y_true)
    r = classification_report(y_true, y_pred, n_classes=2)
    (tn, fp), (fn, tp) = r["confusion_matrix"]
    phi = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert r["mcc"] == pytest.approx(phi)
    assert r["mcc"] == pytest.approx(np.corrcoef(y_true, y_pred)[0, 1])


def test_class_never_predicted_has_precision_zero():
    y_true = np.array([0, 1, 2, 2])
    y_pred = np.array([0, 0, 2, 2])           # class 1 never predicted
    r = classification_report(y_true, y_pred)
    assert r["precision"] == pytest.approx([0.5, 0.0, 1.0])
    assert r["recall"] == pytest.approx([1.0, 0.0, 1.0])
    assert r["f1"][1] == 0.0
    assert r["macro_precision"] == pytest.approx(0.5)


def test_class_absent_from_truth_counts_in_macro_with_zeros():
    y_true = np.array([0, 0, 2, 2])
    y_pred = np.array([0, 1, 2, 2])
    r = classification_report(y_true, y_pred)
    assert r["support"] == [2, 0, 2]
    assert r["recall"][1] == 0.0 and r["precision"][1] == 0.0
    assert r["macro_recall"] == pytest.approx((0.5 + 0 + 1) / 3)
    # weighted averages ignore the absent class (weight 0)
    assert r["weighted_recall"] == pytest.approx(0.75)


def test_all_one_class_everywhere():
    y = np.ones(5, dtype=int)
    r = classification_report(y, y)
    assert r["accuracy"] == 1.0
    assert r["precision"] == [0.0, 1.0, 0.0]
    assert r["weighted_f1"] == 1.0
    assert r["mcc"] == 0.0                    # undefined: no variation at all
    assert r["kappa"] == 0.0                  # p_e = 1
    assert r["confusion_matrix"] == [[0, 0, 0], [0, 5, 0], [0, 0, 0]]


def test_constant_prediction_majority_baseline():
    y_true = np.array([0, 1, 1, 1, 2])
    y_pred = np.full(5, 1)
    r = classification_report(y_true, y_pred)
    assert r["accuracy"] == pytest.approx(0.6)
    assert r["mcc"] == 0.0 and r["kappa"] == pytest.approx(0.0)
    assert r["macro_f1"] == pytest.approx((2 * 0.6 / 1.6) / 3)


def test_perfect_and_inverted():
    y = np.array([0, 1, 2, 0, 1, 2])
    r = classification_report(y, y)
    assert r["mcc"] == pytest.approx(1.0) and r["kappa"] == pytest.approx(1.0)
    r = classification_report(np.array([0, 1, 0, 1]), np.array([1, 0, 1, 0]), n_classes=2)
    assert r["mcc"] == pytest.approx(-1.0) and r["kappa"] == pytest.approx(-1.0)


def test_empty_input_gives_zeros():
    r = classification_report(np.array([], dtype=int), np.array([], dtype=int))
    assert r["n"] == 0 and r["accuracy"] == 0.0 and r["mcc"] == 0.0
    assert cohen_kappa(np.zeros((3, 3))) == 0.0


def test_report_is_json_ready():
    import json
    r = classification_report(np.array([0, 1, 2]), np.array([0, 2, 2]))
    assert json.loads(json.dumps(r)) == r


@pytest.mark.parametrize("y_true, y_pred, message", [
    (np.array([0, 1, 3]), np.array([0, 1, 2]), "y_true holds label 3"),
    (np.array([0, 1, 2]), np.array([0, -1, 2]), "y_pred holds label -1"),
    (np.array([0, 1]), np.array([0, 1, 2]), "differ in length"),
    (np.array([[0, 1]]), np.array([0, 1]), "y_true must be 1-D"),
    (np.array([0.5, 1.0]), np.array([0, 1]), "integer class labels"),
])
def test_bad_labels_raise_naming_the_input(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(y_true, y_pred)
