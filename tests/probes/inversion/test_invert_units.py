"""Unit tests of the inversion pieces: WGAN-GP losses, Nesterov update, restart selection, metrics, splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.probes.inversion.attack import AttackConfig, nesterov_step, run_inversion, select_best, target_logits
from dnnkit.probes.inversion.metrics import EvalData, diversity, evaluate_images, frechet_distance, sq_dists
from dnnkit.probes.inversion.nets import build_prior_nets, default_z_dim
from dnnkit.probes.inversion.prior import critic_loss, generator_loss, gradient_penalty
from dnnkit.probes.inversion.run import output_mapping
from dnnkit.probes.inversion.splits import make_split, parse_classes, parse_split


class LinearCritic(nn.Module):
    """D(x) = w . x: its input gradient is w everywhere, so the penalty is (||w|| - 1)^2."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w


def test_wgan_gp_losses_match_a_hand_computed_case() -> None:
    w = torch.tensor([3.0, 4.0])  # ||w|| = 5 -> penalty (5 - 1)^2 = 16
    critic = LinearCritic(w)
    real = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    fake = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    eps = torch.tensor([0.3, 0.9])
    assert float(gradient_penalty(critic, real, fake, eps).detach()) == pytest.approx(16.0)
    # mean D(fake) = (0 + 7)/2 = 3.5; mean D(real) = (3 + 4)/2 = 3.5; L_D = 0 + 10*16
    loss, gp = critic_loss(critic, real, fake, eps, 10.0)
    assert float(loss.detach()) == pytest.approx(160.0)
    assert float(generator_loss(critic, fake).detach()) == pytest.approx(-3.5)


def test_gradient_penalty_is_zero_for_a_unit_norm_critic_and_differentiable() -> None:
    critic = LinearCritic(torch.tensor([0.6, 0.8]))
    real, fake = torch.rand(4, 2), torch.rand(4, 2)
    gp = gradient_penalty(critic, real, fake, torch.rand(4))
    assert float(gp.detach()) == pytest.approx(0.0, abs=1e-10)
    critic2 = LinearCritic(torch.tensor([2.0, 0.0]))
    gradient_penalty(critic2, real, fake, torch.rand(4)).backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = 2 * 1 * (1, 0)
    assert torch.allclose(critic2.w.grad, torch.tensor([2.0, 0.0]))


@pytest.mark.parametrize("arch,shape", [("mlp", (1, 8, 8)), ("mlp", (1, 28, 28)), ("dcgan", (1, 28, 28)),
                                        ("dcgan", (3, 32, 32))])
def test_prior_network_shapes(arch: str, shape: tuple[int, ...]) -> None:
    z_dim = default_z_dim(arch, shape)
    gen, critic = build_prior_nets(arch, z_dim, shape, width=8)
    with torch.no_grad():
        x = gen(torch.randn(3, z_dim))
        assert tuple(critic(x).shape) == (3,)
    assert tuple(x.shape) == (3, *shape) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())


def test_nesterov_update_two_hand_computed_steps() -> None:
    x, v = torch.tensor([1.0]), torch.tensor([0.0])
    # step 1: v1 = 0.9*0 - 0.1*2 = -0.2; x1 = 1 - 0.9*0 + 1.9*(-0.2) = 0.62
    x, v = nesterov_step(x, v, torch.tensor([2.0]), lr=0.1, momentum=0.9)
    assert float(v) == pytest.approx(-0.2) and float(x) == pytest.approx(0.62)
    # step 2 (grad 1): v2 = 0.9*(-0.2) - 0.1 = -0.28; x2 = 0.62 - 0.9*(-0.2) + 1.9*(-0.28) = 0.268
    x, v = nesterov_step(x, v, torch.tensor([1.0]), lr=0.1, momentum=0.9)
    assert float(v) == pytest.approx(-0.28) and float(x) == pytest.approx(0.268)


def test_restart_selection_indexes_by_target_label_with_shuffled_targets() -> None:
    # 2 items x 3 restarts, restart-major rows; each row's own target output decides (never row i's column i)
    target = nn.Identity()
    logits = torch.tensor([[0.0, 5.0, 1.0], [9.0, 0.0, 2.0],   # restart 0: item0 target 1 -> 5; item1 target 2 -> 2
                           [0.0, 1.0, 0.0], [0.0, 0.0, 7.0],   # restart 1: item0 -> 1; item1 -> 7
                           [0.0, 6.0, 0.0], [0.0, 0.0, 3.0]])  # restart 2: item0 -> 6; item1 -> 3
    outs = torch.tensor([1, 2] * 3)
    score = target_logits(target, logits, outs)
    assert score.tolist() == [5.0, 2.0, 1.0, 7.0, 6.0, 3.0]
    assert select_best(score, n_items=2, restarts=3).tolist() == [4, 3]


