"""Step1XEditPipeline: image + instruction -> edited image, as in the paper's figure.

    encode   Qwen2.5-VL reads the resized image and the instruction (prompt and "" negative) -> states + mask
    connect  the connector turns states into FLUX text tokens + a pooled vector (every step: it sees t)
    denoise  FLUX DiT over [noise tokens ; reference tokens], Euler steps, norm-rescaled CFG
    decode   VAE decode -> PIL -> resized back to the input size

Numerics follow the official `ImageGenerator`; docs/model.md lists every option and its effect on output.
The same class also runs the project's small model, whose differences are configuration only: pixel space
(`vae=None`), reference tokens concatenated along channels (`ref_mode="channel"`) and a reference-residual
output (`prediction="ref_residual"`).
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.hooks import apply_group_offloading
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput, replace_example_docstring
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor

from model.connector import Step1XEditConnector
from model.encoder import DEFAULT_DROP_TOKENS, DEFAULT_MAX_LENGTH, QWEN25VL_PREFIX, encode_prompt
from model.image_input import TRANSPARENCY_MODES, ImageSource, load_image, resize_to_size_level
from model.latents import pack_patches, pil_to_tensor, tensor_to_pil, unpack_patches
from model.sampling import (
    CFG_DISABLED,
    combine_cfg,
    euler_step,
    get_schedule,
    latent_position_ids,
    reference_id_offset,
    schedule_mu,
)
from model.weights import load_components

# diffusers' contract: callback(pipe, step index, timestep, {name: tensor}) -> {name: replacement tensor}.
StepCallback = Callable[[DiffusionPipeline, int, torch.Tensor, dict[str, Any]], dict[str, Any]]
# The official sampler's defaults (inference.py / gradio_app.py).
DEFAULT_STEPS = 28
DEFAULT_GUIDANCE = 6.0
DEFAULT_SIZE_LEVEL = 512
DEFAULT_TIMESTEPS_TRUNCATE = 0.93
MIN_SIZE_LEVEL = 16
REF_MODES = ("sequence", "channel")
PREDICTIONS = ("velocity", "ref_residual")
# ref_residual: velocity = (x_t - x0) / t, with t kept away from 0 at the last step.
MIN_RESIDUAL_T = 1e-3

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from PIL import Image
        >>> from model.pipeline import Step1XEditPipeline

        >>> # the embedded nano model; an official folder or Hub id loads the same way
        >>> pipe = Step1XEditPipeline.from_pretrained("assets/step1x-edit-nano")
        >>> pipe.set_progress_bar_config(disable=True)

        >>> def on_step_end(pipe, step, timestep, callback_kwargs):
        ...     print(f"step {step + 1}/{pipe.num_timesteps}, latents {tuple(callback_kwargs['latents'].shape)}")
        ...     return callback_kwargs

        >>> out = pipe(
        ...     image=Image.new("RGB", (32, 32), "white"),
        ...     prompt="add a red circle",
        ...     generator=torch.Generator().manual_seed(0),
        ...     callback_on_step_end=on_step_end,
        ...     callback_on_step_end_tensor_inputs=["latents"],
        ... )
        step 1/1, latents (1, 16, 192)
        >>> out.images[0].size
        (32, 32)

        ```
"""


@dataclass
class Step1XEditPipelineOutput(BaseOutput):
    """Edited images (resized back to the input size), the seed that produced them, and the final latent
    grid [1, C, H/f, W/f] at the working size (before decoding)."""

    images: list[Image.Image]
    seed: int  # the seed used, or the generator's initial seed
    latents: torch.Tensor | None = None


def resolve_seed(seed: int | None) -> int:
    """None or a negative seed (the official "-1") draws a fresh 32-bit seed."""
    return secrets.randbelow(2**32) if seed is None or seed < 0 else int(seed)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


