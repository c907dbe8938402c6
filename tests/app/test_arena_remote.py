"""Remote arena contestants: a second local Gradio app, started here, called through gradio_client (an editing
endpoint, one that fails and one that is too slow)."""

from __future__ import annotations

import time

import gradio as gr
import pytest
from PIL import Image, ImageOps

from tests.app.conftest import free_port, scene
from workbench.arena.battles import Arena, BattleFailed, Limits
from workbench.arena.contestants import parse_contestants
from workbench.arena.store import create_arena, system_health

pytestmark = pytest.mark.slow


def invert(image: Image.Image, prompt: str) -> Image.Image:
    return ImageOps.invert(image.convert("RGB"))


def mirror(image: Image.Image, prompt: str, strength: float) -> tuple[str, Image.Image]:
    # A reply with two outputs (the contestant picks output 1) and an extra fixed argument.
    return f"{prompt} @ {strength}", ImageOps.mirror(image.convert("RGB"))


def broken(image: Image.Image, prompt: str) -> Image.Image:
    raise gr.Error("the remote model crashed")


def slow(image: Image.Image, prompt: str) -> Image.Image:
    time.sleep(4)
    return image


@pytest.fixture(scope="module")
def remote_url():
    with gr.Blocks() as app:
        image, prompt, strength = gr.Image(type="pil"), gr.Textbox(), gr.Number()
        out, note = gr.Image(type="pil", format="png"), gr.Textbox()  # lossless, so outputs compare exactly
        button = gr.Button()
        button.click(invert, [image, prompt], out, api_name="invert")
        button.click(mirror, [image, prompt, strength], [note, out], api_name="mirror")
        button.click(broken, [image, prompt], out, api_name="broken")
        button.click(slow, [image, prompt], out, api_name="slow")
    app.queue()
    _, url, _ = app.launch(server_port=free_port(), prevent_thread_lock=True, quiet=True)
    yield url
    app.close()


def _declare(url: str, *entries: str) -> list:
    return parse_contestants("\n".join(f'[[contestant]]\nurl = "{url}"\n{entry}' for entry in entries))


def test_remote_systems_edit_and_vote(workbench, remote_url):
    specs = _declare(
        remote_url,
        'name = "inverter"\napi_name = "/invert"\nargs = { image = "$image", prompt = "$instruction" }',
        'name = "mirror"\napi_name = "/mirror"\noutput = 1\n'
        'args = { image = "$image", prompt = "$instruction", strength = 0.5 }',
    )
    create_arena(workbench, "remote", specs)
    arena = Arena(workbench, limits=Limits(per_minute=100, per_day=100))
    photo = scene(5, 48)
    battle = arena.start("remote", "v", photo, "flip the colours")
    outputs = {
        Image.open(battle["left_path"]).convert("RGB").tobytes(),
        Image.open(battle["right_path"]).tobytes(),
    }
    assert outputs == {ImageOps.invert(photo).tobytes(), ImageOps.mirror(photo).tobytes()}
    names = arena.vote(battle["battle_id"], "A")
    left_is_inverted = (
        Image.open(battle["left_path"]).convert("RGB").tobytes() == ImageOps.invert(photo).tobytes()
    )
    assert names["model_a"] == ("inverter" if left_is_inverted else "mirror")
    health = {h["system"]: h for h in system_health(workbench, "remote")}
    assert health["inverter"]["failed"] == 0 and health["mirror"]["median_seconds"] > 0


def test_remote_failure_and_timeout_are_counted(workbench, remote_url):
    specs = _declare(
        remote_url,
        'name = "inverter"\napi_name = "/invert"\nargs = { image = "$image", prompt = "$instruction" }',
        'name = "crashing"\napi_name = "/broken"\nargs = { image = "$image", prompt = "$instruction" }',
    )
    create_arena(workbench, "crash", specs)
    slow_specs = _declare(
        remote_url,
        'name = "inverter"\napi_name = "/invert"\nargs = { image = "$image", prompt = "$instruction" }',
        'name = "sluggish"\napi_name = "/slow"\ntimeout_s = 1.5\nargs = { image = "$image", prompt = "$instruction" }',
    )
    create_arena(workbench, "sluggish", slow_specs)
    arena = Arena(workbench, limits=Limits(per_minute=100, per_day=100))
    with pytest.raises(BattleFailed, match=r"system [AB] failed"):
        arena.start("crash", "v", scene(6, 48), "make it red")
    started = time.monotonic()
    with pytest.raises(BattleFailed, match=r"system [AB] timed out"):
        arena.start("sluggish", "v", scene(6, 48), "make it red")
    assert time.monotonic() - started < 3.5  # ended at the 1.5 s timeout, not after the 4 s reply
    crash = {h["system"]: h for h in system_health(workbench, "crash")}
    assert crash["crashing"]["failed"] == 1 and crash["inverter"]["failed"] == 0
    sluggish = {h["system"]: h for h in system_health(workbench, "sluggish")}
    assert sluggish["sluggish"]["timed_out"] == 1 and sluggish["inverter"]["timed_out"] == 0
