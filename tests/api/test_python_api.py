"""The Python API (`import dnnkit`): one function per command on an nn.Module or a reference."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import dnnkit
from dnnkit.data import load_data


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_data("digits", "train")
    return data.x, data.y


@pytest.fixture(scope="module")
def trained_mlp(digits) -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 48), nn.ReLU(), nn.Linear(48, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    x, y = digits
    for _ in range(120):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net.eval()


def test_prune_a_plain_sequential_with_tensors(trained_mlp, digits, tmp_path):
    before = {k: v.clone() for k, v in trained_mlp.state_dict().items()}
    result = dnnkit.prune(trained_mlp, ratio=0.6, method="rd", data=digits, levels=11)
    assert all(torch.equal(v, before[k]) for k, v in trained_mlp.state_dict().items())  # input untouched
    weights = [m.weight for m in result.model.modules() if isinstance(m, nn.Linear)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == result.report["pruned"] and result.report["achieved"] == pytest.approx(0.6, abs=1e-3)
    assert result.report["metrics"]["after"]["accuracy"] > 0.5
    out = result.save(tmp_path / "p.safetensors")
    assert out["recipe"][-1]["op"] == "prune"
    with pytest.raises(dnnkit.errors.InputError, match="needs the network"):  # no architecture known
        dnnkit.load(str(tmp_path / "p.safetensors"))


def test_report_is_the_commands_json(cli_json, tmp_path):
    api = dnnkit.prune("zoo:digits-mlp", ratio=0.5, data="digits").report
    cli = cli_json("prune", "zoo:digits-mlp", "--ratio", "0.5", "--data", "digits", "--dry-run")
    assert set(api) == set(cli)
    assert api["layers"] == cli["layers"] and api["metrics"] == cli["metrics"]


def test_timm_model_keeps_its_architecture(tmp_path):
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=5).eval()
    result = dnnkit.prune(model, ratio=0.5, method="global")
    assert result.loaded.arch == {"family": "timm", "name": "resnet18", "kwargs": {"num_classes": 5}}
    result.save(tmp_path / "r.safetensors")
    again = dnnkit.load(str(tmp_path / "r.safetensors"))
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(again(x), result.model(x), atol=1e-5)


def test_lowrank_and_hash_codes_on_a_module(trained_mlp):
    lr = dnnkit.lowrank(trained_mlp, rank_ratio=0.25, data="digits")
    assert lr.report["totals"]["selected"]["params_after"] < lr.report["totals"]["selected"]["params_before"]
    assert lr.report["fidelity"]["factored"]["accuracy"] > 0.5
    assert isinstance(trained_mlp[1], nn.Linear)  # the input stays dense
    hc = dnnkit.hash_codes(trained_mlp, data="digits")
    report = hc.to_json()
    assert 0 < report["rr_test"] <= 1 and json.dumps(report)


def test_data_as_a_dataloader_and_explicit_splits(trained_mlp, digits):
    x, y = digits
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=100)
    from_loader = dnnkit.evaluate(trained_mlp, data=loader)
    from_pair = dnnkit.evaluate(trained_mlp, data=(x, y))
    assert from_loader["accuracy"] == from_pair["accuracy"]
    both = dnnkit.evaluate(trained_mlp, data={"train": (x[:10], y[:10]), "test": (x, y)})
    assert both["samples"] == len(x)


def test_token_ids_for_a_language_model():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0)
    lm = GPT2LMHeadModel(cfg).eval()
    ids = torch.randint(0, 50, (20, 16))
    report = dnnkit.evaluate(lm, data={"train": ids[:10], "test": ids[10:]})
    assert report["samples"] == 10 and 1 < report["perplexity"] < 500
    pruned = dnnkit.prune(lm, ratio=0.3, data={"train": ids[:10], "test": ids[10:]})
    assert pruned.report["metrics"]["after"]["perplexity"] > 0


def test_unknown_option_and_bad_data(trained_mlp):
    with pytest.raises(TypeError, match="unknown option.*levls"):
        dnnkit.prune(trained_mlp, ratio=0.5, levls=3)
    with pytest.raises(dnnkit.errors.InputError, match="token ids"):
        dnnkit.evaluate(trained_mlp, data=torch.rand(4, 64))


def test_recorded_command_is_the_one_given(tmp_path):
    from dnnkit.models.safetensors_io import read_header
    from dnnkit.runner import run_surgery
    from dnnkit.surgery.prune.run import PruneConfig

    out = tmp_path / "x.safetensors"
    run_surgery("prune", "zoo:digits-mlp", PruneConfig(ratio=0.5), data="digits", output=str(out),
                argv=["dnnkit", "prune", "zoo:digits-mlp", "--ratio", "0.5"])
    assert read_header(out).dnnkit_record()["command"] == ["dnnkit", "prune", "zoo:digits-mlp", "--ratio", "0.5"]


def test_probe_functions_on_a_module(trained_mlp, tmp_path):
    li = dnnkit.linear_interpret(trained_mlp, index=0, data="digits")
    assert li.report["n_outputs"] == 10 and li.report["output"] is None
    folder = li.save(tmp_path / "li")
    assert (tmp_path / "li" / "report.json").is_file() and folder == str(tmp_path / "li")
    ex = dnnkit.explain(trained_mlp, indices=[0, 1], data="digits")
    assert ex.extra["explanation"].contributions.shape[0] == 2
    ex.save(tmp_path / "why.png")
    assert (tmp_path / "why.png").stat().st_size > 0


def test_train_prior_then_invert(tmp_path, digits_mlp_ref):
    prior = dnnkit.train_prior(data="digits", steps=20)
    prior.save(tmp_path / "prior.safetensors")
    audit = dnnkit.invert(digits_mlp_ref, prior=str(tmp_path / "prior.safetensors"), target_class=[7], per_class=1,
                          restarts=1, steps=5, evaluator="none")
    assert audit.report["output"] is None and audit.to_json()["results"]