class Step1XEditPipeline(DiffusionPipeline):
    """Step1X-Edit (arXiv 2504.17761) on diffusers/transformers parts.

    Components: `text_encoder` (Qwen2_5_VLForConditionalGeneration), `processor` (Qwen2.5-VL processor),
    `connector` (Step1XEditConnector), `transformer` (FluxTransformer2DModel, no guidance embedding),
    `vae` (AutoencoderKL, FLUX config; None = pixel space), `scheduler` (FlowMatchEulerDiscreteScheduler;
    its shift range is read, the official Euler loop is run here).

    Config: `version` ("v1.0" | "v1.1": reference-token ids), `max_length` / `drop_tokens` / `prompt_prefix` /
    `split_quotes` (prompt encoding; None prefix = the official one; False skips the quote-aware
    re-tokenisation), `patch_size`, `ref_mode`, `prediction`, the `default_*` call arguments, and
    `model_name` (reported by `name`).
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    # What `callback_on_step_end_tensor_inputs` may name: the packed target tokens and the Qwen states.
    _callback_tensor_inputs = ["latents", "prompt_embeds"]
    # The connector runs inside every denoising step; cycling it on and off the GPU would cost each step.
    _exclude_from_cpu_offload = ["connector"]
    _optional_components = ["vae", "scheduler"]

    def __init__(
        self,
        text_encoder: Qwen2_5_VLForConditionalGeneration,
        processor: Qwen2_5_VLProcessor,
        connector: Step1XEditConnector,
        transformer: FluxTransformer2DModel,
        vae: AutoencoderKL | None = None,
        scheduler: FlowMatchEulerDiscreteScheduler | None = None,
        version: str = "v1.1",
        max_length: int = DEFAULT_MAX_LENGTH,
        drop_tokens: int = DEFAULT_DROP_TOKENS,
        prompt_prefix: str | None = None,
        split_quotes: bool = True,
        patch_size: int = 2,
        ref_mode: str = "sequence",
        prediction: str = "velocity",
        default_size_level: int = DEFAULT_SIZE_LEVEL,
        default_steps: int = DEFAULT_STEPS,
        default_guidance_scale: float = DEFAULT_GUIDANCE,
        model_name: str = "step1x-edit",
    ):
        super().__init__()
        reference_id_offset(version)  # validates the version early
        _check_choice("ref_mode", ref_mode, REF_MODES)
        _check_choice("prediction", prediction, PREDICTIONS)
        self.register_modules(
            text_encoder=text_encoder,
            processor=processor,
            connector=connector,
            transformer=transformer,
            vae=vae,
            scheduler=scheduler,
        )
        self.register_to_config(
            version=version,
            max_length=max_length,
            drop_tokens=drop_tokens,
            prompt_prefix=prompt_prefix,
            split_quotes=split_quotes,
            patch_size=patch_size,
            ref_mode=ref_mode,
            prediction=prediction,
            default_size_level=default_size_level,
            default_steps=default_steps,
            default_guidance_scale=default_guidance_scale,
            model_name=model_name,
        )
        self.offload_text_encoder = False
        self._num_timesteps = 0

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str,
        torch_dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
        **kwargs,
    ) -> Step1XEditPipeline:
        """Load from an official-layout folder, a diffusers-layout folder (`save_pretrained` output) or a
        Hub repo id; safetensors only, checked and streamed (`model.weights.load_components`). `text_encoder`
        (keyword) overrides where an official folder finds Qwen2.5-VL."""
        parts = load_components(
            pretrained_model_name_or_path, torch_dtype=torch_dtype, device=device, **kwargs
        )
        params = inspect.signature(cls.__init__).parameters
        return cls(**{name: value for name, value in parts.items() if name in params and name != "self"})

    # ------------------------------------------------------------------ identity and geometry
    @property
    def name(self) -> str:
        """Model name for run manifests, e.g. "step1x-edit-v1.1"."""
        return self.config.model_name

    @property
    def num_timesteps(self) -> int:
        """Denoising steps of the current (or last) call, as diffusers pipelines report it."""
        return self._num_timesteps

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell (8 for the FLUX VAE, 1 in pixel space)."""
        return 1 if self.vae is None else 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return 3 if self.vae is None else self.vae.config.latent_channels

    @property
    def side_multiple(self) -> int:
        """Working sides are multiples of one token's pixel footprint (16 for the official model)."""
        return self.vae_scale_factor * self.config.patch_size

    # ------------------------------------------------------------------ memory and speed options
    def enable_text_encoder_offload(self, streamed: bool | None = None) -> None:
        """Keep Qwen2.5-VL's ~16.6 GB off the accelerator except while the prompt is encoded (once per
        edit). Output is unchanged either way.

        streamed (default when CUDA is available): diffusers group offloading streams Qwen to the GPU one
        block at a time during its forward, prefetching on a side CUDA stream from pinned memory, so Qwen
        never sits beside the DiT in full: peak GPU memory ~ DiT + connector + a layer or two of Qwen. It
        copies Qwen once per forward (twice per edit: prompt and negative prompt).
        Not streamed: the whole Qwen moves to the GPU for the encode and back afterwards (one copy per edit,
        but while encoding the peak includes all of Qwen).
        """
        streamed = torch.cuda.is_available() if streamed is None else streamed
        onload = (
            self.device
            if self.device.type != "cpu" or not torch.cuda.is_available()
            else torch.device("cuda")
        )
        self.text_encoder.to("cpu")
        if streamed:
            apply_group_offloading(
                self.text_encoder,
                onload_device=onload,
                offload_type="block_level",
                num_blocks_per_group=1,
                use_stream=onload.type == "cuda",
            )
        else:
            self.offload_text_encoder = True

    def enable_transformer_compile(self, regional: bool = True, **compile_kwargs) -> None:
        """torch.compile the DiT in place (regional: each repeated block, much faster to compile).
        Same math; floats can differ in the last bits from kernel fusion."""
        if regional:
            self.transformer.compile_repeated_blocks(**compile_kwargs)
        else:
            self.transformer.compile(**compile_kwargs)

    def enable_fp8_weights(self, activations: bool = False) -> None:
        """float8 DiT linears via torchao (CUDA only). Weight-only (default, like the official --quantized):
        halves DiT weight memory, matmuls still run in bf16; output changes at the level of fp8 weight
        rounding. `activations=True` also quantizes activations per row (fp8 tensor-core matmuls on
        Hopper: faster, and a further, larger change to the output)."""
        if self.transformer.device.type != "cuda":
            raise RuntimeError(
                "FP8 weights need the transformer on a CUDA device (call pipe.to('cuda') first)"
            )
        try:
            from torchao.quantization import (
                Float8DynamicActivationFloat8WeightConfig,
                Float8WeightOnlyConfig,
                PerRow,
                quantize_,
            )
        except ImportError as exc:
            raise RuntimeError("FP8 weights need torchao: pip install 'step1x-edit-studio[gpu]'") from exc
        config = (
            Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
            if activations
            else Float8WeightOnlyConfig()
        )
        quantize_(self.transformer, config)

    # ------------------------------------------------------------------ 1. encode
    def encode_prompt(self, image: Image.Image, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Qwen2.5-VL states [len(prompts), max_length, hidden] and masks, one forward per prompt."""
        device = self._execution_device
        if self.offload_text_encoder:
            self.text_encoder.to(device)
        try:
            encoded = [
                encode_prompt(
                    self.text_encoder,
                    self.processor,
                    image,
                    prompt,
                    max_length=self.config.max_length,
                    drop_tokens=self.config.drop_tokens,
                    device=device,
                    prefix=self.config.prompt_prefix or QWEN25VL_PREFIX,
                    split_quotes=self.config.split_quotes,
                )
                for prompt in prompts
            ]
        finally:
            if self.offload_text_encoder:
                self.text_encoder.to("cpu")
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        return torch.cat([e for e, _ in encoded]), torch.cat([m for _, m in encoded])

    def image_to_latents(
        self, image: Image.Image, generator: torch.Generator | None = None, sample: bool = False
    ) -> torch.Tensor:
        """Latent grid [1, C, H/f, W/f]: normalised VAE latents (z - shift) * scale, or the pixels in [-1,1]
        without a VAE. The official code samples the VAE posterior (`sample=True`); the mean is exact."""
        pixels = pil_to_tensor(image).to(self._execution_device)
        if self.vae is None:
            return pixels
        posterior = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist
        latents = posterior.sample(generator) if sample else posterior.mean
        return (latents - self.vae.config.shift_factor) * self.vae.config.scaling_factor

    def latents_to_image(self, latents: torch.Tensor) -> Image.Image:
        """Latent grid -> PIL (the VAE decodes in its own dtype, fp32 by default)."""
        if self.vae is None:
            return tensor_to_pil(latents)
        latents = latents.float() / self.vae.config.scaling_factor + self.vae.config.shift_factor
        return tensor_to_pil(self.vae.decode(latents.to(self.vae.dtype), return_dict=False)[0])

    def prepare_noise(self, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
        """Gaussian noise [1, C, H/f, W/f] drawn on the generator's device (a CPU generator gives the same
        numbers on every device)."""
        f = self.vae_scale_factor
        shape = (1, self.latent_channels, height // f, width // f)
        return torch.randn(shape, generator=generator, device=generator.device)

    def pack(self, grid: torch.Tensor) -> torch.Tensor:
        """Latent grid [B, C, h, w] -> tokens [B, (h/p)(w/p), C p p] (FLUX 2x2 packing for p = 2)."""
        return pack_patches(grid, self.config.patch_size)

    def unpack(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Tokens -> latent grid for a working image of height x width pixels."""
        return unpack_patches(
            tokens, height // self.side_multiple, width // self.side_multiple, self.config.patch_size
        )

    def position_ids(self, rows: int, cols: int, device: torch.device | None = None) -> torch.Tensor:
        """RoPE ids of the DiT's image tokens: target (0, r, c), then in sequence mode the reference tokens
        with the version's offset (v1.0 (0, r, c), v1.1 (1, r+1, c+1))."""
        target = latent_position_ids(rows, cols, 0, device)
        if self.config.ref_mode == "channel":
            return target
        return torch.cat(
            [target, latent_position_ids(rows, cols, reference_id_offset(self.config.version), device)]
        )

    # ------------------------------------------------------------------ 2+3. connect and denoise
    def model_output(
        self,
        latent_tokens: torch.Tensor,
        ref_tokens: torch.Tensor,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        t: float | torch.Tensor,
        img_ids: torch.Tensor,
    ) -> torch.Tensor:
        """Connector + DiT; returns the DiT output for the target tokens. The batch follows `embeds`
        ([cond, uncond] in sampling); latent/ref tokens with batch 1 are shared across it."""
        batch = embeds.shape[0]
        if not torch.is_tensor(t):
            t = torch.full((batch,), t)
        t_vec = t.to(latent_tokens.device, latent_tokens.dtype)  # official: bf16-rounded timesteps
        txt, pooled = self.connector(embeds, t_vec, mask)
        latent_tokens = latent_tokens.expand(batch, -1, -1)
        ref_tokens = ref_tokens.expand(batch, -1, -1)
        if self.config.ref_mode == "channel":
            hidden = torch.cat([latent_tokens, ref_tokens], dim=-1)
        else:
            hidden = torch.cat([latent_tokens, ref_tokens], dim=1)
        txt_ids = torch.zeros(txt.shape[1], 3, device=img_ids.device, dtype=img_ids.dtype)
        out = self.transformer(
            hidden_states=hidden,
            encoder_hidden_states=txt.to(latent_tokens.dtype),
            pooled_projections=pooled.to(latent_tokens.dtype),
            timestep=t_vec,
            img_ids=img_ids,
            txt_ids=txt_ids,
            return_dict=False,
        )[0]
        return out[:, : latent_tokens.shape[1]]

    def velocity(
        self, output: torch.Tensor, latent_tokens: torch.Tensor, ref_tokens: torch.Tensor, t: float
    ) -> torch.Tensor:
        """Flow velocity from the DiT output: itself (official), or from a predicted clean image
        x0 = ref + output as (x_t - x0) / t (reference-residual models)."""
        if self.config.prediction == "velocity":
            return output
        x0 = ref_tokens + output
        return (latent_tokens - x0) / max(t, MIN_RESIDUAL_T)

    def denoise(
        self,
        latent_tokens: torch.Tensor,
        ref_tokens: torch.Tensor,
        img_ids: torch.Tensor,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        timesteps: list[float],
        guidance_scale: float,
        timesteps_truncate: float,
        callback: StepCallback | None = None,
        callback_tensor_inputs: Sequence[str] = ("latents",),
    ) -> torch.Tensor:
        """The official loop: one batched [cond, uncond] forward per step, CFG, Euler step on the targets.

        In bf16 it runs under bf16 autocast like the official `generate`; the velocity keeps the DiT's output
        dtype, and a norm-rescaled CFG step yields fp32 (see `combine_cfg`), which then carries the latents
        and unrounded timesteps through every later step, as the official loop's dtype promotion does.
        """
        self._num_timesteps = len(timesteps) - 1
        autocast = latent_tokens.dtype == torch.bfloat16
        with self.progress_bar(total=self._num_timesteps) as progress:
            for step, (t_curr, t_next) in enumerate(zip(timesteps[:-1], timesteps[1:], strict=True)):
                with torch.autocast(latent_tokens.device.type, dtype=torch.bfloat16, enabled=autocast):
                    out = self.model_output(latent_tokens, ref_tokens, embeds, mask, t_curr, img_ids)
                pred = self.velocity(out, latent_tokens, ref_tokens, t_curr)
                if guidance_scale != CFG_DISABLED:
                    pred = combine_cfg(pred[:1], pred[1:], guidance_scale, t_curr, timesteps_truncate)
                latent_tokens = euler_step(latent_tokens, pred, t_curr, t_next)
                progress.update()
                if callback is not None:
                    tensors = {"latents": latent_tokens, "prompt_embeds": embeds}
                    outputs = callback(
                        self,
                        step,
                        torch.tensor(t_curr * 1000.0),  # FLUX pipelines report the scheduler's 0-1000 scale
                        {name: tensors[name] for name in callback_tensor_inputs},
                    )
                    latent_tokens = outputs.pop("latents", latent_tokens)
                    embeds = outputs.pop("prompt_embeds", embeds)
        return latent_tokens

    # ------------------------------------------------------------------ the whole edit
    def check_inputs(
        self,
        prompt: Any,
        negative_prompt: Any = "",
        num_inference_steps: int = DEFAULT_STEPS,
        size_level: int = DEFAULT_SIZE_LEVEL,
        seed: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] | None = None,
        transparency: str = "white",
    ) -> None:
        """Raise ValueError, with a message meant for the user, for any argument the pipeline cannot run."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("the edit instruction is empty; describe the change you want")
        if not isinstance(negative_prompt, str):
            raise ValueError(f"negative_prompt must be a string, got {type(negative_prompt).__name__}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}")
        if size_level < MIN_SIZE_LEVEL:
            raise ValueError(f"size_level must be at least {MIN_SIZE_LEVEL}, got {size_level}")
        if seed is not None and generator is not None:
            raise ValueError("pass either seed or generator, not both")
        if isinstance(generator, list) and len(generator) != 1:
            raise ValueError(f"one image is edited per call: pass one generator, got {len(generator)}")
        unknown = [
            k for k in callback_on_step_end_tensor_inputs or () if k not in self._callback_tensor_inputs
        ]
        if unknown:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs {unknown} are not among {self._callback_tensor_inputs}"
            )
        _check_choice("transparency", transparency, TRANSPARENCY_MODES)

    def _check_injected(self, name: str, grid: torch.Tensor | None, height: int, width: int) -> None:
        """Injected noise / reference latents must match the working grid of this image and size level."""
        f = self.vae_scale_factor
        expected = (1, self.latent_channels, height // f, width // f)
        if grid is not None and tuple(grid.shape) != expected:
            raise ValueError(f"{name} must have shape {expected} at this size level, got {tuple(grid.shape)}")

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        image: ImageSource,
        prompt: str,
        negative_prompt: str = "",
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        size_level: int | None = None,
        seed: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        timesteps_truncate: float = DEFAULT_TIMESTEPS_TRUNCATE,
        callback_on_step_end: StepCallback | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        latents: torch.Tensor | None = None,
        ref_latents: torch.Tensor | None = None,
        sample_reference: bool = True,
        resize_back: bool = True,
        transparency: str = "white",
    ) -> Step1XEditPipelineOutput:
        """Edit `image` following `prompt`. None arguments take the model's config defaults (official: 28
        steps, CFG 6.0, size level 512).

        Args:
            image: PIL image, path or encoded bytes (validated by `model.image_input.load_image`).
            prompt: the instruction (any language); must not be empty.
            negative_prompt: the unconditional branch's instruction (official: "").
            num_inference_steps: Euler steps.
            guidance_scale: CFG weight; -1 disables CFG (one forward per step, no negative prompt).
            size_level: working area ~ size_level^2 (official 512; 768 and 1024 recommended).
            seed: convenience for `generator=torch.Generator().manual_seed(seed)`; None (and no generator)
                draws one. The output reports it in `seed`.
            generator: draws the noise, then the VAE posterior sample (a CPU generator gives the same
                numbers on every device). Mutually exclusive with `seed`.
            timesteps_truncate: CFG norm-rescale applies while t > this (0.93 current code; 1.0 = v1.0 release).
            callback_on_step_end: `fn(pipe, step, timestep, callback_kwargs) -> dict` after every step, as in
                diffusers (step counts from 0; timestep on the 0-1000 scale); returned "latents" /
                "prompt_embeds" replace the pipeline's.
            callback_on_step_end_tensor_inputs: which of `_callback_tensor_inputs` go into callback_kwargs.
            latents: injected initial noise [1, C, H/f, W/f] (replaces the seeded noise; parity checks).
            ref_latents: injected normalised reference latents [1, C, H/f, W/f] (replaces the VAE encode).
            sample_reference: sample the VAE posterior (official) or take its mean (deterministic).
            resize_back: resize the output to the input size (official); False keeps the working size.
            transparency: "white" composites transparent pixels onto white; "drop" discards alpha as the
                official code does (transparent pixels show their hidden colour, often black).

        Examples:
        """
        if isinstance(callback_on_step_end, PipelineCallback | MultiPipelineCallbacks):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        steps = self.config.default_steps if num_inference_steps is None else num_inference_steps
        guidance = self.config.default_guidance_scale if guidance_scale is None else guidance_scale
        size_level = self.config.default_size_level if size_level is None else size_level
        self.check_inputs(
            prompt,
            negative_prompt,
            steps,
            size_level,
            seed,
            generator,
            callback_on_step_end_tensor_inputs,
            transparency,
        )
        source = load_image(image, transparency=transparency)
        generator, seed = self._generator(generator, seed)
        device, dtype = self._execution_device, self.transformer.dtype

        reference = resize_to_size_level(source, size_level, self.side_multiple)
        width, height = reference.size
        self._check_injected("latents", latents, height, width)
        self._check_injected("ref_latents", ref_latents, height, width)
        use_cfg = guidance != CFG_DISABLED

        # 1. encode. Noise first, then the reference posterior sample, both from the generator.
        noise = self.prepare_noise(height, width, generator) if latents is None else latents
        embeds, mask = self.encode_prompt(reference, [prompt, negative_prompt] if use_cfg else [prompt])
        if ref_latents is None:
            ref_latents = self.image_to_latents(reference, generator, sample=sample_reference)

        # 2. position ids: target (0,r,c), reference per version.
        rows, cols = height // self.side_multiple, width // self.side_multiple
        img_ids = self.position_ids(rows, cols, device)

        # 3. pack into tokens and denoise on the official shifted schedule.
        timesteps = get_schedule(steps, rows * cols, mu=self._schedule_mu(rows * cols))
        tokens = self.denoise(
            self.pack(noise).to(device, dtype),
            self.pack(ref_latents).to(device, dtype),
            img_ids,
            embeds.to(device, self.connector.dtype),
            mask.to(device),
            timesteps,
            guidance,
            timesteps_truncate,
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
        )

        # 4. decode, then back to the input size (PIL's default bicubic, as official).
        final = self.unpack(tokens, height, width)
        edited = self.latents_to_image(final)
        if resize_back and edited.size != source.size:
            edited = edited.resize(source.size, Image.BICUBIC)
        self.maybe_free_model_hooks()
        return Step1XEditPipelineOutput(images=[edited], seed=seed, latents=final)

    @staticmethod
    def _generator(
        generator: torch.Generator | list[torch.Generator] | None, seed: int | None
    ) -> tuple[torch.Generator, int]:
        """The generator to draw from and the seed to report (a seed, or the generator's initial seed)."""
        if isinstance(generator, list):
            generator = generator[0]
        if generator is not None:
            return generator, generator.initial_seed()
        seed = resolve_seed(seed)
        return torch.Generator("cpu").manual_seed(seed), seed

    def _schedule_mu(self, image_seq_len: int) -> float:
        """Shift from the token count, over the scheduler's configured shift range when there is one."""
        if self.scheduler is None:
            return schedule_mu(image_seq_len)
        config = self.scheduler.config
        return schedule_mu(
            image_seq_len,
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", 1.15),
        )
