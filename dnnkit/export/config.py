"""Options of one export run, checked before any model is loaded."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from dnnkit.errors import InputError

FORMATS = {".onnx": "onnx", ".pt2": "pt2"}
ONNX_MODULES = ("onnx", "onnxruntime", "onnxscript")


def format_for(output: str | Path | None, given: str | None = None) -> str | None:
    """The format an output path asks for (`.onnx` or `.pt2`); `given` (--format) must agree with it."""
    if given is not None and given not in FORMATS.values():
        raise InputError(f"--format must be onnx or pt2, got {given!r}")
    if output is None:
        return given
    suffix = Path(output).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"output {str(output)!r} must end in .onnx or .pt2",
                         hint=".onnx runs in onnxruntime, .pt2 loads with torch.export.load")
    if given is not None and FORMATS[suffix] != given:
        raise InputError(f"--format {given} does not match the output suffix {suffix}")
    return FORMATS[suffix]


def missing_onnx_modules() -> list[str]:
    """The ONNX packages that do not import here (export and check need all three)."""
    return [name for name in ONNX_MODULES if importlib.util.find_spec(name) is None]


@dataclass
class ExportConfig:
    """One export: the format, the held-out check inputs and the tolerance, the traced forward."""

    format: str | None = None  # onnx | pt2 (from the output suffix; required when no output is given)
    data: str | None = None  # held-out inputs (the test split); default: the model's own data
    samples: int = 64  # inputs compared between the torch model and the exported file
    atol: float = 1e-4  # fail (exit 1, nothing written) when max |diff| > atol + rtol * max |torch output|
    rtol: float = 1e-5
    explain: bool = False  # B-cos: export the forward that also returns the contribution maps
    static_batch: int | None = None  # fix the batch size (default: dynamic)
    opset: int | None = None  # ONNX opset (default: the exporter's)
    seq_len: int = 32  # tokens per block for text models
    seed: int = 0

    def check(self) -> None:
        """Option checks that need no model (exit 2)."""
        if self.format is None:
            raise InputError("give -o FILE.onnx or FILE.pt2 (or --format with --dry-run)")
        if self.format not in FORMATS.values():
            raise InputError(f"--format must be onnx or pt2, got {self.format!r}")
        if self.samples < 1:
            raise InputError(f"--samples must be >= 1, got {self.samples}")
        if not self.atol >= 0 or not self.rtol >= 0:
            raise InputError(f"--atol and --rtol must be >= 0, got {self.atol} and {self.rtol}")
        if self.static_batch is not None and self.static_batch < 1:
            raise InputError(f"--static-batch must be >= 1, got {self.static_batch}")
        if self.opset is not None and self.format != "onnx":
            raise InputError("--opset applies to .onnx outputs only")
        if self.opset is not None and not 7 <= self.opset <= 30:
            raise InputError(f"--opset {self.opset} is outside the range ONNX exporters write (7..30)")
        if self.format == "onnx":
            missing = missing_onnx_modules()
            if missing:
                raise InputError(f"exporting to ONNX needs {', '.join(missing)}, which do not import here",
                                 hint="install them: .venv/bin/pip install onnx onnxruntime onnxscript "
                                      "(or `make setup`), or export to .pt2")
