"""Step1X-Edit: Qwen2.5-VL encoder -> connector -> FLUX-style DiT -> VAE, as a diffusers-style pipeline."""
