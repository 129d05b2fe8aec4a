"""DeepLOB matches the reference network layer by layer (shapes, parameter count)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genesis.models.deeplob import DeepLOB, count_parameters


@pytest.fixture(autouse=True)
def _two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


def test_parameter_count_matches_reference():
    assert count_parameters(DeepLOB()) == 143_907


def test_parameter_count_per_part():
    """Hand count: conv 1x2 (1->32) 96; 4x1 (32->32) 4128; 1x2 (32->32) 2080; 1x10 10272;
    BN 64 per 32 channels, 128 per 64; inception 1x1 2112, 3x1 12352, 5x1 20544;
    LSTM 4*64*(192+64) + 2*4*64 = 66048; head 64*3+3 = 195."""
    m = DeepLOB()
    parts = {name: count_parameters(getattr(m, name))
             for name in ("conv1", "conv2", "conv3", "inp1", "inp2", "inp3", "lstm", "fc1")}
    assert parts == {
        "conv1": 96 + 2 * 4128 + 3 * 64,
        "conv2": 2080 + 2 * 4128 + 3 * 64,
        "conv3": 10272 + 2 * 4128 + 3 * 64,
        "inp1": 2112 + 12352 + 2 * 128,
        "inp2": 2112 + 20544 + 2 * 128,
        "inp3": 2112 + 128,
        "lstm": 66048,
        "fc1": 195,
    }


def test_layer_kinds_follow_the_reference():
    m = DeepLOB()
    # block 2 uses Tanh, blocks 1 and 3 LeakyReLU(0.01); BatchNorm after each activation
    assert [type(x) for x in m.conv2] == [nn.Conv2d, nn.Tanh, nn.BatchNorm2d] * 3
    for block in (m.conv1, m.conv3):
        acts = [x for x in block if isinstance(x, nn.LeakyReLU)]
        assert len(acts) == 3 and all(a.negative_slope == 0.01 for a in acts)
    assert m.conv1[0].stride == (1, 2) and m.conv2[0].stride == (1, 2)
    assert m.conv3[0].kernel_size == (1, 10)
    assert [c.padding for c in m.inp1 if isinstance(c, nn.Conv2d)] == [(0, 0), (1, 0)]
    assert [c.padding for c in m.inp2 if isinstance(c, nn.Conv2d)] == [(0, 0), (2, 0)]
    assert isinstance(m.inp3[0], nn.MaxPool2d) and m.inp3[0].padding == (1, 0)
    assert (m.lstm.input_size, m.lstm.hidden_size, m.lstm.num_layers) == (192, 64, 1)


def _layer_shapes(m: DeepLOB, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Output shape after every conv of the three blocks and after each stage."""
    shapes = {}
    y = x
    for block_name in ("conv1", "conv2", "conv3"):
        for i, layer in enumerate(getattr(m, block_name)):
            y = layer(y)
            if isinstance(layer, nn.Conv2d):
                shapes[f"{block_name}.{i}"] = tuple(y.shape)
    for name in ("inp1", "inp2", "inp3"):
        shapes[name] = tuple(getattr(m, name)(y).shape)
    shapes["inception"] = tuple(m.inception(y).shape)
    shapes["output"] = tuple(m(x).shape)
    return shapes


def test_per_layer_shapes_for_the_paper_input():
    m = DeepLOB()
    shapes = _layer_shapes(m, torch.randn(2, 1, 100, 40))
    assert shapes == {
        "conv1.0": (2, 32, 100, 20), "conv1.3": (2, 32, 97, 20), "conv1.6": (2, 32, 94, 20),
        "conv2.0": (2, 32, 94, 10), "conv2.3": (2, 32, 91, 10), "conv2.6": (2, 32, 88, 10),
        "conv3.0": (2, 32, 88, 1), "conv3.3": (2, 32, 85, 1), "conv3.6": (2, 32, 82, 1),
        "inp1": (2, 64, 82, 1), "inp2": (2, 64, 82, 1), "inp3": (2, 64, 82, 1),
        "inception": (2, 192, 82, 1),
        "output": (2, 3),
    }


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_forward_in_train_and_eval_mode(mode):
    torch.manual_seed(3)
    m = DeepLOB().train(mode == "train")
    x = torch.randn(4, 1, 100, 40)
    logits = m(x)
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()
    if mode == "train":
        logits.sum().backward()
        assert all(p.grad is not None for p in m.parameters())
        assert m.conv1[2].num_batches_tracked.item() == 1
    else:
        p = m.predict_proba(x)
        torch.testing.assert_close(p.sum(dim=1), torch.ones(4))
        torch.testing.assert_close(p, torch.softmax(logits, dim=1))


def test_train_and_eval_differ_through_batchnorm():
    torch.manual_seed(4)
    m = DeepLOB()
    x = torch.randn(8, 1, 100, 40) * 3 + 1
    train_out = m.train()(x)
    eval_out = m.eval()(x)
    assert not torch.allclose(train_out, eval_out)


def test_same_seed_gives_identical_model_and_outputs():
    x = torch.randn(3, 1, 100, 40)
    outs = []
    for _ in range(2):
        torch.manual_seed(42)
        m = DeepLOB().eval()
        with torch.no_grad():
            outs.append(m(x))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    torch.manual_seed(43)
    with torch.no_grad():
        assert not torch.equal(DeepLOB().eval()(x), outs[0])


def test_other_lengths_and_classes():
    m = DeepLOB(n_classes=5, n_features=20)
    assert m(torch.randn(1, 1, 50, 20)).shape == (1, 5)
    assert m.conv3[0].kernel_size == (1, 5)


@pytest.mark.parametrize("shape, message", [
    ((2, 100, 40), r"\(N, 1, T, 40\)"),
    ((2, 1, 100, 39), r"\(N, 1, T, 40\)"),
    ((2, 1, 18, 40), "at least 19 time steps"),
])
def test_bad_input_shape_raises(shape, message):
    with pytest.raises(ValueError, match=message):
        DeepLOB()(torch.randn(*shape))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="n_features"):
        DeepLOB(n_features=42)
    with pytest.raises(ValueError, match="n_classes"):
        DeepLOB(n_classes=1)


def test_reference_state_dict_names_load():
    """Names follow the reference (conv1..3, inp1..3, lstm, fc1): its checkpoints load."""
    keys = set(DeepLOB().state_dict())
    assert {"conv1.0.weight", "conv2.2.running_mean", "conv3.8.bias", "inp1.3.weight",
            "inp2.3.weight", "inp3.1.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0",
            "fc1.weight", "fc1.bias"} <= keys
