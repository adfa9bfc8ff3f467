"""Option declarations shared by every command, so names mean the same everywhere."""

from __future__ import annotations

from typing import Annotated

import typer

ModelArg = Annotated[str, typer.Argument(help="Model: file.safetensors, HF folder, file.gguf, zoo:NAME, timm:NAME, "
                                              "hf:ORG/NAME or legacy .pt/.bin.", show_default=False,
                                              metavar="MODEL")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No human output and no logs (errors still shown).")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="More logs; tracebacks on errors.")]
DataOpt = Annotated[str | None, typer.Option("--data", help="digits, fashion-mnist, wiki, imagefolder:PATH, npz:PATH, "
                                                                "text:PATH, jsonl:PATH.")]
CalibOpt = Annotated[int, typer.Option("--calib", help="Number of calibration samples.", min=1)]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for sample selection and training.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda[:N].")]
DtypeOpt = Annotated[str | None, typer.Option("--dtype", help="float32, float16 or bfloat16.")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", help="Batch size.", min=1)]
OutputOpt = Annotated[str | None, typer.Option("--output", "-o", help="Output path (.safetensors, or a folder for "
                                                                        "HF models).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Compute and report, write nothing.")]
ArchOpt = Annotated[str | None, typer.Option("--arch", help="Architecture for a bare weights file: zoo:NAME, "
                                                                "timm:NAME[?k=v], or a HF folder/config.json.")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="torch CPU threads (default: $DNNKIT_THREADS or "
                                                                     "torch's default; 1 is often fastest on "
                                                                     "small models).", min=1)]
SeqLenOpt = Annotated[int, typer.Option("--seq-len", help="Tokens per block for text.", min=2)]
