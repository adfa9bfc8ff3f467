"""The model registry: one entry point that loads every reference form of DESIGN.md section 2.

`load_model(ref)` builds the network (replaying a dnnkit recipe when the checkpoint has one);
`open_weights(ref)` gives tensor-by-tensor access without building anything, for weight-only
operations on bare files. Both validate their input before reading tensor data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnnkit.errors import InputError
from dnnkit.models.arch import ModelInfo, build_arch, folder_arch_from_config, info_from_arch, parse_arch_option
from dnnkit.models.reference import ModelRef, parse_reference
from dnnkit.models.safetensors_io import read_header
from dnnkit.models.weights import GGUFWeights, SafetensorsWeights, StateDictWeights, WeightSource
from dnnkit.progress import ProgressReporter, or_null

if TYPE_CHECKING:
    import torch
    from torch import nn

HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                   "pytorch_model.bin.index.json")


@dataclass
class LoadedModel:
    """A loaded network with everything later steps need: architecture, record, provenance."""

    ref: ModelRef
    model: nn.Module | None
    arch: dict[str, Any] | None
    info: ModelInfo
    record: dict[str, Any] | None = None
    files: list[Path] = field(default_factory=list)
    hf_dir: Path | None = None
    tokenizer_dir: Path | None = None
    _sha256: str | None = None

    @property
    def recipe(self) -> list[dict[str, Any]]:
        return list((self.record or {}).get("recipe", []))

    def require_network(self, why: str = "this command") -> nn.Module:
        """The built network, or the standard error for a bare weights file."""
        if self.model is None:
            raise InputError(f"{why} needs the network: {self.ref.raw} has no architecture",
                             hint="pass --arch (zoo:NAME, timm:NAME[?k=v], a HF folder, or py:FILE.py:FACTORY for "
                                  "your own architecture) or a dnnkit/HF checkpoint")
        return self.model

    def sha256(self) -> str | None:
        """sha256 over the input's weight files (None for a model built from a name alone)."""
        if self._sha256 is None and self.files:
            self._sha256 = files_sha256(self.files)
        return self._sha256

    def source_record(self) -> dict[str, Any]:
        """The `source` field of a record written from this model."""
        return {"reference": self.ref.raw, "sha256": self.sha256()}

    def tokenizer(self) -> Any:
        """The model's tokenizer (text models), loaded from its folder without remote code."""
        from transformers import AutoTokenizer

        if self.tokenizer_dir is None:
            raise InputError(f"{self.ref.raw} has no tokenizer files")
        from dnnkit.models.hf_quiet import quiet_transformers

        with quiet_transformers():
            return AutoTokenizer.from_pretrained(str(self.tokenizer_dir), local_files_only=True)


def files_sha256(files: list[Path]) -> str:
    """sha256 of one file, or of the concatenated sha256s of several (sorted by name)."""
    import hashlib

    from dnnkit.models.gguf import file_sha256

    if len(files) == 1:
        return file_sha256(files[0])
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(file_sha256(f).encode())
    return h.hexdigest()


def source_files(ref: str | ModelRef) -> list[Path]:
    """The files whose sha256 a checkpoint records as `source.sha256` (empty for a model built from a name)."""
    ref = resolve(ref)
    if ref.kind in ("safetensors", "gguf", "legacy"):
        return [ref.path]
    if ref.kind == "hf-dir":
        config = ref.path / "config.json"
        files = hf_weight_files(ref.path)
        return files + [config] if config.is_file() else files
    return []


def resolve(ref: str | ModelRef, progress: ProgressReporter | None = None) -> ModelRef:
    """Parse a reference and turn `zoo:NAME` into the file or folder behind it."""
    ref = ref if isinstance(ref, ModelRef) else parse_reference(ref)
    if ref.kind == "zoo":
        from dnnkit.models.schemes import scheme

        path = scheme("zoo").resolve(ref.target, progress)
        return ModelRef("hf-dir" if path.is_dir() else "safetensors", str(path), ref.raw)
    return ref


