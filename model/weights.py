"""Load a Step1X-Edit pipeline's components from an official-layout folder, a diffusers-layout folder or a Hub
repo id (the pipeline assembles them: `Step1XEditPipeline.from_pretrained`).

Weights are never materialised at random first: every module is built on the ``meta`` device, the checkpoint's
header is checked against it (missing / unexpected / mis-shaped keys -> :class:`CheckpointMismatchError` listing
them all, before any data is read), then tensors are streamed one at a time from the safetensors files, converted
(:mod:`model.key_mapping`), cast, moved to the target device and assigned (``load_state_dict(assign=True)``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, FluxTransformer2DModel

from model.checkpoints import (
    DIFFUSERS_VAE,
    OFFICIAL_V10,
    OFFICIAL_V11,
    OFFICIAL_VAE,
    CheckpointMismatchError,
    CompatibilityReport,
    build_on_meta,
    check_header,
    convert_for_format,
    detect_format,
    module_shapes,
    read_headers,
    refuse_unsafe_format,
    safetensors_files,
)
from model.connector import Step1XEditConnector
from model.key_mapping import (
    CONNECTOR_PREFIX,
    FLUX_VAE_CONFIG,
    CheckpointFormatError,
    infer_connector_config,
    infer_ldm_vae_config,
    infer_transformer_config,
    strip_connector_prefix,
)

# Official layout (HF repo stepfun-ai/Step1X-Edit): the DiT file (newest first; the FP8 file is the community
# one `gradio_app.py --quantized` loads, upcast to torch_dtype here), the VAE and the Qwen folder.
OFFICIAL_DIT_FILES = (
    "step1x-edit-v1p1-official.safetensors",
    "step1x-edit-i1258.safetensors",
    "step1x-edit-i1258-FP8.safetensors",
)
OFFICIAL_VAE_FILE = "vae.safetensors"
QWEN_SUBFOLDER = "Qwen2.5-VL-7B-Instruct"
QWEN_HUB_ID = "Qwen/Qwen2.5-VL-7B-Instruct"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# What a diffusers-layout or Qwen snapshot needs: configs, safetensors weights, tokenizer files. No pickles.
_HUB_PATTERNS = [
    "*.json",
    "*.safetensors",
    "*.txt",
    "*.jinja",
    "*.model",
    "*/*.json",
    "*/*.safetensors",
    "*/*.txt",
]


class ModelNotAvailableError(OSError):
    """A Hub model could not be fetched (offline, no network, unknown or gated repo)."""


# --------------------------------------------------------------------------------------------------------------
# Devices and dtypes
# --------------------------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA (the official dtype), fp32 on CPU (bf16 matmuls are slow and less exact there)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


# --------------------------------------------------------------------------------------------------------------
# Streaming, checked loading of modules from safetensors files
# --------------------------------------------------------------------------------------------------------------


def check_component(
    specs: Mapping[str, tuple[type, Mapping]], files: list[Path]
) -> tuple[dict[str, torch.nn.Module], CompatibilityReport]:
    """Build ``specs`` (name -> (class, config)) on meta and report ``files``' headers against them."""
    modules = {name: build_on_meta(cls, config) for name, (cls, config) in specs.items()}
    expected = {name: module_shapes(module) for name, module in modules.items()}
    label = str(files[0].parent if len(files) > 1 else files[0])
    return modules, check_header(label, read_headers(files), expected, _hidden_size(modules))


def load_modules(
    specs: Mapping[str, tuple[type, Mapping]],
    files: list[Path],
    dtypes: Mapping[str, torch.dtype],
    device: torch.device,
) -> dict[str, torch.nn.Module]:
    """Build ``specs`` (name -> (class, config)) on meta, check ``files`` against them, stream and assign.

    The DiT mapping is per tensor, so DiT files stream one tensor at a time; the LDM VAE converter needs the
    whole (335 MB) file at once.
    """
    modules, report = check_component(specs, files)
    if not report.compatible:
        raise CheckpointMismatchError(report)
    fmt, hidden = report.format, _hidden_size(modules)

    state: dict[str, dict[str, torch.Tensor]] = {name: {} for name in modules}
    for tensors in _stream_tensors(files, per_tensor=fmt != OFFICIAL_VAE):
        converted = convert_for_format(fmt, tensors, hidden)
        for name, items in converted.modules.items():
            for key, tensor in items.items():
                # Parts of a fused qkv/linear1 tensor stay views of it when .to() need not copy: no extra memory.
                state[name][key] = tensor.to(device=device, dtype=dtypes[name])
    for name, module in modules.items():
        module.load_state_dict(state.pop(name), strict=True, assign=True)
        left_on_meta = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
        if left_on_meta:
            raise CheckpointFormatError(f"{name}: tensors not provided by the checkpoint: {left_on_meta}")
        module.eval()
    return modules


