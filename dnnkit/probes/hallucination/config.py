"""The options of `dnnkit probe-hallucination`: `DatasetConfig` (dataset build), `TrainConfig` (train; also
the options `pipeline.run_train` reads) and `ScoreConfig` (score), each with a cheap `check()` (exit 2 before
any heavy work). Checks that need the records or the model live in `pipeline.check_records` and the probes.

The QA data field is `qa` (CLI `--data`: builtin-qa or jsonl:PATH), not `data`: the runner checks a `data`
field as an image/text `--data` spec, which builtin-qa is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dnnkit.errors import InputError


@dataclass
class DatasetConfig:
    """Options of `dataset build` (CLI names): fact tables plus stratified arithmetic."""

    tasks: str = "all"
    facts: str = "builtin"
    n_arith: int = 400
    arith_ops: str = "add,sub,mul"
    arith_digits: str = "1-4"
    seed: int = 0

    def check(self) -> None:
        """Bad task, op, digit or facts values (exit 2)."""
        from dnnkit.probes.hallucination.arithmetic import parse_digits, parse_ops
        from dnnkit.probes.hallucination.dataset import parse_tasks
        from dnnkit.probes.hallucination.facts import check_facts_spec

        parse_tasks(self.tasks)
        parse_ops(self.arith_ops)
        parse_digits(self.arith_digits)
        check_facts_spec(self.facts)
        if self.n_arith < 0:
            raise InputError("--n-arith must be >= 0")


@dataclass
class TrainConfig:
    """Options of `train` (CLI names): probe kind, layer, position, cross-validation, decoding and data."""

    probe: str = "mlp"
    layer: str = "auto"
    position: str = "first"
    holdout_family: str = "none"
    folds: int = 5
    max_new_tokens: int = 8
    no_answer: str = "exclude"
    seed: int = 0
    grid: bool = True
    n_boot: int = 1000
    inner_folds: int = 3
    grid_stride: int = 1
    qa: str = "builtin-qa"  # --data
    cache: str | None = None
    report_dir: str | None = None  # default: OUTPUT stem + _report
    batch_size: int = 16

    def check(self) -> None:
        """Bad option values (exit 2 before the data or the model is read)."""
        from dnnkit.probes.hallucination.dataset import FAMILIES, qa_path
        from dnnkit.probes.hallucination.generate import TRAIN_POSITIONS

        if self.probe not in ("mlp", "linear"):
            raise InputError(f"--probe must be mlp or linear, got {self.probe!r}")
        if self.position not in TRAIN_POSITIONS:
            raise InputError(f"--position must be one of {', '.join(TRAIN_POSITIONS)}, got {self.position!r}")
        if self.folds < 2:
            raise InputError(f"--folds must be >= 2, got {self.folds}")
        if self.no_answer not in ("exclude", "as-wrong"):
            raise InputError(f"--no-answer must be exclude or as-wrong, got {self.no_answer!r}")
        if self.holdout_family not in (*FAMILIES, "none"):
            raise InputError(f"--holdout-family must be one of {', '.join(FAMILIES)}, none; got "
                             f"{self.holdout_family!r}")
        if self.max_new_tokens < 1:
            raise InputError("--max-new-tokens must be >= 1")
        if self.layer != "auto":
            try:
                float(self.layer)
            except ValueError as exc:  # the range needs the model: pipeline.resolve_layer
                raise InputError(f"--layer must be auto, an integer or a fraction, got {self.layer!r}") from exc
        if self.batch_size < 1:
            raise InputError("--batch-size must be >= 1")
        if self.n_boot < 100:
            raise InputError("--n-boot must be >= 100")
        qa_path(self.qa)


@dataclass
class ScoreConfig:
    """Options of `score` (CLI names): the probe file, the records to answer and the flagging threshold."""

    probe: str | None = None  # PROBE.safetensors written by train (required)
    qa: str | None = None  # --data jsonl:PATH (required)
    threshold: str | float = "auto"  # auto: the probe's (10 % FPR)
    max_new_tokens: int | None = None  # default: the probe's
    batch_size: int = 16

    def check(self) -> None:
        """The probe file's header, the threshold and the data form (exit 2)."""
        from dnnkit.probes.hallucination.dataset import qa_path

        self.record()
        self.threshold_value()
        if self.qa is None:
            raise InputError("missing --data", hint="pass --data jsonl:PATH")
        qa_path(self.qa)
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise InputError("--max-new-tokens must be >= 1")
        if self.batch_size < 1:
            raise InputError("--batch-size must be >= 1")

    def record(self) -> dict[str, Any]:
        """The probe file's dnnkit record (header only); InputError when it is not a probe from `train`."""
        from pathlib import Path

        from dnnkit.models.safetensors_io import read_header

        if self.probe is None:
            raise InputError("missing --probe", hint="pass the PROBE.safetensors written by `train`")
        path = Path(self.probe)
        if not path.is_file():
            raise InputError(f"probe file {self.probe!r} does not exist")
        record = read_header(path).dnnkit_record() or {}
        if (record.get("arch") or {}).get("family") != "hallucination-probe":
            raise InputError(f"{self.probe} is not a probe written by `dnnkit probe-hallucination train`")
        from dnnkit.probes.hallucination.generate import TRAIN_POSITIONS

        if str(record.get("position", "first")) not in TRAIN_POSITIONS:
            raise InputError(f"{self.probe} reads position {record.get('position')!r}, which this version of "
                             f"dnnkit does not know ({', '.join(TRAIN_POSITIONS)})")
        return record

    def threshold_value(self) -> float | None:
        """None for auto, else the number."""
        if self.threshold == "auto":
            return None
        try:
            return float(self.threshold)
        except ValueError as exc:
            raise InputError(f"--threshold must be auto or a number, got {self.threshold!r}") from exc