def hf_weight_files(folder: Path) -> list[Path]:
    """The weight files of a Hugging Face folder, or an InputError when it has none."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        from dnnkit.models.safetensors_io import parse_json

        weight_map = (parse_json(index.read_bytes(), str(index), "the shard index") or {})
        weight_map = weight_map.get("weight_map") if isinstance(weight_map, dict) else None
        if not (isinstance(weight_map, dict) and weight_map
                and all(isinstance(v, str) and v and Path(v).name == v and v not in (".", "..")
                        for v in weight_map.values())):
            raise InputError(f"{index} is not a valid shard index",
                             hint="its weight_map must map tensor names to shard file names in the folder")
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise InputError(f"{folder}: shard {missing[0]} listed in the index is missing")
        return [folder / s for s in shards]
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if bins:
        return bins
    singles = sorted(folder.glob("*.safetensors"))
    if singles:
        return singles
    raise InputError(f"directory {folder} has no weights",
                     hint="expected model.safetensors, a sharded model.safetensors.index.json, or pytorch_model.bin")


def open_weights(ref: str | ModelRef, progress: ProgressReporter | None = None) -> WeightSource:
    """Tensor-by-tensor access to a reference's weights, without building the network when possible."""
    ref = resolve(ref, progress)
    if ref.kind == "safetensors":
        return SafetensorsWeights([ref.path])
    if ref.kind == "hf-dir":
        files = hf_weight_files(ref.path)
        if all(f.suffix == ".safetensors" for f in files):
            return SafetensorsWeights(files)
        from dnnkit.models.legacy import load_legacy_state_dict

        merged: dict[str, torch.Tensor] = {}
        for f in files:
            merged.update(load_legacy_state_dict(f))
        return StateDictWeights(merged)
    if ref.kind == "gguf":
        return GGUFWeights(ref.path)
    if ref.kind == "legacy":
        from dnnkit.models.legacy import load_legacy_state_dict

        return StateDictWeights(load_legacy_state_dict(ref.path))
    loaded = load_model(ref, progress=progress)
    return StateDictWeights(loaded.require_network().state_dict())


def load_model(ref: str | ModelRef, *, arch: str | dict[str, Any] | None = None, weights: str | None = None,
               device: str = "cpu", dtype: str | None = None, trust_remote_code: bool = False,
               progress: ProgressReporter | None = None) -> LoadedModel:
    """Load any reference as a network (or as a bare weights file when no architecture is known)."""
    progress = or_null(progress)
    resolved = resolve(ref, progress)
    arch_spec = parse_arch_option(arch) if isinstance(arch, str) else arch
    if resolved.kind == "safetensors":
        loaded = _load_safetensors(resolved, arch_spec)
    elif resolved.kind == "hf-dir":
        loaded = _load_hf_dir(resolved, trust_remote_code)
    elif resolved.kind == "gguf":
        loaded = _load_gguf(resolved, progress)
    elif resolved.kind == "legacy":
        loaded = _load_legacy(resolved, arch_spec)
    elif resolved.kind == "timm":
        loaded = _load_timm(resolved, weights)
    elif resolved.kind == "hf-hub":
        loaded = _load_hub(resolved, trust_remote_code)
    else:  # pragma: no cover - parse_reference only yields the kinds above
        raise InputError(f"cannot load {resolved.raw}")
    if loaded.model is not None:
        loaded.model.eval()
        _move(loaded.model, device, dtype)
    return loaded


def _move(model: nn.Module, device: str, dtype: str | None) -> None:
    import torch

    if dtype is not None:
        table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
                 "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
        if dtype not in table:
            raise InputError(f"unknown --dtype {dtype!r}", hint="use float32, float16 or bfloat16")
        model.to(table[dtype])
    if device != "cpu":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"--device {device}: no CUDA device is available")
        model.to(device)