def _hidden_size(modules: Mapping[str, torch.nn.Module]) -> int:
    transformer = modules.get("transformer")
    if transformer is None:
        return 0
    return transformer.config.num_attention_heads * transformer.config.attention_head_dim


def _stream_tensors(files: list[Path], per_tensor: bool):
    """Yield ``{key: tensor}`` dicts: one tensor at a time, or one whole file at a time."""
    from safetensors import safe_open

    for path in files:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            if per_tensor:
                for key in handle.keys():  # noqa: SIM118 - safe_open is not a Mapping
                    yield {key: handle.get_tensor(key)}
            else:
                yield {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118


def _dit_specs(shapes: Mapping[str, tuple[int, ...]], fmt: str) -> dict[str, tuple[type, dict]]:
    """Flux + connector configs read off an official DiT checkpoint's shapes."""
    transformer = infer_transformer_config(shapes)
    connector_shapes = {k: s for key, s in shapes.items() if (k := strip_connector_prefix(key)) is not None}
    specs: dict[str, tuple[type, dict]] = {"transformer": (FluxTransformer2DModel, transformer)}
    if connector_shapes or fmt in (OFFICIAL_V10, OFFICIAL_V11):
        connector = infer_connector_config(connector_shapes, transformer["attention_head_dim"])
        specs["connector"] = (Step1XEditConnector, connector)
    return specs


def _module_dtypes(torch_dtype: torch.dtype) -> dict[str, torch.dtype]:
    # The official code keeps the VAE in fp32 whatever the DiT's dtype.
    return {"transformer": torch_dtype, "connector": torch_dtype, "vae": torch.float32}


def load_official_dit(
    path: Path, torch_dtype: torch.dtype, device: torch.device
) -> tuple[FluxTransformer2DModel, Step1XEditConnector]:
    """The DiT + connector from an official ``step1x-edit-*.safetensors`` (sizes read off the shapes)."""
    header = read_headers([path])
    fmt = detect_format(header.tensors)
    if fmt not in (OFFICIAL_V10, OFFICIAL_V11):
        raise CheckpointFormatError(f"{path}: expected an official Step1X-Edit DiT checkpoint, found {fmt}")
    shapes = {name: info.shape for name, info in header.tensors.items()}
    modules = load_modules(_dit_specs(shapes, fmt), [path], _module_dtypes(torch_dtype), device)
    return modules["transformer"], modules["connector"]


def load_vae_file(path: Path, device: torch.device) -> AutoencoderKL:
    """A FLUX VAE from a single safetensors file in BFL/LDM (official ``vae.safetensors``) or diffusers names."""
    header = read_headers([path])
    fmt = detect_format(header.tensors)
    if fmt == OFFICIAL_VAE:
        config = infer_ldm_vae_config({name: info.shape for name, info in header.tensors.items()})
    elif fmt == DIFFUSERS_VAE:
        config = FLUX_VAE_CONFIG
    else:
        raise CheckpointFormatError(f"{path}: expected a FLUX VAE, found {fmt}")
    return load_modules({"vae": (AutoencoderKL, config)}, [path], _module_dtypes(torch.float32), device)[
        "vae"
    ]


# --------------------------------------------------------------------------------------------------------------
# Qwen2.5-VL and its processor
# --------------------------------------------------------------------------------------------------------------


def load_processor(folder: Path, min_pixels: int | None = None, max_pixels: int | None = None):
    """Qwen2.5-VL processor from a folder, with the slow PIL image processor (no torchvision needed)."""
    from transformers import AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from model.encoder import Qwen25VLImageProcessor

    pixels = {} if min_pixels is None else {"min_pixels": min_pixels, "max_pixels": max_pixels}
    tokenizer = AutoTokenizer.from_pretrained(folder)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(folder, **pixels)
    chat_template = _read_chat_template(folder) or tokenizer.chat_template
    return Qwen25VLImageProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template
    )


