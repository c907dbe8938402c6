"""Checkpoint checking: safetensors headers, format/version detection and key compatibility reports.

Everything here works from the safetensors *header* only: tensor names, dtypes and shapes become ``meta``
tensors, go through the same key mapping the loader uses (:mod:`model.key_mapping`), and are compared with the
model definition built on the meta device. So a 25 GB checkpoint is checked without reading its data.

The ``inspect`` command built on it is :mod:`model.inspection`.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from model.key_mapping import (
    CONNECTOR_PREFIX,
    FLUX_VAE_CONFIG,
    OFFICIAL_CONNECTOR_CONFIG,
    CheckpointFormatError,
    Conversion,
    convert_dit_state_dict,
    convert_ldm_vae_state_dict,
    ldm_vae_key_for,
    official_dit_key_for,
    strip_connector_prefix,
)

# Formats detected from key names.
OFFICIAL_V10 = "official v1.0"
OFFICIAL_V11 = "official v1.1"
DIFFUSERS_TRANSFORMER = "diffusers transformer"
DIFFUSERS_CONNECTOR = "diffusers connector"
OFFICIAL_VAE = "official VAE (BFL/LDM layout)"
DIFFUSERS_VAE = "diffusers VAE"
KOHYA_LORA = "kohya LoRA"

_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1}
_DTYPE_BYTES |= {"I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
_TORCH_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
_REFUSED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# Built with nn.Linear / nn.Parameter defaults (fp32) inside the official bf16 connector.
_OFFICIAL_FP32_CONNECTOR = ("global_proj_out.", "scale_factor")
# Notes on a file stored uniformly in a dtype other than the BF16 of the official DiT release.
_UNIFORM_NOTES = {
    "F32": "full precision, twice the size of the BF16 release; cast to the load dtype",
    "F8_E4M3": "an fp8 file; upcast to the load dtype, the fp8 rounding of the weights stays",
    "F8_E5M2": "an fp8 file; upcast to the load dtype, the fp8 rounding of the weights stays",
}


class CheckpointMismatchError(ValueError):
    """The checkpoint's keys or shapes do not fit the model definition; ``report`` lists every difference."""

    def __init__(self, report: CompatibilityReport):
        self.report = report
        super().__init__(report.to_text())


