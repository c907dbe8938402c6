"""Step1X-Edit: Qwen2.5-VL encoder -> connector -> FLUX-style DiT -> VAE, as a diffusers-style pipeline."""

from __future__ import annotations

# diffusers records custom components as ("model", ClassName) in model_index.json and loads them with
# getattr(model, ClassName); resolve those lazily so `import model.image_input` stays light.
_LAZY_COMPONENTS = {
    "Step1XEditConnector": "model.connector",
    "Qwen25VLImageProcessor": "model.encoder",
}


def __getattr__(name: str):
    if name in _LAZY_COMPONENTS:
        import importlib

        return getattr(importlib.import_module(_LAZY_COMPONENTS[name]), name)
    raise AttributeError(f"module 'model' has no attribute {name!r}")
