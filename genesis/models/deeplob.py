"""DeepLOB (Zhang, Zohren and Roberts, 2019): CNN + inception + LSTM over LOB windows.

Layer for layer the network of the paper's reference PyTorch code
(zcakhaa/DeepLOB-Deep-Convolutional-Neural-Networks-for-Limit-Order-Books,
``jupyter_pytorch/run_train_pytorch.ipynb``): 143,907 trainable parameters for an input of
(batch, 1, 100, 40) and 3 classes.

Input: ``(N, 1, T, 40)`` float32, T snapshots (100 in the paper) of 10 levels, each level
``(ask price, ask size, bid price, bid size)``, level 1 first, normalised.

Shapes for T = 100 (the table the tests check)::

    input                                     (N,   1, 100, 40)
    block 1  Conv(1x2, stride 1x2), 4x1, 4x1  (N,  32,  94, 20)   LeakyReLU(0.01) + BN
    block 2  Conv(1x2, stride 1x2), 4x1, 4x1  (N,  32,  88, 10)   Tanh + BN
    block 3  Conv(1x10),           4x1, 4x1   (N,  32,  82,  1)   LeakyReLU(0.01) + BN
    inception  [1x1 -> 3x1 | 1x1 -> 5x1 | maxpool 3x1 -> 1x1]
               concatenated on channels       (N, 192,  82,  1)
    LSTM(192 -> 64), last time step           (N,  64)
    linear head                               (N,   3)   logits

The convolutional blocks have no padding along time, so their output at step j depends
only on input steps j .. j+18 (:data:`CONV_RECEPTIVE_FIELD` = 19): in eval mode (BatchNorm
then a fixed per-channel affine map) they are translation invariant along time, which
:mod:`genesis.models.inference` uses to share their work between overlapping windows. The
inception module pads along time ('same', as the reference) and is not.

One deliberate departure: ``forward`` returns logits. The reference applies a softmax in
``forward`` and then trains with ``CrossEntropyLoss`` (which applies its own log-softmax),
a double softmax; here the loss gets logits and callers that want probabilities call
:meth:`DeepLOB.predict_proba` (or ``torch.softmax(logits, -1)``). Parameters and layers are
unchanged by this.
"""

from __future__ import annotations

import torch
from torch import nn

#: Snapshots per window in the paper.
WINDOW = 100
#: Features per snapshot: 10 levels x (ask price, ask size, bid price, bid size).
N_FEATURES = 40
#: Time steps of input that one time step of the conv blocks' output sees (1 + 6 x 3).
CONV_RECEPTIVE_FIELD = 19
#: Channels out of the conv blocks, and out of each inception branch.
CONV_CHANNELS = 32
INCEPTION_CHANNELS = 64
LSTM_HIDDEN = 64
#: Negative slope of every LeakyReLU in the reference.
LEAKY_SLOPE = 0.01


def _conv_block(first_kernel: tuple[int, int], first_stride: tuple[int, int],
                in_channels: int, activation: type[nn.Module]) -> nn.Sequential:
    """One of the three conv blocks: a conv across features, then two 4x1 convs in time.

    Each conv is followed by the activation, then BatchNorm2d (the reference's order).
    No padding anywhere: a block shortens the time axis by 6 steps.
    """
    def act() -> nn.Module:
        return nn.LeakyReLU(LEAKY_SLOPE) if activation is nn.LeakyReLU else activation()

    c = CONV_CHANNELS
    return nn.Sequential(
        nn.Conv2d(in_channels, c, kernel_size=first_kernel, stride=first_stride),
        act(), nn.BatchNorm2d(c),
        nn.Conv2d(c, c, kernel_size=(4, 1)), act(), nn.BatchNorm2d(c),
        nn.Conv2d(c, c, kernel_size=(4, 1)), act(), nn.BatchNorm2d(c),
    )