# --------------------------------------------------------------------------------------------------------------
# Header reading
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorInfo:
    """A tensor as a safetensors header declares it (dtype name as in the file, e.g. ``BF16``)."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count


@dataclass
class SafetensorsHeader:
    """The parsed header of one file (or the merged headers of shards)."""

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    problems: list[str] = field(default_factory=list)  # inconsistencies that do not stop inspection


def refuse_unsafe_format(path: Path) -> None:
    """Pickle-based weight files can run code on load: this project reads safetensors only."""
    if path.suffix.lower() in _REFUSED_SUFFIXES:
        raise CheckpointFormatError(
            f"{path}: {path.suffix} files are pickles that can execute code when loaded; only .safetensors "
            "files are accepted (convert it with safetensors.torch.save_file in a trusted environment)"
        )


def read_safetensors_header(path: str | Path) -> SafetensorsHeader:
    """Parse a safetensors header (8-byte little-endian length + JSON) without touching the tensor data."""
    path = Path(path)
    refuse_unsafe_format(path)
    file_size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointFormatError(f"{path}: {file_size} bytes is too short for a safetensors file")
        (header_size,) = struct.unpack("<Q", prefix)
        if header_size > _MAX_HEADER_BYTES or 8 + header_size > file_size:
            raise CheckpointFormatError(
                f"{path}: not a safetensors file (header length {header_size} is invalid)"
            )
        raw = handle.read(header_size)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointFormatError(f"{path}: not a safetensors file (header is not JSON: {exc})") from None
    except RecursionError:  # a real header is one flat object; the parser recurses per nesting level
        raise CheckpointFormatError(
            f"{path}: not a safetensors file (header JSON nested too deeply)"
        ) from None
    if not isinstance(header, dict):
        raise CheckpointFormatError(f"{path}: not a safetensors file (header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    tensors: dict[str, TensorInfo] = {}
    problems: list[str] = []
    data_end = 0
    for name, entry in header.items():
        try:
            info = TensorInfo(str(entry["dtype"]), tuple(int(s) for s in entry["shape"]))
            begin, end = (int(x) for x in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointFormatError(f"{path}: malformed header entry for tensor {name!r}") from None
        width = _DTYPE_BYTES.get(info.dtype)
        if width is not None and end - begin != info.numel * width:
            problems.append(
                f"{name}: {end - begin} data bytes for a {info.dtype} tensor of shape {list(info.shape)}"
            )
        tensors[name] = info
        data_end = max(data_end, end)
    available = file_size - 8 - header_size
    if data_end > available:
        problems.append(
            f"file is truncated: the header declares {data_end} data bytes, the file holds {available}"
        )
    return SafetensorsHeader(tensors, metadata, problems)


def safetensors_files(path: str | Path) -> list[Path]:
    """The safetensors file itself, or every ``*.safetensors`` in a folder (e.g. transformer shards)."""
    path = Path(path)
    refuse_unsafe_format(path)
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if not files:
            pickles = sorted(p.name for p in path.iterdir() if p.suffix.lower() in _REFUSED_SUFFIXES)
            hint = f" (found {', '.join(pickles)}: pickle formats are refused)" if pickles else ""
            raise CheckpointFormatError(f"{path}: no .safetensors files{hint}")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file or folder")
    return [path]


def read_headers(paths: Iterable[Path]) -> SafetensorsHeader:
    """Merge the headers of several files (shards); a tensor name in two files is reported."""
    merged = SafetensorsHeader({}, {})
    for path in paths:
        header = read_safetensors_header(path)
        duplicated = merged.tensors.keys() & header.tensors.keys()
        merged.problems += [f"{path.name}: {p}" for p in header.problems]
        merged.problems += [f"{name} appears in more than one file" for name in sorted(duplicated)]
        merged.tensors.update(header.tensors)
        merged.metadata.update(header.metadata)
    return merged


# --------------------------------------------------------------------------------------------------------------
# Format detection and model definitions
# --------------------------------------------------------------------------------------------------------------


def detect_format(keys: Iterable[str]) -> str:
    """Name the checkpoint layout from its tensor names (see the module constants)."""
    keys = set(keys)

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if has("lora_unet_") or has("lora_te"):
        return KOHYA_LORA
    if has("double_blocks.") or has("single_blocks."):
        return OFFICIAL_V10 if CONNECTOR_PREFIX + "scale_factor" in keys else OFFICIAL_V11
    if has("transformer_blocks.") or has("single_transformer_blocks."):
        return DIFFUSERS_TRANSFORMER
    if has("S.individual_token_refiner.") or has("global_proj_out."):
        return DIFFUSERS_CONNECTOR
    if has("encoder.down."):
        return OFFICIAL_VAE
    if has("encoder.down_blocks."):
        return DIFFUSERS_VAE
    raise CheckpointFormatError(
        "unknown checkpoint layout: expected official Step1X-Edit (double_blocks.*), diffusers "
        "(transformer_blocks.*), a connector, a FLUX VAE or a kohya LoRA"
    )


def detect_version(keys: Iterable[str]) -> str | None:
    """``v1.0`` when the connector's ``scale_factor`` is present, ``v1.1`` when a connector without it is."""
    keys = set(keys)
    if "scale_factor" in keys or CONNECTOR_PREFIX + "scale_factor" in keys:
        return "v1.0"
    if any(k.startswith(("S.", CONNECTOR_PREFIX)) for k in keys):
        return "v1.1"
    return None


def build_on_meta(module_cls: type, config: Mapping) -> torch.nn.Module:
    """Instantiate a module without allocating its weights."""
    with torch.device("meta"):
        return module_cls(**config)


def module_shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """State-dict key -> shape (works on meta modules)."""
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


@lru_cache(maxsize=8)
def _full_size_shapes(component: str, use_scale_factor: bool = False) -> dict[str, tuple[int, ...]]:
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    from model.connector import Step1XEditConnector

    if component == "transformer":
        return module_shapes(build_on_meta(FluxTransformer2DModel, {}))
    if component == "connector":
        config = dict(OFFICIAL_CONNECTOR_CONFIG, use_scale_factor=use_scale_factor)
        return module_shapes(build_on_meta(Step1XEditConnector, config))
    return module_shapes(build_on_meta(AutoencoderKL, FLUX_VAE_CONFIG))


def full_size_definition(fmt: str, keys: Iterable[str]) -> dict[str, dict[str, tuple[int, ...]]]:
    """Expected shapes per module of the official full-size model for a checkpoint of format ``fmt``."""
    keys = set(keys)
    v10 = detect_version(keys) == "v1.0"
    expected: dict[str, dict[str, tuple[int, ...]]] = {}
    if fmt in (OFFICIAL_V10, OFFICIAL_V11, DIFFUSERS_TRANSFORMER):
        expected["transformer"] = _full_size_shapes("transformer")
    # A diffusers transformer folder may hold the connector (the fork) or not (this project's layout).
    if fmt in (OFFICIAL_V10, OFFICIAL_V11, DIFFUSERS_CONNECTOR) or any(
        k.startswith(CONNECTOR_PREFIX) for k in keys
    ):
        expected["connector"] = _full_size_shapes("connector", v10)
    if fmt in (OFFICIAL_VAE, DIFFUSERS_VAE):
        expected["vae"] = _full_size_shapes("vae")
    return expected