def _read_chat_template(folder: Path) -> str | None:
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text()
    if (folder / "chat_template.json").is_file():
        return json.loads((folder / "chat_template.json").read_text())["chat_template"]
    return None


def load_text_encoder(folder: Path, torch_dtype: torch.dtype, device: torch.device):
    """Qwen2.5-VL from a transformers folder (safetensors only), on ``device``."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    if not any(folder.glob("*.safetensors")):
        safetensors_files(folder)  # raises the "no .safetensors (pickles refused)" message
    model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        folder, dtype=torch_dtype, use_safetensors=True, output_loading_info=True
    )
    # transformers only warns and random-initialises what is missing; a half-random encoder must not load.
    # (Unexpected tensors alone change nothing in the model, so they are listed but not fatal.)
    wrong = {
        kind: sorted(map(str, info.get(f"{kind}_keys") or []))
        for kind in ("missing", "unexpected", "mismatched")
    }
    if wrong["missing"] or wrong["mismatched"]:
        details = "; ".join(f"{kind}: {', '.join(keys)}" for kind, keys in wrong.items() if keys)
        raise CheckpointFormatError(
            f"{folder}: the Qwen2.5-VL weights do not fit its config.json ({details})"
        )
    return model.to(device).eval()


def _official_qwen_folder(folder: Path, text_encoder: str | Path | None) -> Path:
    """``<folder>/Qwen2.5-VL-7B-Instruct`` as ``inference.py`` expects, else the given path/id, else the Hub."""
    if text_encoder is None and (folder / QWEN_SUBFOLDER).is_dir():
        return folder / QWEN_SUBFOLDER
    return resolve_local_or_hub(str(text_encoder or QWEN_HUB_ID), _HUB_PATTERNS)


# --------------------------------------------------------------------------------------------------------------
# Folder layouts
# --------------------------------------------------------------------------------------------------------------


def load_official_folder(
    folder: Path, torch_dtype: torch.dtype, device: torch.device, text_encoder: str | Path | None = None
) -> dict[str, Any]:
    """(a) ``step1x-edit-*.safetensors`` + ``vae.safetensors`` + Qwen (sub-folder, path or Hub id): the
    pipeline's components and settings."""
    from model.encoder import DEFAULT_DROP_TOKENS, DEFAULT_MAX_LENGTH, QWEN_MAX_PIXELS, QWEN_MIN_PIXELS
    from model.sampling import flux_scheduler

    dit_path = next((folder / name for name in OFFICIAL_DIT_FILES if (folder / name).is_file()), None)
    if dit_path is None or not (folder / OFFICIAL_VAE_FILE).is_file():
        raise CheckpointFormatError(
            f"{folder}: an official-layout folder needs one of {', '.join(OFFICIAL_DIT_FILES)} and "
            f"{OFFICIAL_VAE_FILE} (plus {QWEN_SUBFOLDER}/ or a Qwen Hub id)"
        )
    transformer, connector = load_official_dit(dit_path, torch_dtype, device)
    vae = load_vae_file(folder / OFFICIAL_VAE_FILE, device)
    qwen = _official_qwen_folder(folder, text_encoder)
    version = "v1.0" if connector.config.use_scale_factor else "v1.1"
    return dict(
        text_encoder=load_text_encoder(qwen, torch_dtype, device),
        processor=load_processor(qwen, QWEN_MIN_PIXELS, QWEN_MAX_PIXELS),
        connector=connector,
        transformer=transformer,
        vae=vae,
        scheduler=flux_scheduler(),
        version=version,
        max_length=DEFAULT_MAX_LENGTH,
        drop_tokens=DEFAULT_DROP_TOKENS,
        model_name=f"step1x-edit-{version}",
    )


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointFormatError(f"{folder}: config.json is missing")
    return json.loads(path.read_text())