def _conv_bn(in_channels: int, out_channels: int, time_kernel: int) -> list[nn.Module]:
    """Conv (time_kernel x 1, 'same' zero padding in time) -> LeakyReLU -> BatchNorm2d."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=(time_kernel, 1),
                  padding=(time_kernel // 2, 0)),
        nn.LeakyReLU(LEAKY_SLOPE), nn.BatchNorm2d(out_channels),
    ]


class DeepLOB(nn.Module):
    """The DeepLOB classifier. ``forward((N, 1, T, 40)) -> (N, n_classes)`` logits.

    Attribute names follow the reference (``conv1..3``, ``inp1..3``, ``lstm``, ``fc1``), so
    a state dict trained with the reference code loads here.

    Args:
        n_classes: output classes (3 in the paper: down, stationary, up).
        n_features: features per snapshot; 40 (10 levels) in the paper. The third block's
            feature-axis kernel is ``n_features // 4`` so that it collapses the axis to 1
            (10 for 40 features, as the reference).
    """

    def __init__(self, n_classes: int = 3, n_features: int = N_FEATURES) -> None:
        super().__init__()
        if n_features % 4 != 0 or n_features < 4:
            raise ValueError(f"n_features must be a positive multiple of 4, got {n_features}")
        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        self.n_classes = n_classes
        self.n_features = n_features
        c, k = CONV_CHANNELS, INCEPTION_CHANNELS
        self.conv1 = _conv_block((1, 2), (1, 2), 1, nn.LeakyReLU)
        self.conv2 = _conv_block((1, 2), (1, 2), c, nn.Tanh)
        self.conv3 = _conv_block((1, n_features // 4), (1, 1), c, nn.LeakyReLU)
        self.inp1 = nn.Sequential(*_conv_bn(c, k, 1), *_conv_bn(k, k, 3))
        self.inp2 = nn.Sequential(*_conv_bn(c, k, 1), *_conv_bn(k, k, 5))
        self.inp3 = nn.Sequential(nn.MaxPool2d((3, 1), stride=(1, 1), padding=(1, 0)),
                                  *_conv_bn(c, k, 1))
        self.lstm = nn.LSTM(input_size=3 * k, hidden_size=LSTM_HIDDEN, num_layers=1,
                            batch_first=True)
        self.fc1 = nn.Linear(LSTM_HIDDEN, n_classes)

    def conv_features(self, x: torch.Tensor) -> torch.Tensor:
        """The three conv blocks: ``(N, 1, T, F) -> (N, 32, T - 18, 1)``."""
        return self.conv3(self.conv2(self.conv1(x)))

    def inception(self, z: torch.Tensor) -> torch.Tensor:
        """Inception module: ``(N, 32, S, 1) -> (N, 192, S, 1)``, 'same' length S."""
        return torch.cat((self.inp1(z), self.inp2(z), self.inp3(z)), dim=1)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        """Everything after the conv blocks: ``(N, 32, S, 1) -> (N, n_classes)`` logits."""
        y = self.inception(z)                        # (N, 192, S, 1)
        y = y.squeeze(3).transpose(1, 2)             # (N, S, 192): time-major for the LSTM
        out, _ = self.lstm(y)                        # zero initial state, as the reference
        return self.fc1(out[:, -1, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, T, F)`` normalised snapshots -> ``(N, n_classes)`` logits."""
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[3] != self.n_features:
            raise ValueError(f"DeepLOB input must be (N, 1, T, {self.n_features}), "
                             f"got {tuple(x.shape)}")
        if x.shape[2] < CONV_RECEPTIVE_FIELD:
            raise ValueError(f"DeepLOB input needs at least {CONV_RECEPTIVE_FIELD} time "
                             f"steps, got {x.shape[2]}")
        return self.head(self.conv_features(x))

    @torch.inference_mode()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(N, n_classes)`` (softmax of the logits), no autograd."""
        return torch.softmax(self(x), dim=-1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (143,907 for ``DeepLOB()``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
