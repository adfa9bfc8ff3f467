import torch
from torch import nn

from dnnkit.train import TrainConfig, accuracy, fit


def _toy():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return x, y


def test_fit_learns_and_holds_masks_and_frozen():
    x, y = _toy()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    mask = torch.rand(16, 8) > 0.5
    frozen_before = model[2].bias.detach().clone()
    hist = fit(model, x, y, TrainConfig(epochs=15, lr=1e-2), masks={"0.weight": mask}, frozen={"2.bias"})
    assert hist.loss[-1] < hist.loss[0]
    assert accuracy(model, x, y) > 0.9
    assert torch.all(model[0].weight[~mask] == 0)
    assert torch.equal(model[2].bias, frozen_before)


def test_distillation_from_teacher():
    x, y = _toy()
    teacher = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    fit(teacher, x, y, TrainConfig(epochs=10, lr=1e-2))
    student = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    hist = fit(student, x, y, TrainConfig(epochs=10, lr=1e-2), teacher=teacher)
    assert hist.loss[-1] < hist.loss[0]
