"""`invert` through the library entry: `dnnkit.runner.run_probe` with TRAIN_PRIOR and INVERT (tiny budgets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnnkit.errors import InputError
from dnnkit.probes.inversion.probe import INVERT, TRAIN_PRIOR, InvertConfig, TrainPriorConfig
from dnnkit.runner import run_probe


def test_train_prior_and_attack_through_run_probe(digits_mlp_ref: str, tmp_path: Path) -> None:
    out = tmp_path / "prior.safetensors"
    stale = tmp_path / "prior.samples.png"
    stale.write_bytes(b"old")  # the PNGs beside the prior are replaced without force (as on the CLI)
    res = run_probe(TRAIN_PRIOR, None, TrainPriorConfig(data="digits", steps=20), output=str(out),
                    argv=["dnnkit", "invert", "train-prior"])
    r = res.report
    assert r["output"] == str(out) and r["dry_run"] is False and r["command"] == ["dnnkit", "invert", "train-prior"]
    assert r["prior"]["arch"] == "mlp" and r["prior"]["z_dim"] == 20 and r["prior"]["steps"] == 20
    assert stale.read_bytes()[:4] == b"\x89PNG" and Path(r["progress_png"]).read_bytes()[:4] == b"\x89PNG"
    assert res.extra["prior"].image_shape == (1, 8, 8)
    with pytest.raises(InputError, match="already exists"):
        run_probe(TRAIN_PRIOR, None, TrainPriorConfig(data="digits", steps=1), output=str(out))

    cfg = InvertConfig(prior=str(out), target_class=[5], method="gmi", evaluator="none", per_class=1, restarts=1,
                       steps=3)
    attack = run_probe(INVERT, digits_mlp_ref, cfg)  # no output: nothing written, the result can be saved later
    a = attack.report
    assert a["output"] is None and a["attack"]["classes_attacked"] == [5] and set(a["results"]) == {"gmi"}
    assert set(a["attack"]) >= {"per_class", "restarts", "steps", "lr", "momentum", "id_weight", "seed"}
    assert "prior" not in a["attack"] and a["target"]["ref"] == digits_mlp_ref
    assert tuple(attack.extra["outcome"]["attacks"]["gmi"].images.shape) == (1, 1, 8, 8)
    folder = tmp_path / "audit"
    attack.save(folder)
    assert {"report.json", "reconstructions.safetensors", "grid_gmi.png"} <= {p.name for p in folder.iterdir()}
    assert a["files"] and a["output"] == str(folder)


@pytest.mark.parametrize("cfg,needle", [
    (TrainPriorConfig(split="half"), "--split"),
    (TrainPriorConfig(prior_arch="vae"), "--prior-arch"),
    (TrainPriorConfig(z_dim="big"), "--z-dim"),
    (TrainPriorConfig(steps=0), "--steps"),
    (TrainPriorConfig(device="tpu"), "--device"),
    (InvertConfig(prior=None), "missing --prior"),
    (InvertConfig(prior="p.safetensors", method="magic"), "--method"),
    (InvertConfig(prior="p.safetensors", targets="x"), "--targets"),
    (InvertConfig(prior="no/such/prior.safetensors"), "no such file"),
])
def test_configs_check_options_before_any_work(cfg: object, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        cfg.check()  # type: ignore[attr-defined]


def test_train_prior_output_must_be_safetensors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="must end in .safetensors"):
        run_probe(TRAIN_PRIOR, None, TrainPriorConfig(steps=1), output=str(tmp_path / "prior.pt"))
    assert list(tmp_path.iterdir()) == []