# --------------------------------------------------------------------------------------------------------------
# Conversion of a header and comparison with a definition
# --------------------------------------------------------------------------------------------------------------


def meta_tensors(tensors: Mapping[str, TensorInfo]) -> dict[str, torch.Tensor]:
    """Data-free stand-ins for the header's tensors (dtype kept where torch has it)."""
    return {
        name: torch.empty(info.shape, dtype=_TORCH_DTYPES.get(info.dtype, torch.uint8), device="meta")
        for name, info in tensors.items()
    }


def convert_for_format(fmt: str, tensors: Mapping[str, torch.Tensor], hidden_size: int) -> Conversion:
    """Run the loader's key mapping for ``fmt`` (works on meta and on real tensors alike)."""
    if fmt in (OFFICIAL_V10, OFFICIAL_V11):
        return convert_dit_state_dict(tensors, hidden_size, layout="official")
    if fmt == DIFFUSERS_TRANSFORMER:
        return convert_dit_state_dict(tensors, hidden_size, layout="diffusers")
    if fmt == OFFICIAL_VAE:
        return convert_ldm_vae_state_dict(tensors, FLUX_VAE_CONFIG)
    module = "connector" if fmt == DIFFUSERS_CONNECTOR else "vae"
    result = Conversion()
    for key, tensor in tensors.items():
        result.add(module, key, tensor, key)
    return result


@dataclass
class CompatibilityReport:
    """What a checkpoint holds and how it differs from a model definition."""

    path: str
    format: str
    version: str | None
    tensor_count: int
    parameter_count: int
    dtypes: dict[str, int]
    dtype: str | None = None  # the file's own dtype (its most common one)
    dtype_outliers: list[str] = field(default_factory=list)  # "name: DTYPE" for tensors stored otherwise
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mis_shaped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def compatible(self) -> bool:
        return not (self.missing or self.unexpected or self.mis_shaped or self.problems)

    def to_dict(self) -> dict:
        return asdict(self) | {"compatible": self.compatible}

    def _precision_lines(self) -> list[str]:
        """The file's dtype, called out when uniform and unusual, and every tensor stored in another dtype."""
        if self.dtype is None:
            return []
        if not self.dtype_outliers:
            uniform = len(self.dtypes) == 1
            note = _UNIFORM_NOTES.get(self.dtype) if uniform else None
            if self.dtype == "F32" and self.format not in (OFFICIAL_V10, OFFICIAL_V11):
                note = None  # VAEs and small diffusers models are fp32 by design
            suffix = f" ({note})" if note else ""
            return [f"precision:  {'all ' if uniform else ''}{self.dtype}{suffix}"]
        lines = [f"precision:  {self.dtype}, but {len(self.dtype_outliers)} tensor(s) stored otherwise:"]
        return lines + [f"  {item}" for item in self.dtype_outliers]

    def to_text(self) -> str:
        """The human-readable report ``inspect`` prints."""
        dtypes = ", ".join(f"{d} ({n})" for d, n in sorted(self.dtypes.items()))
        version = f" ({self.version})" if self.version and self.version not in self.format else ""
        lines = [
            f"checkpoint: {self.path}",
            f"format:     {self.format}{version}",
            f"tensors:    {self.tensor_count}",
            f"parameters: {self.parameter_count:,} ({self.parameter_count / 1e9:.3f} B)",
            f"dtypes:     {dtypes}",
            *self._precision_lines(),
        ]
        if self.compatible:
            lines.append("compatible: yes (no missing, unexpected or mis-shaped keys)")
            return "\n".join(lines)
        counts = [
            f"{len(self.missing)} missing",
            f"{len(self.unexpected)} unexpected",
            f"{len(self.mis_shaped)} mis-shaped",
            f"{len(self.problems)} other problems",
        ]
        lines.append("compatible: NO (" + ", ".join(counts) + ")")
        for title, items in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("mis-shaped", self.mis_shaped),
            ("problems", self.problems),
        ):
            lines += [f"{title}:"] + [f"  {item}" for item in items] if items else []
        return "\n".join(lines)


def _display_name(module: str, key: str, layout_official: bool, vae_levels: int) -> str:
    """A missing key in the checkpoint's own naming, so users can grep their file for it."""
    if module == "connector":
        return CONNECTOR_PREFIX + key if layout_official else key
    if module == "transformer" and layout_official:
        return official_dit_key_for(key) or key
    if module == "vae" and layout_official:
        return ldm_vae_key_for(key, vae_levels)
    return key


