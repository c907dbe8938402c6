"""Entry points that return a ready pipeline: `load_pipeline` (official folder, diffusers folder or Hub id) and
`load_editor` (what the app and the command line edit with). The checked, streaming loading of the components
is `model.weights`; the pipeline assembles them in `Step1XEditPipeline.from_pretrained`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from model.edit_settings import DEFAULT_MODEL_DIR
from model.pipeline import Step1XEditPipeline
from model.weights import ModelNotAvailableError, resolve_device

__all__ = ["DEFAULT_MODEL_DIR", "ModelNotAvailableError", "load_editor", "load_pipeline"]


def load_pipeline(
    path_or_id: str | Path,
    torch_dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    text_encoder: str | Path | None = None,
) -> Step1XEditPipeline:
    """Load a Step1X-Edit pipeline from an official folder, a diffusers folder or a Hub repo id.

    ``text_encoder`` overrides where an official-layout folder finds Qwen2.5-VL (folder or Hub id).
    """
    return Step1XEditPipeline.from_pretrained(
        str(path_or_id), torch_dtype=torch_dtype, device=device, text_encoder=text_encoder
    )


def load_editor(
    path_or_id: str | Path | None = None, device: str | torch.device | None = None
) -> Step1XEditPipeline:
    """The app's editor: the given model, else the embedded nano model, else a labelled tiny random pipeline."""
    if path_or_id is not None:
        return load_pipeline(path_or_id, device=device)
    if DEFAULT_MODEL_DIR.is_dir():
        return load_pipeline(DEFAULT_MODEL_DIR, device=device)
    from model.tiny import tiny_pipeline

    return tiny_pipeline().to(resolve_device(device))
