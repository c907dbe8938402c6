"""What a loaded model declares about its own sampling settings: defaults, allowed ranges and choices.

The Edit tab, the app's `/edit` endpoint and `python -m model edit` all take their defaults from here, so each
model is run the way it was made to run:

* official checkpoints (v1.0 `step1x-edit-i1258`, v1.1 `step1x-edit-v1p1-official`, and their diffusers
  conversions): 28 steps, CFG 6.0, size levels 512 / 768 / 1024 (512 is the official minimum) and the CFG
  rescale cut-off each version was released with (v1.0: 1.0, i.e. never; v1.1: 0.93);
* a model whose own size level is below the official minimum (the embedded nano model, 32 px toy scenes) is
  a native-size model: it edits only at that size, with its own step count, and without CFG when its config
  says so.

Everything is read from the pipeline's saved config (`model_index.json`) or, before the weights are loaded,
from the model folder itself: this module imports neither torch nor diffusers, so the app can lay out the
Edit tab while the model is still loading.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "step1x-edit-nano"

CFG_OFF = -1.0  # the official "no CFG" value: one forward per step, no negative prompt
OFFICIAL_STEPS = 28
OFFICIAL_GUIDANCE = 6.0
OFFICIAL_SIZE_LEVELS = (512, 768, 1024)
OFFICIAL_MIN_SIZE_LEVEL = OFFICIAL_SIZE_LEVELS[0]
OFFICIAL_MAX_STEPS = 50
GUIDANCE_RANGE = (1.0, 12.0)
# The CFG norm-rescale cut-off each release shipped with: v1.0's code used 1.0 (the rescale never fires), the
# code released with v1.1 uses 0.93 (the first 4 / 5 / 6 steps at 512 / 768 / 1024).
TRUNCATE_BY_VERSION = {"v1.0": 1.0, "v1.1": 0.93}
TRUNCATE_CHOICES = (0.93, 1.0)
# A native-size model is small and fast: a few more steps than its default are worth offering, not 50.
NATIVE_MAX_STEPS = 16
# Official-layout DiT files by version, in the order the loader prefers them.
OFFICIAL_DIT_VERSIONS = {
    "step1x-edit-v1p1-official.safetensors": "v1.1",
    "step1x-edit-i1258.safetensors": "v1.0",
    "step1x-edit-i1258-FP8.safetensors": "v1.0",
}


@dataclass(frozen=True)
class EditSettings:
    """A model's recommended and allowed sampling settings.

    `size_level` is the side of the square whose area equals the working image's (not its longest side).
    `native_size` is set for models that edit only at one small size (toy scenes): inputs are reduced to it
    and results are returned at it. `side_multiple` is the pixel footprint of one token.
    """

    model_name: str
    version: str
    steps: int
    max_steps: int
    guidance: float
    size_level: int
    size_levels: tuple[int, ...]
    timesteps_truncate: float
    side_multiple: int
    native_size: int | None = None

    @property
    def cfg_applies(self) -> bool:
        return self.guidance != CFG_OFF

    @property
    def guidance_range(self) -> tuple[float, float]:
        return GUIDANCE_RANGE

    @property
    def truncate_choices(self) -> tuple[float, ...]:
        return TRUNCATE_CHOICES if self.cfg_applies else (self.timesteps_truncate,)

    def pipeline_kwargs(
        self,
        steps: int | None = None,
        guidance: float | None = None,
        size_level: int | None = None,
        timesteps_truncate: float | None = None,
    ) -> dict[str, Any]:
        """Pipeline call arguments: the given values, the model's defaults for the others."""
        return {
            "num_inference_steps": self.steps if steps is None else int(steps),
            "guidance_scale": self.guidance if guidance is None or not self.cfg_applies else float(guidance),
            "size_level": self.size_level if size_level is None else int(size_level),
            "timesteps_truncate": (
                self.timesteps_truncate if timesteps_truncate is None else float(timesteps_truncate)
            ),
        }

    def check(self, steps: int, size_level: int) -> None:
        """ValueError (with what is allowed) for settings outside what the model declares."""
        if not 1 <= steps <= self.max_steps:
            raise ValueError(f"{self.model_name} takes 1 to {self.max_steps} steps, not {steps}")
        low, high = self.size_levels[0], self.size_levels[-1]
        if not low <= size_level <= high:
            allowed = str(low) if low == high else f"{low} to {high}"
            raise ValueError(f"{self.model_name} works at size level {allowed}, not {size_level}")


