"""The diffusers conventions of the pipeline: generator, callback contract, check_inputs, the runnable example."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
import torch
from diffusers.callbacks import PipelineCallback

from model import pipeline as pipeline_module

FAST = dict(num_inference_steps=2, size_level=64)
REPO = Path(__file__).resolve().parents[2]


def test_example_docstring_runs_on_the_embedded_model(monkeypatch) -> None:
    if not (REPO / "assets" / "step1x-edit-nano" / "model_index.json").is_file():
        pytest.skip("embedded nano model absent")
    monkeypatch.chdir(REPO)  # the example loads "assets/step1x-edit-nano" like a user in the checkout
    assert "Examples:" in pipeline_module.Step1XEditPipeline.__call__.__doc__
    assert ">>> out = pipe(" in pipeline_module.Step1XEditPipeline.__call__.__doc__
    test = doctest.DocTestParser().get_doctest(pipeline_module.EXAMPLE_DOC_STRING, {}, "example", None, 0)
    runner = doctest.DocTestRunner()
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert len(test.examples) >= 6


def test_generator_equals_seed_and_is_reported(tiny_pipe, photo) -> None:
    by_seed = tiny_pipe(photo, "make it red", seed=11, **FAST)
    by_generator = tiny_pipe(photo, "make it red", generator=torch.Generator().manual_seed(11), **FAST)
    assert torch.equal(by_seed.latents, by_generator.latents) and by_generator.seed == 11
    listed = tiny_pipe(photo, "make it red", generator=[torch.Generator().manual_seed(11)], **FAST)
    assert torch.equal(by_seed.latents, listed.latents)
    other = tiny_pipe(photo, "make it red", generator=torch.Generator().manual_seed(12), **FAST)
    assert not torch.equal(by_seed.latents, other.latents)


def test_callback_contract_reads_and_replaces_tensors(tiny_pipe, photo) -> None:
    seen: list[tuple[int, float, tuple[str, ...], int]] = []

    def record(pipe, step, timestep, callback_kwargs):
        seen.append((step, float(timestep), tuple(callback_kwargs), pipe.num_timesteps))
        return callback_kwargs

    tiny_pipe(
        photo,
        "make it red",
        seed=1,
        callback_on_step_end=record,
        callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"],
        **FAST,
    )
    assert [s[0] for s in seen] == [0, 1] and all(s[3] == 2 for s in seen)
    assert seen[0][1] == pytest.approx(1000.0) and 0 < seen[1][1] < 999  # the first step starts at t = 1
    assert seen[0][2] == ("latents", "prompt_embeds")

    def zero_latents(pipe, step, timestep, callback_kwargs):
        return {"latents": torch.zeros_like(callback_kwargs["latents"])}

    out = tiny_pipe(
        photo, "make it red", seed=1, callback_on_step_end=zero_latents, **{**FAST, "num_inference_steps": 1}
    )
    assert torch.count_nonzero(out.latents) == 0  # the returned tensor replaced the pipeline's latents


def test_pipeline_callback_objects_bring_their_tensor_inputs(tiny_pipe, photo) -> None:
    class Count(PipelineCallback):
        tensor_inputs = ["latents"]

        def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
            self.steps = [*getattr(self, "steps", []), (step_index, tuple(callback_kwargs))]
            return callback_kwargs

    counter = Count()
    tiny_pipe(photo, "make it red", seed=1, callback_on_step_end=counter, **FAST)
    assert counter.steps == [(0, ("latents",)), (1, ("latents",))]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(prompt=""), "instruction is empty"),
        (dict(negative_prompt=None), "negative_prompt must be a string"),
        (dict(num_inference_steps=0), "num_inference_steps must be at least 1"),
        (dict(size_level=8), "size_level must be at least"),
        (dict(seed=1, generator=torch.Generator()), "either seed or generator"),
        (dict(generator=[torch.Generator(), torch.Generator()]), "one generator"),
        (dict(callback_on_step_end_tensor_inputs=["noise"]), "not among"),
        (dict(transparency="grey"), "transparency must be one of"),
        (dict(latents=torch.zeros(1, 16, 3, 3)), "latents must have shape"),
        (dict(ref_latents=torch.zeros(1, 16, 3, 3)), "ref_latents must have shape"),
    ],
)
def test_check_inputs_names_the_problem(tiny_pipe, photo, kwargs, message) -> None:
    call = {"prompt": "make it red", **FAST, **kwargs}
    with pytest.raises(ValueError, match=message):
        tiny_pipe(photo, **call)


def test_load_pipeline_declares_its_return_type() -> None:
    from model.loading import load_pipeline

    assert load_pipeline.__annotations__["return"] in (
        "Step1XEditPipeline",
        pipeline_module.Step1XEditPipeline,
    )


def test_transparency_option_reaches_the_image_loader(tiny_pipe) -> None:
    from PIL import Image

    cutout = Image.new("RGBA", (64, 48), (0, 0, 0, 0))  # transparent black, as many cut-outs store it
    cutout.paste((200, 30, 30, 255), (16, 12, 48, 36))
    white = tiny_pipe(cutout, "make it red", seed=0, sample_reference=False, **FAST).latents
    dropped = tiny_pipe(
        cutout, "make it red", seed=0, sample_reference=False, transparency="drop", **FAST
    ).latents
    assert not torch.equal(white, dropped)
