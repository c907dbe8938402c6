"""Step1XEditPipeline: image + instruction -> edited image, as in the paper's figure.

    encode   Qwen2.5-VL reads the resized image and the instruction (prompt and "" negative) -> states + mask
    connect  the connector turns states into FLUX text tokens + a pooled vector (every step: it sees t)
    denoise  FLUX DiT over [noise tokens ; reference tokens], Euler steps, norm-rescaled CFG
    decode   VAE decode -> PIL -> resized back to the input size

Numerics follow the official `ImageGenerator` (see docs/model.md for every deviation and option).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput
from PIL import Image

from model.connector import Step1XEditConnector
from model.encoder import DEFAULT_DROP_TOKENS, DEFAULT_MAX_LENGTH, encode_prompt
from model.images import ImageSource, load_image, resize_to_size_level
from model.sampling import (
    CFG_DISABLED,
    combine_cfg,
    euler_step,
    get_schedule,
    latent_position_ids,
    reference_id_offset,
    schedule_mu,
)

StepCallback = Callable[[int, int], None]
# The official sampler's defaults (inference.py / gradio_app.py).
DEFAULT_STEPS = 28
DEFAULT_GUIDANCE = 6.0
DEFAULT_SIZE_LEVEL = 512
DEFAULT_TIMESTEPS_TRUNCATE = 0.93
MIN_SIZE_LEVEL = 32


@dataclass
class Step1XEditPipelineOutput(BaseOutput):
    """Edited images (resized back to the input size) and the seed that produced them."""

    images: list[Image.Image]
    seed: int


def resolve_seed(seed: int | None) -> int:
    """None or a negative seed (the official "-1") draws a fresh 32-bit seed."""
    return secrets.randbelow(2**32) if seed is None or seed < 0 else int(seed)


def latents_to_pil(decoded: torch.Tensor) -> Image.Image:
    """[-1,1] image tensor [1,3,H,W] -> PIL, truncating like torchvision's to_pil_image (mul(255).byte())."""
    pixels = decoded[0].float().clamp(-1, 1).mul(0.5).add(0.5).mul(255).byte()
    return Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy())


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> float [1,3,H,W] in [-1,1]."""
    array = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
    return array.permute(2, 0, 1).unsqueeze(0) * 2 - 1


class Step1XEditPipeline(DiffusionPipeline):
    """Step1X-Edit (arXiv 2504.17761) on diffusers/transformers parts.

    Components: `text_encoder` (Qwen2_5_VLForConditionalGeneration), `processor` (Qwen2_5_VLProcessor),
    `connector` (Step1XEditConnector), `transformer` (FluxTransformer2DModel, no guidance embedding),
    `vae` (AutoencoderKL, FLUX config), `scheduler` (FlowMatchEulerDiscreteScheduler; only its shift
    config is read). Config: `version` ("v1.0" | "v1.1": reference-token ids), `max_length` and
    `drop_tokens` of the prompt encoding, `model_name` (reported by `name`).
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    # The connector runs inside every denoising step; cycling it on and off the GPU would cost each step.
    _exclude_from_cpu_offload = ["connector"]

    def __init__(
        self,
        text_encoder,
        processor,
        connector: Step1XEditConnector,
        transformer: FluxTransformer2DModel,
        vae: AutoencoderKL,
        scheduler: FlowMatchEulerDiscreteScheduler,
        version: str = "v1.1",
        max_length: int = DEFAULT_MAX_LENGTH,
        drop_tokens: int = DEFAULT_DROP_TOKENS,
        model_name: str = "step1x-edit",
    ):
        super().__init__()
        reference_id_offset(version)  # validates the version early
        self.register_modules(
            text_encoder=text_encoder,
            processor=processor,
            connector=connector,
            transformer=transformer,
            vae=vae,
            scheduler=scheduler,
        )
        self.register_to_config(
            version=version, max_length=max_length, drop_tokens=drop_tokens, model_name=model_name
        )
        self.offload_text_encoder = False

    # ------------------------------------------------------------------ identity and options
    @property
    def name(self) -> str:
        """Model name for run manifests, e.g. "step1x-edit-v1.1"."""
        return self.config.model_name

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def enable_text_encoder_offload(self, enabled: bool = True) -> None:
        """Keep Qwen2.5-VL on the CPU and bring it to the GPU only while the prompt is encoded (once per
        edit); saves its ~16.6 GB of GPU memory during the 28 denoising steps. Output is unchanged."""
        self.offload_text_encoder = enabled
        if enabled:
            self.text_encoder.to("cpu")

    def enable_transformer_compile(self, regional: bool = True, **compile_kwargs) -> None:
        """torch.compile the DiT in place (regional: each repeated block, much faster to compile).
        Same math; float results can differ in the last bits from kernel fusion."""
        if regional:
            self.transformer.compile_repeated_blocks(**compile_kwargs)
        else:
            self.transformer.compile(**compile_kwargs)

    def enable_fp8_weights(self) -> None:
        """Store the DiT's linear weights in float8 (torchao weight-only, CUDA only): halves DiT memory;
        output changes at the level of fp8 rounding of the weights."""
        if self.transformer.device.type != "cuda":
            raise RuntimeError(
                "FP8 weights need the transformer on a CUDA device (call pipe.to('cuda') first)"
            )
        try:
            from torchao.quantization import Float8WeightOnlyConfig, quantize_
        except ImportError as exc:
            raise RuntimeError("FP8 weights need torchao: pip install 'step1x-edit-studio[gpu]'") from exc
        quantize_(self.transformer, Float8WeightOnlyConfig())

    # ------------------------------------------------------------------ 1. encode
    @torch.no_grad()
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
                )
                for prompt in prompts
            ]
        finally:
            if self.offload_text_encoder:
                self.text_encoder.to("cpu")
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        return torch.cat([e for e, _ in encoded]), torch.cat([m for _, m in encoded])

    @torch.no_grad()
    def encode_reference(
        self, image: Image.Image, generator: torch.Generator | None, sample: bool = True
    ) -> torch.Tensor:
        """VAE latents [1, C, H/8, W/8] of the reference image, normalised (z - shift) * scale. Official code
        samples the posterior; `sample=False` takes its mean (deterministic, for parity checks)."""
        pixels = pil_to_tensor(image).to(self._execution_device, self.vae.dtype)
        posterior = self.vae.encode(pixels).latent_dist
        latents = posterior.sample(generator) if sample else posterior.mean
        return (latents - self.vae.config.shift_factor) * self.vae.config.scaling_factor

    def prepare_noise(self, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
        """Gaussian noise [1, C, H/8, W/8] from a CPU generator (reproducible across devices)."""
        shape = (
            1,
            self.vae.config.latent_channels,
            height // self.vae_scale_factor,
            width // self.vae_scale_factor,
        )
        return torch.randn(shape, generator=generator, dtype=torch.float32)

    # ------------------------------------------------------------------ 2+3. connect and denoise
    def predict_velocity(
        self,
        latents: torch.Tensor,
        ref_tokens: torch.Tensor,
        img_ids: torch.Tensor,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        t_curr: float,
    ) -> torch.Tensor:
        """Connector + DiT for the batch [cond, uncond] (or [cond]); returns velocities of the target tokens."""
        batch = embeds.shape[0]
        t_vec = torch.full((batch,), t_curr, dtype=latents.dtype, device=latents.device)
        txt, pooled = self.connector(embeds, t_vec, mask)
        hidden = torch.cat([latents, ref_tokens], dim=1).expand(batch, -1, -1)
        txt_ids = torch.zeros(txt.shape[1], 3, device=latents.device, dtype=img_ids.dtype)
        out = self.transformer(
            hidden_states=hidden,
            encoder_hidden_states=txt.to(latents.dtype),
            pooled_projections=pooled.to(latents.dtype),
            timestep=t_vec,
            img_ids=img_ids,
            txt_ids=txt_ids,
            return_dict=False,
        )[0]
        return out[:, : latents.shape[1]]

    def denoise(
        self,
        latents: torch.Tensor,
        ref_tokens: torch.Tensor,
        img_ids: torch.Tensor,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        timesteps: list[float],
        guidance_scale: float,
        timesteps_truncate: float,
        callback: StepCallback | None = None,
    ) -> torch.Tensor:
        """The official loop: per step one batched forward, CFG combination, Euler step on target tokens."""
        total = len(timesteps) - 1
        autocast = latents.device.type == "cuda" and latents.dtype == torch.bfloat16
        with self.progress_bar(total=total) as progress:
            for step, (t_curr, t_next) in enumerate(zip(timesteps[:-1], timesteps[1:], strict=True)):
                with torch.autocast(latents.device.type, dtype=torch.bfloat16, enabled=autocast):
                    pred = self.predict_velocity(latents, ref_tokens, img_ids, embeds, mask, t_curr)
                if guidance_scale != CFG_DISABLED:
                    pred = combine_cfg(pred[:1], pred[1:], guidance_scale, t_curr, timesteps_truncate)
                latents = euler_step(latents, pred.to(latents.dtype), t_curr, t_next)
                progress.update()
                if callback is not None:
                    callback(step + 1, total)
        return latents

    # ------------------------------------------------------------------ 4. decode
    @torch.no_grad()
    def decode(self, latents: torch.Tensor, height: int, width: int) -> Image.Image:
        """Packed latents -> PIL at the working resolution (VAE in its own dtype, fp32 by default)."""
        unpacked = FluxPipeline._unpack_latents(latents.float(), height, width, self.vae_scale_factor)
        unpacked = unpacked / self.vae.config.scaling_factor + self.vae.config.shift_factor
        return latents_to_pil(self.vae.decode(unpacked.to(self.vae.dtype), return_dict=False)[0])

    # ------------------------------------------------------------------ the whole edit
    @torch.no_grad()
    def __call__(
        self,
        image: ImageSource,
        prompt: str,
        negative_prompt: str = "",
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        size_level: int = DEFAULT_SIZE_LEVEL,
        seed: int | None = None,
        timesteps_truncate: float = DEFAULT_TIMESTEPS_TRUNCATE,
        callback_on_step_end: StepCallback | None = None,
        latents: torch.Tensor | None = None,
        ref_latents: torch.Tensor | None = None,
        sample_reference: bool = True,
        resize_back: bool = True,
    ) -> Step1XEditPipelineOutput:
        """Edit `image` following `prompt`.

        Args:
            image: PIL image, path or encoded bytes (validated by `model.images.load_image`).
            prompt: the instruction (any language); must not be empty.
            negative_prompt: the unconditional branch's instruction (official: "").
            num_inference_steps: Euler steps (official 28).
            guidance_scale: CFG weight (official 6.0); -1 disables CFG (one forward per step).
            size_level: working area ~ size_level^2 (official 512; 768 and 1024 recommended).
            seed: seed of the CPU generator for noise and the VAE posterior sample; None draws one.
            timesteps_truncate: CFG norm-rescale applies while t > this (0.93 current code; 1.0 = v1.0 release).
            callback_on_step_end: called as callback(step, total) after every step.
            latents: injected initial noise [1, C, H/8, W/8] (parity tests; replaces the seeded noise).
            ref_latents: injected normalised reference latents [1, C, H/8, W/8] (replaces the VAE encode).
            sample_reference: sample the VAE posterior (official) or use its mean (deterministic).
            resize_back: resize the output to the input size (official); False keeps the working size.
        """
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("the edit instruction is empty; describe the change you want")
        if size_level < MIN_SIZE_LEVEL:
            raise ValueError(f"size_level must be at least {MIN_SIZE_LEVEL}, got {size_level}")
        source = load_image(image)
        seed = resolve_seed(seed)
        generator = torch.Generator("cpu").manual_seed(seed)
        device, dtype = self._execution_device, self.transformer.dtype

        reference = resize_to_size_level(source, size_level)
        width, height = reference.size
        use_cfg = guidance_scale != CFG_DISABLED

        # 1. encode: noise first, then the reference posterior sample, both from the seeded generator.
        noise = self.prepare_noise(height, width, generator) if latents is None else latents
        prompts = [prompt, negative_prompt] if use_cfg else [prompt]
        embeds, mask = self.encode_prompt(reference, prompts)
        if ref_latents is None:
            ref_latents = self.encode_reference(reference, generator, sample=sample_reference)

        # 2. pack: 2x2 patches -> 64-d tokens; target ids (0,r,c), reference ids per version.
        rows, cols = noise.shape[2] // 2, noise.shape[3] // 2
        packed = FluxPipeline._pack_latents(noise, 1, noise.shape[1], noise.shape[2], noise.shape[3])
        ref_tokens = FluxPipeline._pack_latents(ref_latents, 1, *ref_latents.shape[1:])
        ref_offset = reference_id_offset(self.config.version)
        img_ids = torch.cat(
            [latent_position_ids(rows, cols, 0, device), latent_position_ids(rows, cols, ref_offset, device)]
        )

        # 3. denoise on the official shifted schedule.
        timesteps = get_schedule(num_inference_steps, rows * cols, mu=self._schedule_mu(rows * cols))
        result = self.denoise(
            packed.to(device, dtype),
            ref_tokens.to(device, dtype),
            img_ids,
            embeds.to(device, self.connector.dtype),
            mask.to(device),
            timesteps,
            guidance_scale,
            timesteps_truncate,
            callback_on_step_end,
        )

        # 4. decode and resize back to the input size (PIL default resample, as official).
        edited = self.decode(result, height, width)
        if resize_back and edited.size != source.size:
            edited = edited.resize(source.size, Image.BICUBIC)
        self.maybe_free_model_hooks()
        return Step1XEditPipelineOutput(images=[edited], seed=seed)

    def _schedule_mu(self, image_seq_len: int) -> float:
        """Shift from the token count, with the scheduler's configured shift range when one is present."""
        config = self.scheduler.config if self.scheduler is not None else None
        if config is None:
            return schedule_mu(image_seq_len)
        return schedule_mu(
            image_seq_len,
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", 1.15),
        )