def load_state_into(model: nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """`load_state_dict(strict=True)` with a one-line error naming what does not fit.

    A tensor the model ties to another (an LM head tied to the embedding) may be absent from the file:
    it is the same tensor, so it is filled from its partner.
    """
    from dnnkit.models.save import dedupe_shared

    own = model.state_dict()
    _, tied = dedupe_shared(own)
    for alias, kept in tied.items():
        if alias not in tensors and kept in tensors:
            tensors = {**tensors, alias: tensors[kept]}
        elif kept not in tensors and alias in tensors:
            tensors = {**tensors, kept: tensors[alias]}
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    wrong = [k for k in own if k in tensors and tuple(own[k].shape) != tuple(tensors[k].shape)]
    if missing or unexpected or wrong:
        from dnnkit.models.guard import describe_mismatch

        shapes = [(k, tuple(tensors[k].shape), tuple(own[k].shape)) for k in wrong]
        raise InputError(f"weights in {where} do not fit the architecture: "
                         + describe_mismatch(missing, unexpected, shapes),
                         hint="check --arch")
    model.load_state_dict(tensors, strict=True)


def _build_with_recipe(arch_spec: dict[str, Any], record: dict[str, Any] | None, *, user_spec: bool) -> nn.Module:
    from dnnkit.models.recipe import replay

    model = build_arch(arch_spec, allow_code=user_spec)
    return replay(model, list((record or {}).get("recipe") or []))


def _build_checked(arch_spec: dict[str, Any], record: dict[str, Any] | None, shapes: dict[str, tuple[int, ...]],
                   where: str, *, user_spec: bool) -> nn.Module:
    """Build spec + recipe on the meta device, check it holds exactly the file's tensors, then build it for real:
    a spec or recipe read from a file never allocates more than the file's own tensors."""
    from dnnkit.models.guard import check_exact_fit, meta_build

    meta = meta_build(lambda: _build_with_recipe(arch_spec, record, user_spec=user_spec), where)
    check_exact_fit(meta, shapes, where)
    del meta
    return _build_with_recipe(arch_spec, record, user_spec=user_spec)


def _file_shapes(source: SafetensorsWeights, record: dict[str, Any] | None) -> dict[str, tuple[int, ...]]:
    """Name -> shape of the tensors a file holds (sparse ones decoded, recorded aliases added), header only."""
    shapes = {name: tuple(source.shape(name)) for name in source.names()}
    for alias, kept in ((record or {}).get("aliases") or {}).items():
        if kept in shapes:
            shapes.setdefault(alias, shapes[kept])
    return shapes


def _restore_aliases(tensors: dict[str, torch.Tensor], record: dict[str, Any] | None) -> dict[str, torch.Tensor]:
    for alias, kept in ((record or {}).get("aliases") or {}).items():
        if kept in tensors:
            tensors[alias] = tensors[kept]
    return tensors


def _load_safetensors(ref: ModelRef, arch_spec: dict[str, Any] | None) -> LoadedModel:
    from dnnkit.models.safetensors_io import load_tensors

    source = SafetensorsWeights([ref.path])
    record = source.headers[0].dnnkit_record()
    spec = arch_spec or (record or {}).get("arch")
    if spec is None:
        return LoadedModel(ref, None, None, info_from_arch(None), record, [ref.path])
    model = _build_checked(spec, record if arch_spec is None or record else None, _file_shapes(source, record),
                           ref.raw, user_spec=arch_spec is not None)
    tensors = _restore_aliases(load_tensors(ref.path), record)
    load_state_into(model, tensors, ref.raw)
    source_dir = _hf_source_dir(record)
    return LoadedModel(ref, model, spec, info_from_arch(spec, model), record, [ref.path],
                       tokenizer_dir=source_dir if _has_tokenizer(source_dir) else None, hf_dir=source_dir)


def _hf_source_dir(record: dict[str, Any] | None) -> Path | None:
    """For a dnnkit checkpoint of an HF model: the original folder, if still there."""
    src = ((record or {}).get("arch") or {}).get("tokenizer_dir")
    return Path(src) if src and Path(src).is_dir() else None


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "tokenizer.model", "vocab.json")


def _has_tokenizer(folder: Path | None) -> bool:
    return folder is not None and any((folder / n).exists() for n in TOKENIZER_FILES)


