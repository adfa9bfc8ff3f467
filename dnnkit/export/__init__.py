"""Export a loaded model to files that run without dnnkit: ONNX (onnxruntime) and torch.export `.pt2`.

`ExportConfig` holds the options, `EXPORT` is the probe the runner runs (`dnnkit export`,
`dnnkit.export_model`): trace once with `torch.export`, convert (ONNX) or save (pt2), reload the file
in its own runtime and compare it with the torch model on held-out inputs before anything is written.
"""

from dnnkit.export.config import FORMATS, ExportConfig, format_for

__all__ = ["FORMATS", "ExportConfig", "format_for"]