def compare_conversion(
    conversion: Conversion,
    expected: Mapping[str, Mapping[str, Sequence[int]]],
    source_shapes: Mapping[str, Sequence[int]],
    layout_official: bool,
    prefix_connector: bool | None = None,
) -> tuple[list[str], list[str], list[str], list[str]]:
    """Missing, unexpected, mis-shaped keys and conversion problems of ``conversion`` against ``expected``.

    ``prefix_connector`` says whether connector keys carried the ``connector.`` prefix in the file (default:
    as official).
    """
    prefix_connector = layout_official if prefix_connector is None else prefix_connector
    missing: list[str] = []
    unexpected = list(conversion.unmapped)
    mis_shaped: list[str] = []
    for module, keys in conversion.modules.items():
        wanted = expected.get(module, {})
        for key, tensor in keys.items():
            source = conversion.origin[f"{module}:{key}"]
            if key not in wanted:
                unexpected.append(source)
            elif tuple(tensor.shape) != tuple(wanted[key]):
                via = "" if source == key else f" (as {module} {key})"
                stored = list(source_shapes.get(source, tensor.shape))
                # Fused tensors (qkv, linear1) are split first: then say what the part came out as.
                got = "" if stored == list(tensor.shape) else f" gives {list(tensor.shape)}"
                mis_shaped.append(
                    f"{source}{via}: checkpoint {stored}{got}, model expects {list(wanted[key])}"
                )
    for module, wanted in expected.items():
        present = conversion.modules.get(module, {})
        official = prefix_connector if module == "connector" else layout_official
        levels = len({k.split(".")[2] for k in wanted if k.startswith("decoder.up_blocks.")})
        names = {_display_name(module, k, official, levels) for k in wanted if k not in present}
        missing += sorted(names)
    problems = [f"{key}: {why}" for key, why in conversion.errors.items()]
    return missing, sorted(set(unexpected)), mis_shaped, problems


def _in_official_names(fmt: str) -> bool:
    """Whether the file names its tensors the official (BFL/LDM) way rather than the diffusers way."""
    return fmt in (OFFICIAL_V10, OFFICIAL_V11, OFFICIAL_VAE)


def dtype_findings(tensors: Mapping[str, TensorInfo]) -> tuple[str | None, list[str]]:
    """The file's own dtype (the most common one) and each tensor stored in another, as ``name: DTYPE``.

    The connector tensors the official module creates in fp32 inside its bf16 module (``global_proj_out``,
    ``scale_factor``) may stay fp32 in a bf16 file.
    """
    counts = Counter(info.dtype for info in tensors.values())
    if not counts:
        return None, []
    own = counts.most_common(1)[0][0]
    outliers = [
        f"{name}: {info.dtype}"
        for name, info in tensors.items()
        if info.dtype != own and not (info.dtype == "F32" and _kept_fp32_officially(name))
    ]
    return own, sorted(outliers)


def _kept_fp32_officially(name: str) -> bool:
    key = strip_connector_prefix(name) or name
    return key.startswith(_OFFICIAL_FP32_CONNECTOR)


def header_report(label: str, header: SafetensorsHeader) -> CompatibilityReport:
    """What the header itself says: format, version, counts, dtypes and dtype outliers (no key check)."""
    own, outliers = dtype_findings(header.tensors)
    return CompatibilityReport(
        path=label,
        format=detect_format(header.tensors),
        version=detect_version(header.tensors),
        tensor_count=len(header.tensors),
        parameter_count=sum(info.numel for info in header.tensors.values()),
        dtypes=dict(Counter(info.dtype for info in header.tensors.values())),
        dtype=own,
        dtype_outliers=outliers,
        problems=list(header.problems),
    )


def check_header(
    label: str,
    header: SafetensorsHeader,
    expected: Mapping[str, Mapping[str, Sequence[int]]] | None = None,
    hidden_size: int | None = None,
) -> CompatibilityReport:
    """Report a checkpoint header against ``expected`` shapes per module (default: the full-size model).

    ``hidden_size`` is the DiT width used to split fused official tensors (default: the full-size 3072).
    A kohya LoRA is not a model: `model.inspection.inspect_checkpoint` reports it against the DiT instead.
    """
    report = header_report(label, header)
    fmt = report.format
    if fmt == KOHYA_LORA:
        raise CheckpointFormatError(f"{label}: a kohya LoRA, not model weights (load it with model.lora)")
    if expected is None:
        expected = full_size_definition(fmt, header.tensors)
    if hidden_size is None:
        hidden_size = _full_size_shapes("transformer")["x_embedder.weight"][0]
    conversion = convert_for_format(fmt, meta_tensors(header.tensors), hidden_size)
    shapes = {name: info.shape for name, info in header.tensors.items()}
    missing, unexpected, mis_shaped, problems = compare_conversion(
        conversion, expected, shapes, _in_official_names(fmt), prefix_connector=fmt != DIFFUSERS_CONNECTOR
    )
    report.missing, report.unexpected, report.mis_shaped = missing, unexpected, mis_shaped
    report.problems += problems
    return report