def _load_hf_dir(ref: ModelRef, trust_remote_code: bool) -> LoadedModel:

    from dnnkit.models.hf_config import read_hf_config

    folder = ref.path
    files = hf_weight_files(folder)
    safetensors_files = [f for f in files if f.suffix == ".safetensors"]
    source = SafetensorsWeights(safetensors_files)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise InputError(f"directory {folder} has weights but no config.json",
                         hint="pass the safetensors file itself with --arch to load it")
    spec = folder_arch_from_config(read_hf_config(config_file))
    if spec["family"] == "timm":
        return _load_timm_folder(ref, spec, files + [config_file])
    spec["tokenizer_dir"] = str(folder.resolve())
    cls = _hf_class_or_auto(spec["class"])
    state = None if len(safetensors_files) == len(files) else _read_state(files)
    if not trust_remote_code:  # custom code is the user's own choice; a config alone may not size an allocation
        _check_hf_size(spec, cls, source, state, str(config_file))
    model = _hf_from_pretrained(cls, folder, files, trust_remote_code, state)
    record = None
    if (folder / "dnnkit.json").is_file():
        record = _read_record_file(folder / "dnnkit.json")
    elif files[0].suffix == ".safetensors":
        record = read_header(files[0]).dnnkit_record()
    return LoadedModel(ref, model, spec, info_from_arch(spec, model), record, files + [config_file],
                       hf_dir=folder, tokenizer_dir=folder if _has_tokenizer(folder) else None)


def _read_state(files: list[Path]) -> dict[str, torch.Tensor]:
    """Every tensor of a folder's weight files (`.bin` through the restricted loader)."""
    from dnnkit.models.legacy import load_legacy_state_dict
    from dnnkit.models.safetensors_io import load_tensors

    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_tensors(f) if f.suffix == ".safetensors" else load_legacy_state_dict(f))
    return state


