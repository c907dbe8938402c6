"""Arena contestants: how a system edits a visitor's image — a local model or a remote Gradio app.

Declared in a TOML or JSON file (or the Admin tab), one table per contestant::

    [[contestant]]
    name = "nano"                      # display name, revealed after the vote
    model = "assets/step1x-edit-nano"  # local: folder or Hub id (relative paths: from the file's folder)
    steps = 1                          # optional: the model's default otherwise
    cfg = 1.0
    seed = "random"                    # or a fixed integer
    timeout_s = 60

    [[contestant]]
    name = "remote-editor"
    url = "http://127.0.0.1:7861/"     # remote: a Gradio app or a Space id ("owner/space")
    api_name = "/edit"
    args = { image = "$image", prompt = "$instruction", steps = 20 }   # "$image" / "$instruction" are filled in
    output = 0                         # which element of the reply is the edited image (when it is a tuple)
    timeout_s = 120
"""

from __future__ import annotations

import json
import random
import threading
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_SEED = 2**31 - 1
DEFAULT_TIMEOUT_S = 120.0
PLACEHOLDERS = ("$image", "$instruction", "$seed")
LOCAL_KEYS = {"model", "steps", "cfg", "seed", "size_level"}
REMOTE_KEYS = {"url", "api_name", "args", "output", "hf_token_env"}


class ContestantError(ValueError):
    """A contestant declaration that cannot be used (names the contestant and the field)."""


@dataclass(frozen=True)
class ContestantSpec:
    """One contestant; ``kind`` is "local" (``model`` …) or "remote" (``url``, ``api_name``, ``args`` …)."""

    name: str
    kind: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    config: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for admins (never shown to visitors before the vote)."""
        c = self.config
        if self.kind == "local":
            extras = ", ".join(f"{k}={c[k]}" for k in ("steps", "cfg", "seed") if k in c)
            return f"local model {c['model']}" + (f" ({extras})" if extras else "")
        return f"remote {c['url']} {c['api_name']}"


def _number(spec: Mapping[str, Any], key: str, name: str, kind: type, low: float) -> None:
    value = spec.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < low):
        raise ContestantError(f"contestant {name!r}: {key} must be a number >= {low}, got {value!r}")
    if kind is int and value is not None and value != int(value):
        raise ContestantError(f"contestant {name!r}: {key} must be a whole number, got {value!r}")


def parse_contestant(entry: Mapping[str, Any], base_dir: Path | None = None) -> ContestantSpec:
    """Validate one declaration (a dict from TOML/JSON) into a spec; relative model folders are resolved
    against ``base_dir``."""
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ContestantError(f"every contestant needs a name (1-200 characters), got {name!r}")
    name = name.strip()
    is_local, is_remote = "model" in entry, "url" in entry
    if is_local == is_remote:
        raise ContestantError(f"contestant {name!r}: give either model (local) or url (remote), not both")
    allowed = {"name", "timeout_s"} | (LOCAL_KEYS if is_local else REMOTE_KEYS)
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ContestantError(f"contestant {name!r}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    _number(entry, "timeout_s", name, float, 0.1)
    config = {k: v for k, v in entry.items() if k not in ("name", "timeout_s")}
    if is_local:
        _check_local(name, config, base_dir)
    else:
        _check_remote(name, config)
    return ContestantSpec(
        name, "local" if is_local else "remote", float(entry.get("timeout_s", DEFAULT_TIMEOUT_S)), config
    )


def _check_local(name: str, config: dict[str, Any], base_dir: Path | None) -> None:
    model = config["model"]
    if not isinstance(model, str) or not model.strip():
        raise ContestantError(f"contestant {name!r}: model must be a folder or a Hub id")
    folder = Path(model)
    if not folder.is_absolute():
        for base in (base_dir, REPO_ROOT):
            if base is not None and (base / folder).is_dir():
                config["model"] = str((base / folder).resolve())
                break
    _number(config, "steps", name, int, 1)
    _number(config, "cfg", name, float, 0)
    _number(config, "size_level", name, int, 16)
    seed = config.get("seed", "random")
    if seed != "random" and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED
    ):
        raise ContestantError(f"contestant {name!r}: seed must be 'random' or an integer in [0, {MAX_SEED}]")


def _check_remote(name: str, config: dict[str, Any]) -> None:
    if not isinstance(config["url"], str) or not config["url"].strip():
        raise ContestantError(f"contestant {name!r}: url must be a Gradio app URL or a Space id")
    api_name = config.get("api_name")
    if not isinstance(api_name, str) or not api_name.startswith("/"):
        raise ContestantError(f"contestant {name!r}: api_name must look like '/edit', got {api_name!r}")
    args = config.setdefault("args", {"image": "$image", "instruction": "$instruction"})
    if not isinstance(args, dict) or "$image" not in args.values():
        raise ContestantError(
            f"contestant {name!r}: args must map the app's parameters, one of them to '$image'"
        )
    output = config.setdefault("output", 0)
    if isinstance(output, bool) or not isinstance(output, int | str):
        raise ContestantError(f"contestant {name!r}: output must be an index or a key of the reply")


def read_contestants(path: str | Path) -> list[ContestantSpec]:
    """Contestants declared in a ``.toml`` file (``[[contestant]]`` tables) or a ``.json`` file (a list, or
    ``{"contestants": [...]}``)."""
    path = Path(path)
    return parse_contestants(path.read_text(encoding="utf-8"), "toml" if path.suffix == ".toml" else "json",
                             base_dir=path.parent)  # fmt: skip


def parse_contestants(text: str, fmt: str = "toml", base_dir: Path | None = None) -> list[ContestantSpec]:
    """Contestants from TOML or JSON text (names must be distinct)."""
    try:
        data = tomllib.loads(text) if fmt == "toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ContestantError(f"cannot read the contestants ({fmt}): {exc}") from exc
    entries = data if isinstance(data, list) else data.get("contestant", data.get("contestants"))
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ContestantError(
            "declare contestants as [[contestant]] tables (TOML) or a list of objects (JSON)"
        )
    specs = [parse_contestant(e, base_dir) for e in entries]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ContestantError(f"contestant names must be distinct, got {names}")
    return specs


def spec_record(spec: ContestantSpec) -> dict[str, Any]:
    """JSON-ready form (for the database and the Admin tab)."""
    return asdict(spec)


# ---------------------------------------------------------------------------------------------------- running
Editor = Callable[[Image.Image, str], Image.Image]
_PIPELINES: dict[str, tuple[Any, threading.Lock]] = {}
_LOAD_LOCK = threading.Lock()


def load_pipeline(model: str) -> tuple[Any, threading.Lock]:
    """One loaded pipeline per model folder, shared by the contestants that use it; its lock serialises calls
    (a pipeline keeps per-call state on itself)."""
    with _LOAD_LOCK:
        if model not in _PIPELINES:
            from model.loading import load_editor

            pipe = load_editor(model)
            if hasattr(pipe, "set_progress_bar_config"):
                pipe.set_progress_bar_config(disable=True)  # one bar per call would flood the server log
            _PIPELINES[model] = (pipe, threading.Lock())
        return _PIPELINES[model]


def local_editor(spec: ContestantSpec) -> Editor:
    """Run a local Step1X-Edit pipeline with the contestant's steps, CFG and seed policy."""
    c = spec.config

    def run(image: Image.Image, instruction: str) -> Image.Image:
        pipe, lock = load_pipeline(c["model"])
        seed = random.randint(0, MAX_SEED) if c.get("seed", "random") == "random" else int(c["seed"])
        kwargs = {k: c[v] for k, v in (("num_inference_steps", "steps"), ("guidance_scale", "cfg"),
                                       ("size_level", "size_level")) if v in c}  # fmt: skip
        with lock:
            return pipe(image=image, prompt=instruction, seed=seed, **kwargs).images[0]

    return run