def settings_from_config(config: Mapping[str, Any], has_vae: bool = True) -> EditSettings:
    """The settings a pipeline config declares (`model_index.json` entries or `pipeline.config`)."""
    version = str(config.get("version", "v1.1"))
    size_level = int(config.get("default_size_level", OFFICIAL_MIN_SIZE_LEVEL))
    guidance = float(config.get("default_guidance_scale", OFFICIAL_GUIDANCE))
    steps = int(config.get("default_steps", OFFICIAL_STEPS))
    native = size_level < OFFICIAL_MIN_SIZE_LEVEL
    levels = (size_level,) if native else tuple(sorted({*OFFICIAL_SIZE_LEVELS, size_level}))
    return EditSettings(
        model_name=str(config.get("model_name", "step1x-edit")),
        version=version,
        steps=steps,
        max_steps=max(steps, NATIVE_MAX_STEPS if native else OFFICIAL_MAX_STEPS),
        guidance=guidance,
        size_level=size_level,
        size_levels=levels,
        timesteps_truncate=TRUNCATE_BY_VERSION.get(version, TRUNCATE_BY_VERSION["v1.1"]),
        side_multiple=int(config.get("patch_size", 2)) * (8 if has_vae else 1),
        native_size=size_level if native else None,
    )


def settings_of(pipe: Any) -> EditSettings:
    """The settings of a loaded pipeline (anything with a diffusers-style `config` and `vae`)."""
    return settings_from_config(dict(pipe.config), has_vae=getattr(pipe, "vae", None) is not None)


# ---------------------------------------------------------------------------------------------------------
# Reading a model folder without loading it
# ---------------------------------------------------------------------------------------------------------


def read_edit_settings(path_or_id: str | Path | None = None) -> EditSettings:
    """The settings of the model `model.loading.load_editor(path_or_id)` would load, read from its files.

    Official folders: the version from the DiT file the loader picks. Diffusers folders: `model_index.json`
    (the diffusers fork's index has no settings: official defaults; its version from the connector's
    `scale_factor`). A Hub id not in the local cache yet: the official defaults of the newest version, which
    is the DiT the loader fetches first.
    """
    if path_or_id is None:
        folder = DEFAULT_MODEL_DIR if DEFAULT_MODEL_DIR.is_dir() else None
        return _folder_settings(folder) if folder else settings_from_config({"model_name": "tiny-random"})
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        return _folder_settings(path)
    cached = _hub_cache_folder(str(path_or_id))
    return (
        _folder_settings(cached)
        if cached
        else settings_from_config({"version": "v1.1", "model_name": "step1x-edit-v1.1"})
    )


def _folder_settings(folder: Path) -> EditSettings:
    dit = next((name for name in OFFICIAL_DIT_VERSIONS if (folder / name).is_file()), None)
    if dit is not None:
        version = OFFICIAL_DIT_VERSIONS[dit]
        return settings_from_config({"version": version, "model_name": f"step1x-edit-{version}"})
    index = _read_json(folder / "model_index.json")
    config = {k: v for k, v in index.items() if not isinstance(v, list)}  # drop the component entries
    config.setdefault("version", _diffusers_version(folder))
    config.setdefault("model_name", f"step1x-edit-{config['version']}")
    has_vae = (folder / "vae").is_dir()
    return settings_from_config(config, has_vae=has_vae)


def _diffusers_version(folder: Path) -> str:
    """v1.0 when the connector carries `scale_factor` (its config, or the fork transformer's weights)."""
    connector = _read_json(folder / "connector" / "config.json")
    if "use_scale_factor" in connector:
        return "v1.0" if connector["use_scale_factor"] else "v1.1"
    keys = {
        key for path in sorted((folder / "transformer").glob("*.safetensors")) for key in _tensor_names(path)
    }
    return "v1.0" if any(key.endswith("connector.scale_factor") for key in keys) else "v1.1"


def _tensor_names(path: Path) -> set[str]:
    """Tensor names from a safetensors header (8-byte little-endian length, then JSON)."""
    with path.open("rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        return set(json.loads(handle.read(length))) - {"__metadata__"}


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _hub_cache_folder(repo_id: str) -> Path | None:
    """The newest locally cached snapshot of a Hub repo, without touching the network."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, invalid id, offline: the caller falls back to the defaults
        return None