def test_attack_classes_follow_the_label_mapping_in_any_order() -> None:
    target = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():  # output j is "pixel j is bright": every class is reachable inside [0, 1]
        target[1].weight.copy_(torch.eye(3, 4) * 4)
        target[1].bias.zero_()
    cfg = AttackConfig(per_class=2, restarts=2, steps=30, lr=0.05)
    res = run_inversion("pixel", target, [9, 5], {5: 0, 7: 1, 9: 2}, cfg, image_shape=(1, 2, 2))
    assert res.classes.tolist() == [9, 9, 5, 5]
    assert tuple(res.images.shape) == (4, 1, 2, 2)
    with torch.no_grad():
        pred = target(res.images).argmax(1)
    assert pred.tolist() == [2, 2, 0, 0]  # each image is classified as its own target output


@pytest.mark.parametrize("field,value", [("per_class", 0), ("restarts", 0), ("steps", 0), ("lr", 0.0),
                                         ("momentum", 1.0), ("momentum", -0.1)])
def test_attack_config_rejects_bad_values(field: str, value: float) -> None:
    cfg = AttackConfig(**{field: value})
    with pytest.raises(InputError):
        cfg.check()


def test_metrics_on_toy_tensors() -> None:
    a = torch.zeros(3, 1, 2, 2)
    a[1] += 1.0
    assert sq_dists(a, a)[0, 1] == pytest.approx(4.0)
    div, distinct = diversity(torch.stack([a[0], a[0], a[1]]))
    assert distinct == 2 and div == pytest.approx((0 + 4 + 4) / 3)
    # evaluator = identity on 2 "pixels" -> logits; private images of class 1 contain the reconstruction exactly
    ev = nn.Sequential(nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        ev[1].weight.copy_(torch.eye(2))
        ev[1].bias.zero_()
    priv = torch.tensor([[[[0.0, 1.0]]], [[[0.1, 0.9]]], [[[1.0, 0.0]]]])
    data = EvalData(priv, torch.tensor([1, 1, 0]), priv[:1] * 0.5, torch.tensor([1]), priv, torch.tensor([1, 1, 0]),
                    n_classes=2)
    rec = priv[:1].clone()
    res = evaluate_images(rec, torch.tensor([1]), ev, data)
    assert res["top1"] == 1.0 and res["knn1_top1"] == 1.0
    assert res["nearest_pixel_l2sq"] == pytest.approx(0.0) and res["knn_dist"] == pytest.approx(0.0)
    assert res["psnr"] > 100
    assert res["feat_dist"] == pytest.approx(0.05 ** 2 * 2, rel=1e-4)  # centroid (0.05, 0.95)
    assert res["leak_ratio"] == pytest.approx(0.0)
    assert res["top5_informative"] is False and res["frechet"] is None


def test_frechet_distance_of_shifted_gaussians() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 2, generator=g)
    assert frechet_distance(a, a + torch.tensor([3.0, 4.0])) == pytest.approx(25.0, rel=1e-3)
    assert frechet_distance(a[:3], a) is None


def test_class_lists_and_splits() -> None:
    assert parse_classes("5-9") == (5, 6, 7, 8, 9) and parse_classes("0,2,4") == (0, 2, 4)
    assert str(parse_split("disjoint:0,2,4")) == "disjoint:0,2,4"
    for bad in ("5-3", "a", ""):
        with pytest.raises(InputError):
            parse_classes(bad)
    with pytest.raises(InputError):
        parse_split("half:5-9")
    y = np.repeat(np.arange(10), 20)
    shared = make_split(y, y, parse_split("shared:5-9"), 10, seed=0)
    assert not set(shared.public) & set(shared.private_train)
    assert set(y[shared.private_train]) == {5, 6, 7, 8, 9} and len(shared.public) == 100
    disjoint = make_split(y, y, parse_split("disjoint:5-9"), 10, seed=0)
    assert set(y[disjoint.public]) == {0, 1, 2, 3, 4} and len(disjoint.private_train) == 100
    with pytest.raises(InputError):
        make_split(y, y, parse_split("shared:5-12"), 10, seed=0)


def test_output_mapping() -> None:
    assert output_mapping(10, 10, (5, 6), "auto")[7] == 7
    assert output_mapping(2, 10, (5, 6), "auto") == {5: 0, 6: 1}
    assert output_mapping(2, 10, (5, 6), "6,5") == {6: 0, 5: 1}
    for bad in ("5", "5,5", "5,x", "5,11"):
        with pytest.raises(InputError):
            output_mapping(2, 10, (5, 6), bad)
    with pytest.raises(InputError):
        output_mapping(3, 10, (5, 6), "auto")