def remote_editor(spec: ContestantSpec, work_dir: Path) -> Editor:
    """Call a remote Gradio app with ``gradio_client``; ``args`` maps its parameters to the battle's values."""
    c = spec.config
    clients: list[Any] = []
    lock = threading.Lock()

    def client() -> Any:
        with lock:  # connect once, lazily (connecting reads the app's API description)
            if not clients:
                import os

                from gradio_client import Client

                token = os.environ.get(c["hf_token_env"]) if c.get("hf_token_env") else None
                clients.append(Client(c["url"], token=token, verbose=False, download_files=str(work_dir)))
            return clients[0]

    def run(image: Image.Image, instruction: str) -> Image.Image:
        from gradio_client import handle_file

        from workbench.image_store import ImageStore

        store = ImageStore(work_dir)
        source = str(store.path(store.put(image)))
        values = {
            "$image": handle_file(source),
            "$instruction": instruction,
            "$seed": random.randint(0, MAX_SEED),
        }
        kwargs = {k: values.get(v, v) if isinstance(v, str) else v for k, v in c["args"].items()}
        reply = client().predict(api_name=c["api_name"], **kwargs)
        return _reply_image(reply, c.get("output", 0))

    return run


def _reply_image(reply: Any, output: int | str) -> Image.Image:
    """The edited image in a gradio_client reply (a path, a dict with ``path``, or a tuple of those)."""
    if isinstance(reply, list | tuple):
        if not isinstance(output, int) or not -len(reply) <= output < len(reply):
            raise ValueError(f"the reply has {len(reply)} outputs; output index {output!r} is out of range")
        reply = reply[output]
    elif isinstance(reply, dict) and isinstance(output, str) and output in reply:
        reply = reply[output]
    if isinstance(reply, dict):
        reply = reply.get("path") or reply.get("value")
    if not isinstance(reply, str) or not Path(reply).is_file():
        raise ValueError(f"the remote app returned no image file ({type(reply).__name__})")
    with Image.open(reply) as img:
        return img.convert("RGB")


def make_editor(spec: ContestantSpec, work_dir: Path) -> Editor:
    """The callable that runs a contestant."""
    return local_editor(spec) if spec.kind == "local" else remote_editor(spec, work_dir)


def demo_contestants() -> list[ContestantSpec]:
    """The demo arena of the embedded default: the shipped nano model and its earlier, differently trained
    version, both in the repository (so it runs on a fresh CPU machine)."""
    return read_contestants(Path(__file__).with_name("demo_contestants.toml"))
