"""`dnnkit lowrank` end to end: exact reload by recipe replay, bare files, JSON fields, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dnnkit.cli.app import app

RUNNER = CliRunner()


def run(*args: str) -> tuple[int, dict | None, str]:
    result = RUNNER.invoke(app, list(args))
    out = None
    if result.exit_code == 0 and "--json" in args:
        out = json.loads(result.stdout)
    return result.exit_code, out, result.output


def digits_test_x(n: int = 64) -> torch.Tensor:
    from dnnkit.data import load_data

    return load_data("digits", "test").x[:n]


@pytest.mark.parametrize("rule", [("--rank-ratio", "0.25"), ("--energy", "0.9"), ("--params", "0.3")])
def test_svd_rules_write_and_reload_exactly(digits_mlp_ref: str, tmp_path: Path, rule: tuple[str, str]) -> None:
    out = tmp_path / "mlp.safetensors"
    code, rep, text = run("lowrank", digits_mlp_ref, "--svd", *rule, "-o", str(out), "--json", "--no-plots")
    assert code == 0, text
    assert rep["method"] == "svd" and rep["output"] == str(out)
    rows = rep["layers"]
    assert [r["name"] for r in rows] == ["1", "3", "5", "7", "9"]  # head (11) excluded by default
    for r in rows:
        if r["factored"]:
            assert r["params_after"] == r["rank"] * (r["shape"][0] + r["shape"][1]) < r["params_before"]
        else:
            assert r["params_after"] == r["params_before"] and r["reason"]
    if rule[0] == "--rank-ratio":
        assert {r["name"]: r["rank"] for r in rows}["3"] == 64
    fid = rep["fidelity"]
    assert 0 <= fid["factored"]["accuracy"] <= 1 and fid["factored"]["relative_output_mse"] > 0
    from dnnkit.models.registry import load_model
    from dnnkit.surgery.lowrank.fidelity import unique_params

    dense = load_model(digits_mlp_ref).model
    reloaded = load_model(str(out))
    assert reloaded.recipe[-1]["op"] == "lowrank"
    # predicted totals equal the written state dict, exactly
    assert unique_params(reloaded.model) == rep["totals"]["model"]["params_after"]
    assert unique_params(dense) == rep["totals"]["model"]["params_before"]
    # the reloaded model computes what the factored model computed: same accuracy as reported
    from dnnkit.data import load_data

    test = load_data("digits", "test")
    with torch.no_grad():
        acc = float((reloaded.model(test.x).argmax(-1) == test.y).double().mean())
    assert acc == pytest.approx(fid["factored"]["accuracy"], abs=1e-9)


def test_reload_gives_identical_outputs_cnn(digits_cnn_ref: str, tmp_path: Path) -> None:
    from dnnkit.models.registry import load_model
    from dnnkit.nn.lowrank import LowRankConv2d, LowRankLinear
    from dnnkit.surgery.lowrank.api import LowRankConfig, lowrank

    loaded = load_model(digits_cnn_ref)
    cfg = LowRankConfig(method="svd", rule="ratio", value=0.5, eval_limit=64)
    res = lowrank(loaded, cfg)
    kinds = {type(res.model.get_submodule(n)) for n in res.step["layers"]}
    assert kinds == {LowRankConv2d, LowRankLinear}
    from dnnkit.models.save import save_model

    out = tmp_path / "cnn.safetensors"
    save_model(loaded, res.model, out, res.step, {}, structural=True)
    again = load_model(str(out)).model
    x = digits_test_x()
    with torch.no_grad():
        assert torch.equal(again(x), res.model(x))
    # full rank ratio keeps everything dense: a warning, not an error
    res_full = lowrank(loaded, LowRankConfig(method="svd", rule="ratio", value=1.0, eval_limit=32))
    assert res_full.step["layers"] == {}
    assert any("nothing factored" in w for w in res_full.report["warnings"])


def test_asvd_and_whiten_beat_svd_on_calibration_metric(digits_mlp_ref: str, tmp_path: Path) -> None:
    res = {}
    for method in ("svd", "asvd", "whiten"):
        args = ["lowrank", digits_mlp_ref, f"--{method}", "--params", "0.15", "--dry-run", "--json", "--calib", "128"]
        if method != "svd":
            args += ["--data", "digits"]
        code, rep, text = run(*args)
        assert code == 0, text
        assert rep["output"] is None and rep["dry_run"] and rep["plots"] == {}
        res[method] = rep
    assert not list(tmp_path.iterdir())
    mse = {m: r["fidelity"]["factored"]["relative_output_mse"] for m, r in res.items()}
    assert mse["whiten"] < mse["svd"]
    # digits has always-zero corner pixels: the first layer's covariance is singular -> regularised, warned
    assert any("singular" in w for w in res["whiten"]["warnings"])
    assert res["asvd"]["layers"][0]["energy_kept"] is not None


def test_plots_are_written_beside_the_output(digits_mlp_ref: str, tmp_path: Path) -> None:
    out = tmp_path / "p.safetensors"
    code, rep, text = run("lowrank", digits_mlp_ref, "--svd", "--params", "0.5", "-o", str(out), "--json",
                          "--eval-limit", "100")
    assert code == 0, text
    assert set(rep["plots"]) == {"spectrum", "tradeoff"}
    for p in rep["plots"].values():
        assert Path(p).read_bytes()[:4] == b"\x89PNG"
    assert [p["fraction"] for p in rep["sweep"]][-1] == 1.0


def test_bare_file_tensor_by_tensor_matches_model_path(digits_mlp_ref: str, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from dnnkit.models.registry import load_model

    dense = load_model(digits_mlp_ref).model
    bare = tmp_path / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in dense.state_dict().items()}, str(bare))
    out = tmp_path / "bare_lr.safetensors"
    code, rep, text = run("lowrank", str(bare), "--svd", "--energy", "0.8", "-o", str(out), "--json")
    assert code == 0, text
    assert rep["bare"] and rep["fidelity"] == {}
    from dnnkit.models.safetensors_io import read_header

    names = set(read_header(out).tensors)
    factored = [r["name"] for r in rep["layers"] if r["factored"]]
    assert factored
    for n in factored:
        assert {f"{n}.down.weight", f"{n}.up.weight", f"{n}.up.bias"} <= names
        assert f"{n}.weight" not in names
    assert "11.weight" in names  # the head stays
    # loaded with an architecture, the bare output equals the model path's result
    via_arch = load_model(str(out), arch="zoo:digits-mlp").model
    ref_out = tmp_path / "model_lr.safetensors"
    code, rep2, text = run("lowrank", digits_mlp_ref, "--svd", "--energy", "0.8", "-o", str(ref_out), "--json",
                           "--no-plots")
    assert code == 0, text
    assert [r["rank"] for r in rep2["layers"]] == [r["rank"] for r in rep["layers"]]
    via_model = load_model(str(ref_out)).model
    x = digits_test_x()
    with torch.no_grad():
        assert torch.allclose(via_arch(x), via_model(x), atol=1e-5)
    # bare input needs --svd
    code, _, text = run("lowrank", str(bare), "--whiten", "--data", "digits", "--params", "0.5", "--dry-run")
    assert code == 2 and "needs the network" in text


@pytest.mark.parametrize("args,needle", [
    (["--rank-ratio", "0.5"], "exactly one method"),
    (["--svd", "--asvd", "--rank-ratio", "0.5"], "exactly one method"),
    (["--svd"], "needs a rank rule"),
    (["--svd", "--rank-ratio", "0.5", "--energy", "0.9"], "one rank rule"),
    (["--svd", "--rank-ratio", "0"], "must be in (0, 1]"),
    (["--svd", "--rank-ratio", "1.5"], "must be in (0, 1]"),
    (["--svd", "--energy", "-0.1"], "must be in (0, 1]"),
    (["--svd", "--params", "2"], "must be in (0, 1]"),
    (["--whiten", "--params", "0.5"], "needs calibration/training data"),
    (["--asvd", "--params", "0.5"], "needs calibration/training data"),
    (["--maestro"], "needs calibration/training data"),
    (["--maestro", "--data", "digits", "--rank-ratio", "0.5"], "only an optional --params"),
    (["--svd", "--rank-ratio", "0.5", "--include", "nothing.*"], "matches no layer"),
    (["--svd", "--rank-ratio", "0.5", "--exclude", "zz*"], "matches no layer"),
    (["--svd", "--params", "0.001"], "below the rank-1 floor"),
    (["--svd", "--rank-ratio", "0.5", "--allocate", "global"], "needs --params"),
    (["--svd", "--rank-ratio", "0.5", "--data", "nosuch"], "unknown --data"),
])
def test_bad_input_exits_2(digits_mlp_ref: str, tmp_path: Path, args: list[str], needle: str) -> None:
    out = tmp_path / "o.safetensors"
    code, _, text = run("lowrank", digits_mlp_ref, *args, "-o", str(out))
    assert code == 2, text
    assert needle in text and "Traceback" not in text
    assert not out.exists()


def test_no_factorable_layer_and_existing_output(tmp_path: Path, digits_mlp_ref: str) -> None:
    from safetensors.torch import save_file

    bare = tmp_path / "vec.safetensors"
    save_file({"a.weight": torch.ones(5), "b.bias": torch.ones(3)}, str(bare))
    code, _, text = run("lowrank", str(bare), "--svd", "--rank-ratio", "0.5", "--dry-run")
    assert code == 2 and "no factorable" in text
    code, _, text = run("lowrank", digits_mlp_ref, "--svd", "--rank-ratio", "0.5", "--include", "11")
    assert code == 2 and "missing -o" in text
    code, _, text = run("lowrank", digits_mlp_ref, "--svd", "--rank-ratio", "0.5", "--include", "11", "--dry-run")
    assert code == 2 and "no factorable layer" in text  # only the head matched
    existing = tmp_path / "exists.safetensors"
    existing.write_bytes(b"keep")
    code, _, text = run("lowrank", digits_mlp_ref, "--svd", "--rank-ratio", "0.5", "-o", str(existing))
    assert code == 2 and "already exists" in text
    assert existing.read_bytes() == b"keep"


def test_hugging_face_folder_reloads_exactly(tmp_path: Path) -> None:
    import transformers

    cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=40, max_position_embeddings=32)
    torch.manual_seed(0)
    transformers.BertModel(cfg).save_pretrained(tmp_path / "tiny-bert")
    out = tmp_path / "tiny.safetensors"
    code, rep, text = run("lowrank", str(tmp_path / "tiny-bert"), "--svd", "--rank-ratio", "0.25",
                          "--include", "encoder.layer.*.intermediate.dense", "-o", str(out), "--json", "--no-plots")
    assert code == 0, text
    assert [r["rank"] for r in rep["layers"]] == [4, 4] and all(r["factored"] for r in rep["layers"])
    from dnnkit.models.registry import load_model
    from dnnkit.surgery.lowrank.api import LowRankConfig, lowrank

    loaded = load_model(str(tmp_path / "tiny-bert"))
    res = lowrank(loaded, LowRankConfig(method="svd", rule="ratio", value=0.25,
                                        include=["encoder.layer.*.intermediate.dense"]))
    again = load_model(str(out)).model
    ids = torch.randint(0, 50, (3, 7))
    with torch.no_grad():
        assert torch.equal(again(input_ids=ids).last_hidden_state, res.model(input_ids=ids).last_hidden_state)


def test_truncate_recuts_an_svd_checkpoint(digits_mlp_ref: str, tmp_path: Path) -> None:
    half, quarter, cut = (tmp_path / f"{n}.safetensors" for n in ("half", "quarter", "cut"))
    for out, ratio in ((half, "0.4"), (quarter, "0.25")):
        code, _, text = run("lowrank", digits_mlp_ref, "--svd", "--rank-ratio", ratio, "-o", str(out), "--no-plots",
                            "--eval-limit", "50")
        assert code == 0, text
    code, rep, text = run("lowrank", str(half), "--truncate", "--rank-ratio", "0.25", "-o", str(cut), "--json",
                          "--no-plots", "--eval-limit", "50")
    assert code == 0, text
    assert [r["rank"] for r in rep["layers"]] == [16, 64, 64, 64, 32]
    assert all(r["out_of_order"] == 0 for r in rep["layers"])  # a balanced SVD split is ordered
    from dnnkit.models.registry import load_model

    a, b = load_model(str(cut)), load_model(str(quarter)).model
    assert [s["params"]["method"] for s in a.recipe] == ["svd", "truncate"]
    x = digits_test_x()
    with torch.no_grad():
        assert torch.allclose(a.model(x), b(x), atol=1e-5)
    code, _, text = run("lowrank", digits_mlp_ref, "--truncate", "--rank-ratio", "0.5", "--dry-run")
    assert code == 2 and "factored layers" in text