def _init_kwargs(cls: type, config: Mapping) -> dict:
    """The constructor arguments among a saved config's entries (drops ``_class_name`` and the like)."""
    init, _unused, _hidden = cls.extract_init_dict(dict(config))
    return dict(init)


def _fork_transformer_specs(config: Mapping, keys: set[str]) -> dict[str, tuple[type, dict]]:
    """Flux + connector configs from the diffusers fork's ``Step1XEditTransformer2DModel`` config."""
    if config.get("enable_text_token_mapping"):
        raise CheckpointFormatError(
            "this transformer enables text_token_mapping (Step1X-Edit v1.2): not supported"
        )
    flux = {
        "patch_size": config.get("patch_size", 1),
        "in_channels": config.get("in_channels", 64),
        "out_channels": config.get("out_channels"),
        "num_layers": config.get("num_layers", 19),
        "num_single_layers": config.get("num_single_layers", 38),
        "attention_head_dim": config.get("attention_head_dim", 128),
        "num_attention_heads": config.get("num_attention_heads", 24),
        "joint_attention_dim": config.get("joint_attention_dim", 4096),
        "pooled_projection_dim": config.get("vector_in_dim", 768),
        "guidance_embeds": config.get("guidance_embeds", False),
        "axes_dims_rope": tuple(config.get("axes_dims_rope", (16, 56, 56))),
    }
    connector = {
        "in_channels": config.get("connector_in_channels", 3584),
        "hidden_size": config.get("connector_hidden_size", 4096),
        "num_heads": config.get("connector_heads_num", 32),
        "depth": config.get("connector_depth", 2),
        "pooled_dim": config.get("vector_in_dim", 768),
        "use_scale_factor": CONNECTOR_PREFIX + "scale_factor" in keys,
    }
    return {"transformer": (FluxTransformer2DModel, flux), "connector": (Step1XEditConnector, connector)}


def diffusers_components(folder: Path) -> dict[str, tuple[dict[str, tuple[type, dict]], list[Path]]]:
    """Per sub-folder: the module specs its ``config.json`` defines and its safetensors files.

    The fork's ``Step1XEditTransformer2DModel`` holds the connector; this project's layout has ``connector/``.
    A missing ``vae/`` is a pixel-space model.
    """
    transformer_dir = folder / "transformer"
    transformer_config = _read_config(transformer_dir)
    files = safetensors_files(transformer_dir)
    if transformer_config.get("_class_name") == "Step1XEditTransformer2DModel":
        specs = _fork_transformer_specs(transformer_config, set(read_headers(files).tensors))
    else:
        specs = {
            "transformer": (FluxTransformer2DModel, _init_kwargs(FluxTransformer2DModel, transformer_config))
        }
    components = {"transformer": (specs, files)}
    if "connector" not in specs:
        connector_dir = folder / "connector"
        connector_spec = (Step1XEditConnector, _init_kwargs(Step1XEditConnector, _read_config(connector_dir)))
        components["connector"] = ({"connector": connector_spec}, safetensors_files(connector_dir))
    vae_dir = folder / "vae"
    if vae_dir.is_dir():
        vae_spec = (AutoencoderKL, _init_kwargs(AutoencoderKL, _read_config(vae_dir)))
        components["vae"] = ({"vae": vae_spec}, safetensors_files(vae_dir))
    return components