def _check_hf_size(spec: dict[str, Any], cls: type, source: SafetensorsWeights,
                   state: dict[str, torch.Tensor] | None, where: str) -> None:
    """The model config.json describes, built on the meta device, holds no more than the folder's weights."""
    from dnnkit.models.arch import _build_hf
    from dnnkit.models.guard import check_size_bound, meta_build

    if state is not None:
        file_numel = sum(t.numel() for t in state.values())
    else:
        file_numel = sum(_numel(source.shape(n)) for n in source.names())
    name = "AutoModel" if cls.__module__.startswith("transformers.models.auto") else cls.__name__
    meta = meta_build(lambda: _build_hf({**spec, "class": name}), where)
    check_size_bound(meta, file_numel, where)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _hf_from_pretrained(cls: type, folder: Path, files: list[Path], trust_remote_code: bool,
                        state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """`cls.from_pretrained` on a local folder, quietly; `.bin` weights are read by dnnkit's own restricted
    loader first (a pickle that wants to run code is refused as bad input, never handed to transformers)."""
    from dnnkit.models.hf_quiet import quiet_transformers

    kwargs: dict[str, Any] = {"local_files_only": True, "trust_remote_code": trust_remote_code}
    target: str | None = str(folder)
    if all(f.suffix == ".safetensors" for f in files):
        kwargs["use_safetensors"] = True
    else:
        from transformers import AutoConfig

        state = state if state is not None else _read_state(files)
        with quiet_transformers():
            config = AutoConfig.from_pretrained(str(folder), local_files_only=True,
                                                trust_remote_code=trust_remote_code)
            cls, kwargs["config"] = _concrete_hf_class(cls, config, folder, trust_remote_code)
        kwargs["state_dict"] = state
        target = None
    try:
        with quiet_transformers():
            return cls.from_pretrained(target, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise InputError(f"cannot load Hugging Face folder {folder}: {str(exc).splitlines()[0][:240]}") from exc


def _concrete_hf_class(cls: type, config: Any, folder: Path, trust_remote_code: bool) -> tuple[type, Any]:
    """The model class (and its config) an Auto class picks for `config`, as `AutoModel.from_pretrained(folder)`
    picks it: a config.json without (known) `architectures` loads the same from `.bin` weights, which go to
    `from_pretrained(None, state_dict=...)`, where an Auto class cannot look at a folder, as from safetensors."""
    if not cls.__module__.startswith("transformers.models.auto"):
        return cls, config
    auto_map = getattr(config, "auto_map", None) or {}
    if trust_remote_code and isinstance(auto_map.get(cls.__name__), str):
        from transformers.dynamic_module_utils import get_class_from_dynamic_module

        return get_class_from_dynamic_module(auto_map[cls.__name__], str(folder), local_files_only=True), config
    mapping = cls._model_mapping
    if type(config) not in mapping:
        raise InputError(f"cannot load Hugging Face folder {folder}: config.json has no usable `architectures` and "
                         f"transformers has no {cls.__name__} for model_type {getattr(config, 'model_type', None)!r}",
                         hint='add "architectures": ["<ModelClass>"] to config.json')
    model_class = mapping[type(config)]
    if isinstance(model_class, (list, tuple)):  # several classes for one config: the first, as transformers does
        model_class = model_class[0]
    text_config_class = (getattr(config, "sub_configs", None) or {}).get("text_config")
    if text_config_class is not None and getattr(model_class, "config_class", None) == text_config_class:
        config = config.get_text_config()
    return model_class, config


def _load_timm_folder(ref: ModelRef, spec: dict[str, Any], files: list[Path]) -> LoadedModel:
    """A folder written by timm (`save_for_hf`): timm's config.json plus weights."""
    tensors = _read_state(files[:-1])
    model = _build_checked(spec, None, {k: tuple(v.shape) for k, v in tensors.items()}, ref.raw, user_spec=False)
    load_state_into(model, tensors, ref.raw)
    record = None
    if (ref.path / "dnnkit.json").is_file():
        record = _read_record_file(ref.path / "dnnkit.json")
    return LoadedModel(ref, model, spec, info_from_arch(spec, model), record, files, hf_dir=ref.path)


def _read_record_file(path: Path) -> dict[str, Any] | None:
    """The dnnkit record a folder output carries beside its weights (`dnnkit.json`)."""
    from dnnkit.models.record import parse_record

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path} is not a valid dnnkit record ({exc.strerror})") from exc
    return parse_record(raw, str(path))


def _hf_class_or_auto(name: str) -> type:
    from dnnkit.models.arch import hf_model_class

    try:
        return hf_model_class(name)
    except InputError:
        import transformers

        return transformers.AutoModel


def _load_gguf(ref: ModelRef, progress: ProgressReporter) -> LoadedModel:
    from dnnkit.models.gguf import ensure_gguf_converted, file_sha256, gguf_cache_dir

    GGUFWeights(ref.path)  # validates the header before the slow conversion
    sha = file_sha256(ref.path)
    folder = ensure_gguf_converted(ref.path, gguf_cache_dir(ref.path, sha), progress)
    loaded = _load_hf_dir(ModelRef("hf-dir", str(folder), ref.raw), trust_remote_code=False)
    loaded.files = [ref.path]
    loaded._sha256 = sha
    return loaded


def _load_legacy(ref: ModelRef, arch_spec: dict[str, Any] | None) -> LoadedModel:
    from dnnkit.models.legacy import load_legacy_state_dict

    tensors = load_legacy_state_dict(ref.path)
    if arch_spec is None:
        return LoadedModel(ref, None, None, info_from_arch(None), None, [ref.path])
    model = build_arch(arch_spec, allow_code=True)
    load_state_into(model, tensors, ref.raw)
    return LoadedModel(ref, model, arch_spec, info_from_arch(arch_spec, model), None, [ref.path])


def _load_timm(ref: ModelRef, weights: str | None) -> LoadedModel:
    spec = parse_arch_option(f"timm:{ref.target}")
    files: list[Path] = []
    tensors = None
    if weights is not None:
        wref = parse_reference(weights)
        if wref.kind == "safetensors":
            from dnnkit.models.safetensors_io import load_tensors

            tensors = load_tensors(wref.path)
        elif wref.kind == "legacy":
            from dnnkit.models.legacy import load_legacy_state_dict

            tensors = load_legacy_state_dict(wref.path)
        else:
            raise InputError(f"--weights {weights!r} must be a .safetensors or .pt/.pth/.bin file")
        head = tensors.get("fc.weight", tensors.get("head.weight", tensors.get("classifier.weight")))
        if head is not None and "num_classes" not in spec["kwargs"]:
            spec["kwargs"]["num_classes"] = int(head.shape[0])
        files = [wref.path]
    model = build_arch(spec)
    if tensors is not None:
        load_state_into(model, tensors, weights or ref.raw)
    return LoadedModel(ref, model, spec, info_from_arch(spec, model), None, files)


def _load_hub(ref: ModelRef, trust_remote_code: bool) -> LoadedModel:
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(ref.target, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"])
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, auth: all one message
        raise InputError(f"cannot fetch {ref.raw} from the Hugging Face hub ({type(exc).__name__})",
                         hint="this machine may be offline; download the folder elsewhere and pass its path") from exc
    return _load_hf_dir(ModelRef("hf-dir", folder, ref.raw), trust_remote_code)
