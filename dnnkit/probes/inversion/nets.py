"""Networks of the audit: the WGAN-GP prior (mlp, dcgan), the auto evaluators and the demo targets."""

from __future__ import annotations

import math

import torch
from torch import nn

PRIOR_ARCHS = ("mlp", "dcgan")


def default_z_dim(arch: str, image_shape: tuple[int, ...]) -> int:
    """`--z-dim auto`: 20 (mlp, <= 8x8), 32 (mlp, larger), 100 (dcgan)."""
    if arch == "dcgan":
        return 100
    return 20 if math.prod(image_shape) <= 64 else 32


def _mlp_widths(pixels: int) -> tuple[int, int]:
    return (128, 256) if pixels <= 64 else (256, 512)


class MLPGenerator(nn.Module):
    """z -> h1 -> h2 (BN, ReLU) -> P pixels, sigmoid (dnnkit's CPU prior; widths 128/256, or 256/512 for big images)."""

    def __init__(self, z_dim: int, image_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        pixels = math.prod(image_shape)
        h1, h2 = _mlp_widths(pixels)
        self.net = nn.Sequential(nn.Linear(z_dim, h1), nn.BatchNorm1d(h1), nn.ReLU(),
                                 nn.Linear(h1, h2), nn.BatchNorm1d(h2), nn.ReLU(),
                                 nn.Linear(h2, pixels), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.net(z).view(-1, *self.image_shape)


class MLPCritic(nn.Module):
    """P -> h2 -> h1 -> 1 with LeakyReLU 0.2 and no normalisation (the gradient penalty is per sample)."""

    def __init__(self, image_shape: tuple[int, ...]) -> None:
        super().__init__()
        pixels = math.prod(image_shape)
        h1, h2 = _mlp_widths(pixels)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(pixels, h2), nn.LeakyReLU(0.2),
                                 nn.Linear(h2, h1), nn.LeakyReLU(0.2), nn.Linear(h1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.net(x).squeeze(1)


def _pad_amounts(h: int, w: int, size: int = 32) -> tuple[int, int, int, int]:
    top, left = (size - h) // 2, (size - w) // 2
    return left, size - w - left, top, size - h - top


class DCGANGenerator(nn.Module):
    """The authors' DCGAN generator: Linear -> 4x4x4w -> two 5x5 stride-2 deconv blocks -> deconv to C, sigmoid, 32x32.

    Smaller data (28x28) is the centre crop of the 32x32 output (the data is zero-padded to 32 for the critic).
    """

    def __init__(self, z_dim: int, image_shape: tuple[int, ...], width: int = 64) -> None:
        super().__init__()
        c, h, w = image_shape
        self.image_shape = tuple(image_shape)
        self.width = width
        self.fc = nn.Sequential(nn.Linear(z_dim, 4 * 4 * 4 * width, bias=False), nn.BatchNorm1d(4 * 4 * 4 * width),
                                nn.ReLU())

        def up(cin: int, cout: int) -> list[nn.Module]:
            return [nn.ConvTranspose2d(cin, cout, 5, 2, padding=2, output_padding=1, bias=False),
                    nn.BatchNorm2d(cout), nn.ReLU()]

        self.deconv = nn.Sequential(*up(4 * width, 2 * width), *up(2 * width, width),
                                    nn.ConvTranspose2d(width, c, 5, 2, padding=2, output_padding=1), nn.Sigmoid())
        self.pad = _pad_amounts(h, w)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self.deconv(self.fc(z).view(-1, 4 * self.width, 4, 4))
        left, _, top, _ = self.pad
        _, h, w = self.image_shape
        return y[:, :, top:top + h, left:left + w]


class DCGANCritic(nn.Module):
    """5x5 stride-2 convs, LeakyReLU 0.2, InstanceNorm(affine) instead of BatchNorm, final 4x4 conv to a scalar."""

    def __init__(self, image_shape: tuple[int, ...], width: int = 64) -> None:
        super().__init__()
        c, h, w = image_shape
        self.pad = _pad_amounts(h, w)

        def down(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 5, 2, padding=2), nn.InstanceNorm2d(cout, affine=True), nn.LeakyReLU(0.2)]

        self.net = nn.Sequential(nn.Conv2d(c, width, 5, 2, padding=2), nn.LeakyReLU(0.2),
                                 *down(width, 2 * width), *down(2 * width, 4 * width), nn.Conv2d(4 * width, 1, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.net(nn.functional.pad(x, self.pad)).flatten(1).squeeze(1)


def build_prior_nets(arch: str, z_dim: int, image_shape: tuple[int, ...],
                     width: int = 64) -> tuple[nn.Module, nn.Module]:
    """(generator, critic) of the named prior architecture."""
    if arch == "mlp":
        return MLPGenerator(z_dim, image_shape), MLPCritic(image_shape)
    if arch == "dcgan":
        return DCGANGenerator(z_dim, image_shape, width), DCGANCritic(image_shape, width)
    raise ValueError(f"unknown prior arch {arch!r}")


def evaluator_net(image_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """`--evaluator auto` architecture: tanh-MLP 64-256-64 for <= 8x8 images, CNN conv16-conv32-fc128 otherwise."""
    c, h, w = image_shape
    if h * w <= 64:
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 256), nn.Tanh(), nn.Linear(256, 64), nn.Tanh(),
                             nn.Linear(64, num_classes))
    return nn.Sequential(nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(32 * (h // 4) * (w // 4), 128), nn.ReLU(), nn.Linear(128, num_classes))


def mlp_classifier(image_shape: tuple[int, ...], hidden: tuple[int, ...], num_classes: int,
                   activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """A plain MLP classifier (the demo targets: 64-128-128-5 on digits, 784-256-256-5 on Fashion-MNIST)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(image_shape)
    for h in hidden:
        layers += [nn.Linear(width, h), activation()]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)