def load_diffusers_folder(folder: Path, torch_dtype: torch.dtype, device: torch.device) -> dict[str, Any]:
    """(b) ``save_pretrained`` output (transformer/ + connector/) or the fork's layout (connector inside): the
    components, and every entry of ``model_index.json`` (the pipeline keeps its own settings among them)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    index = (
        json.loads((folder / "model_index.json").read_text())
        if (folder / "model_index.json").is_file()
        else {}
    )
    modules: dict[str, torch.nn.Module] = {}
    for specs, files in diffusers_components(folder).values():
        modules |= load_modules(specs, files, _module_dtypes(torch_dtype), device)
    scheduler_dir = folder / "scheduler"
    scheduler = (
        FlowMatchEulerDiscreteScheduler.from_pretrained(scheduler_dir) if scheduler_dir.is_dir() else None
    )
    config = dict(index)
    config.setdefault("version", "v1.0" if modules["connector"].config.use_scale_factor else "v1.1")
    config.setdefault("model_name", f"step1x-edit-{config['version']}")
    return dict(
        config,
        text_encoder=load_text_encoder(folder / "text_encoder", torch_dtype, device),
        processor=load_processor(folder / "processor"),
        connector=modules["connector"],
        transformer=modules["transformer"],
        vae=modules.get("vae"),
        scheduler=scheduler,
    )


# --------------------------------------------------------------------------------------------------------------
# Hub
# --------------------------------------------------------------------------------------------------------------


def download_from_hub(repo_id: str, allow_patterns: list[str] | None = None) -> Path:
    """Snapshot a Hub repo (safetensors and configs only); a clear :class:`ModelNotAvailableError` offline."""
    import httpx
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        return Path(snapshot_download(repo_id, allow_patterns=allow_patterns or _HUB_PATTERNS))
    except (OfflineModeIsEnabled, LocalEntryNotFoundError, HfHubHTTPError, httpx.HTTPError, OSError) as exc:
        raise ModelNotAvailableError(
            f"cannot fetch the Hub model {repo_id!r}: {exc.__class__.__name__}: {exc}. The Hub is unreachable "
            "(HF_HUB_OFFLINE=1 or no network) and the model is not in the local Hugging Face cache. Download it "
            "on a connected machine (huggingface-cli download ...) and pass the local folder instead."
        ) from exc


def _official_hub_patterns(repo_id: str) -> list[str]:
    """For the official repo fetch only the newest DiT and the VAE (not both 25 GB DiTs nor the LoRA)."""
    from huggingface_hub import model_info

    try:  # one request (the tree listing would retry for a minute without network)
        files = {sibling.rfilename for sibling in model_info(repo_id).siblings or []}
    except Exception:  # offline or unknown repo: let the snapshot call report it clearly
        return _HUB_PATTERNS
    if "model_index.json" in files:
        return _HUB_PATTERNS
    dit = next((name for name in OFFICIAL_DIT_FILES if name in files), None)
    return [dit, OFFICIAL_VAE_FILE] if dit else _HUB_PATTERNS


def resolve_local_or_hub(path_or_id: str | Path, allow_patterns: list[str] | None = None) -> Path:
    """An existing local folder as is; ``owner/name`` from the Hub; anything else a clear error."""
    path = Path(path_or_id).expanduser()
    if path.exists():
        if path.is_file():
            refuse_unsafe_format(path)
            raise CheckpointFormatError(
                f"{path} is a file: pass the model folder (official: step1x-edit-*.safetensors + vae.safetensors; "
                "diffusers: transformer/, connector/, vae/, ...); use `python -m model inspect FILE` to check a file"
            )
        return path
    if _HUB_ID.fullmatch(str(path_or_id)):
        return download_from_hub(str(path_or_id), allow_patterns)
    raise FileNotFoundError(f"{path_or_id}: no such model folder, and not a Hub repo id (owner/name)")


# --------------------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------------------


def load_components(
    path_or_id: str | Path,
    torch_dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    text_encoder: str | Path | None = None,
) -> dict[str, Any]:
    """Components and settings of a Step1X-Edit pipeline from an official folder, a diffusers folder or a Hub
    repo id (a diffusers folder also passes the rest of its ``model_index.json``).

    ``text_encoder`` overrides where an official-layout folder finds Qwen2.5-VL (folder or Hub id).
    """
    target = resolve_device(device)
    dtype = torch_dtype or default_dtype(target)
    is_hub = not Path(path_or_id).expanduser().exists()
    folder = resolve_local_or_hub(path_or_id, _official_hub_patterns(str(path_or_id)) if is_hub else None)
    if any((folder / name).is_file() for name in OFFICIAL_DIT_FILES):
        return load_official_folder(folder, dtype, target, text_encoder)
    if (folder / "transformer").is_dir():
        return load_diffusers_folder(folder, dtype, target)
    raise CheckpointFormatError(
        f"{folder}: not a Step1X-Edit model folder. Expected the official layout ({' or '.join(OFFICIAL_DIT_FILES)} "
        f"+ {OFFICIAL_VAE_FILE}) or the diffusers layout (transformer/, connector/, vae/, text_encoder/, processor/)"
    )
