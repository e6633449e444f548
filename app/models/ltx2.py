"""LTX-2 image-to-video: loading the diffusers pipeline (offline, once per process) and random builders.

The renderer that drives the pipeline is `app.media.ltx_render` (pure: it receives a loaded pipeline).

Components (diffusers `LTX2ImageToVideoPipeline`, the layout `save_pretrained` writes and `load_pipeline`
reads): `transformer` (LTX2VideoTransformer3DModel, the ~19B audio+video DiT: 48 layers, 32x128 video
heads, 32x64 audio heads), `vae` (AutoencoderKLLTX2Video, 32x spatial / 8x temporal compression, hence
sizes in multiples of 32 and 8k+1 frames), `audio_vae` + `vocoder` (the model always generates a sound
track; we discard it), `text_encoder` (Gemma 3 12B, `Gemma3ForConditionalGeneration`), `tokenizer`
(GemmaTokenizer), `connectors` (LTX2TextConnectors: text features -> video/audio cross-attention) and
`scheduler` (FlowMatchEulerDiscreteScheduler). The weights live under `LTX_MODEL_PATH` (default
`MODEL_CACHE_DIR/ltx2/LTX-2`), a diffusers folder with `model_index.json`; nothing is ever downloaded.

Memory and instance class. Parameters (counted from the published configs): DiT 18.9B, Gemma 3 12B
12.2B, connectors 1.4B, video VAE 1.2B, audio VAE + vocoder 0.1B: ~63 GB in bf16, plus the activations
of a 1248x704x97 clip (~11k video tokens; guidance runs 3-4 transformer passes per step):

* `LTX_OFFLOAD=none` (everything resident) needs an 80 GB-class GPU: p4de/p5 (A100 80 GB / H100) or an
  H200 (p5e). This is the fast path. A 24 GB g5.xlarge (A10G) cannot hold it.
* `LTX_OFFLOAD=model` (`enable_model_cpu_offload`: one component on the GPU at a time) peaks at the DiT
  (~38 GB) plus activations, which is at the edge of a 48 GB L40S: g6e.4xlarge (48 GB GPU, 128 GB host RAM;
  the host must hold all ~63 GB of offloaded weights, so g6e.xlarge/2xlarge with 32/64 GB RAM are too small).
* `LTX_OFFLOAD=sequential` (`enable_sequential_cpu_offload`: layer by layer) fits a 24 GB card but is many
  times slower, and the host still needs ~64 GB+ of RAM (g5.8xlarge). A smaller LTX-Video checkpoint
  (e.g. the 2B LTX-Video 0.9.x family, a different pipeline class) is the practical choice for 24 GB.
* Both offload modes need the `accelerate` package (not in requirements today; the loader reports it).

`scripts/gpu_check.py` measures seconds per clip and peak VRAM on the machine at hand.

Licence: LTX-2 is released under the LTX-2 Community License. Commercial use is free only for entities
below the licence's annual-revenue threshold; a company above it needs a commercial licence from
Lightricks before `LTX_ENABLED=true`. Gemma 3 (the text encoder) is under Google's Gemma Terms of Use.
"""

from __future__ import annotations

import json
import os
import string
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from app.config import Settings

Offload = Literal["none", "model", "sequential"]
OFFLOAD_MODES: tuple[str, ...] = ("none", "model", "sequential")

#: Folder under MODEL_CACHE_DIR used when LTX_MODEL_PATH is empty.
DEFAULT_SUBDIR = Path("ltx2") / "LTX-2"


@dataclass(frozen=True)
class LtxLoad:
    """The outcome of loading: `pipeline` is None when it could not be loaded, and `reason` says why."""

    pipeline: Any | None
    reason: str
    path: str
    device: str = "cpu"
    dtype: str = "float32"
    offload: str = "none"

    @property
    def ok(self) -> bool:
        return self.pipeline is not None


def go_offline() -> None:
    """Never reach a hub: set before diffusers / transformers / huggingface_hub are imported."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def model_path_from_settings(settings: Settings) -> Path:
    """`LTX_MODEL_PATH`, or `MODEL_CACHE_DIR/ltx2/LTX-2` when it is empty."""
    configured = getattr(settings, "LTX_MODEL_PATH", "")
    return Path(configured) if configured else Path(settings.MODEL_CACHE_DIR) / DEFAULT_SUBDIR


def missing_weights_reason(path: str | os.PathLike[str]) -> str | None:
    """Why `path` is not a loadable LTX-2 diffusers folder, or None when it looks complete."""
    root = Path(path)
    index = root / "model_index.json"
    if not root.is_dir():
        return f"LTX-2 weights not found: {root} does not exist"
    if not index.is_file():
        return f"LTX-2 weights not found: {index} is missing"
    try:
        entries = json.loads(index.read_text())
    except (OSError, ValueError) as exc:
        return f"LTX-2 model_index.json unreadable: {exc}"
    cls = entries.get("_class_name", "")
    if not str(cls).startswith("LTX2"):
        return f"{index} describes {cls or 'no pipeline'}, not an LTX-2 pipeline"
    missing = [
        name
        for name, spec in entries.items()
        if not name.startswith("_") and isinstance(spec, list) and spec[0] is not None and not (root / name).is_dir()
    ]
    if missing:
        return f"LTX-2 weights incomplete in {root}: missing {', '.join(sorted(missing))}"
    return None


def pick_device(device: str | None = None) -> str:
    """`device` when given, else "cuda" when available, else "cpu"."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def dtype_for(device: str) -> Any:
    """bf16 on CUDA, float32 elsewhere (CPU bf16 kernels are slow and some are missing)."""
    import torch

    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def _place(pipe: Any, device: str, offload: str) -> str:
    """Move the pipeline to `device` or install CPU offload; returns the offload actually used."""
    if offload == "none" or not device.startswith("cuda"):
        pipe.to(device)
        return "none"
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.enable_sequential_cpu_offload(device=device)
    return offload


def _has_accelerate() -> bool:
    try:
        import accelerate  # noqa: F401
    except ImportError:
        return False
    return True


def _offload_unavailable(offload: str) -> str | None:
    if offload not in OFFLOAD_MODES:
        return f"LTX_OFFLOAD={offload!r} is not one of {', '.join(OFFLOAD_MODES)}"
    if offload != "none" and not _has_accelerate():
        return f"LTX_OFFLOAD={offload} needs the accelerate package, which is not installed"
    return None


def load_pipeline(path: str | os.PathLike[str], *, offload: str = "none", device: str | None = None) -> LtxLoad:
    """Load the LTX-2 image-to-video pipeline from `path` only (local files, no hub), uncached.

    Never raises for missing or broken weights: the result carries `pipeline=None` and the reason."""
    where = str(path)
    reason = missing_weights_reason(path) or _offload_unavailable(offload)
    if reason:
        return LtxLoad(None, reason, where, offload=offload)
    go_offline()
    dev = pick_device(device)
    try:
        from diffusers import LTX2ImageToVideoPipeline

        dtype = dtype_for(dev)
        pipe = LTX2ImageToVideoPipeline.from_pretrained(
            where, dtype=dtype, local_files_only=True, low_cpu_mem_usage=_has_accelerate()
        )
        used = _place(pipe, dev, offload)
        pipe.set_progress_bar_config(disable=True)
    except Exception as exc:  # a broken checkpoint, out of memory, a version mismatch: reported, not raised
        return LtxLoad(None, f"could not load LTX-2 from {where}: {type(exc).__name__}: {exc}", where, dev)
    return LtxLoad(pipe, "", where, dev, str(dtype).removeprefix("torch."), used)


_CACHE: dict[tuple[str, str, str], LtxLoad] = {}
_CACHE_LOCK = threading.Lock()


def get_pipeline(path: str | os.PathLike[str], *, offload: str = "none", device: str | None = None) -> LtxLoad:
    """One pipeline per worker process: the first call loads (or fails), later calls return that result.

    A failure is cached too (loading 60 GB of weights again for every clip would be worse than not
    rendering with LTX-2); `clear_cache()` forgets it, e.g. after the weights were installed."""
    dev = pick_device(device)
    key = (str(Path(path).resolve()), dev, offload)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = load_pipeline(path, offload=offload, device=dev)
        return _CACHE[key]


def load_from_settings(settings: Settings, *, device: str | None = None) -> LtxLoad:
    """The process's pipeline as configured: None with a reason when LTX_ENABLED is false or no weights."""
    path = model_path_from_settings(settings)
    if not getattr(settings, "LTX_ENABLED", False):
        return LtxLoad(None, "LTX_ENABLED is false", str(path))
    return get_pipeline(path, offload=str(getattr(settings, "LTX_OFFLOAD", "none")), device=device)


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


# --- random-weight builders (tests, scripts/gpu_check.py) ------------------------------------------------


#: LTX-2.0 component configs as published (diffusers' scripts/convert_ltx2_to_diffusers.py, version "2.0").
FULL_CONFIG: dict[str, dict[str, Any]] = {
    "transformer": {
        "in_channels": 128,
        "out_channels": 128,
        "num_attention_heads": 32,
        "attention_head_dim": 128,
        "cross_attention_dim": 4096,
        "audio_in_channels": 128,
        "audio_out_channels": 128,
        "audio_num_attention_heads": 32,
        "audio_attention_head_dim": 64,
        "audio_cross_attention_dim": 2048,
        "num_layers": 48,
        "caption_channels": 3840,
        "rope_double_precision": True,
        "rope_type": "split",
    },
    "connectors": {
        "caption_channels": 3840,
        "text_proj_in_factor": 49,
        "video_connector_num_attention_heads": 30,
        "video_connector_attention_head_dim": 128,
        "video_connector_num_layers": 2,
        "video_connector_num_learnable_registers": 128,
        "audio_connector_num_attention_heads": 30,
        "audio_connector_attention_head_dim": 128,
        "audio_connector_num_layers": 2,
        "audio_connector_num_learnable_registers": 128,
        "connector_rope_base_seq_len": 4096,
        "rope_double_precision": True,
        "rope_type": "split",
    },
    "vae": {
        "latent_channels": 128,
        "block_out_channels": (256, 512, 1024, 2048),
        "decoder_block_out_channels": (256, 512, 1024),
        "layers_per_block": (4, 6, 6, 2, 2),
        "decoder_layers_per_block": (5, 5, 5, 5),
        "upsample_residual": (True, True, True),
        "upsample_factor": (2, 2, 2),
        "decoder_causal": False,
        "spatial_compression_ratio": 32,
        "temporal_compression_ratio": 8,
    },
    "audio_vae": {
        "base_channels": 128,
        "ch_mult": (1, 2, 4),
        "num_res_blocks": 2,
        "latent_channels": 8,
        "mel_bins": 64,
    },
    "vocoder": {"in_channels": 128, "hidden_channels": 1024, "output_sampling_rate": 24000},
    # Gemma 3 12B (text) + SigLIP (vision tower, unused for text-only prompts but part of the class).
    "text": {
        "vocab_size": 262208,
        "hidden_size": 3840,
        "intermediate_size": 15360,
        "num_hidden_layers": 48,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 256,
        "sliding_window": 1024,
    },
    "vision": {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16},
}

#: The same architecture at toy size: 32x spatial / 8x temporal VAE compression like production, so the
#: renderer's size and frame-count rules are exercised exactly as they are on the real model.
TINY_CONFIG: dict[str, dict[str, Any]] = {
    "transformer": {
        "in_channels": 4,
        "out_channels": 4,
        "num_attention_heads": 2,
        "attention_head_dim": 8,
        "cross_attention_dim": 16,
        "audio_in_channels": 4,
        "audio_out_channels": 4,
        "audio_num_attention_heads": 2,
        "audio_attention_head_dim": 4,
        "audio_cross_attention_dim": 8,
        "num_layers": 2,
        "caption_channels": 32,
        "rope_double_precision": False,
        "rope_type": "split",
    },
    "connectors": {
        "caption_channels": 32,
        "text_proj_in_factor": 3,
        "video_connector_num_attention_heads": 4,
        "video_connector_attention_head_dim": 8,
        "video_connector_num_layers": 1,
        "video_connector_num_learnable_registers": None,
        "audio_connector_num_attention_heads": 4,
        "audio_connector_attention_head_dim": 8,
        "audio_connector_num_layers": 1,
        "audio_connector_num_learnable_registers": None,
        "connector_rope_base_seq_len": 32,
        "rope_double_precision": False,
        "rope_type": "split",
    },
    "vae": {
        "latent_channels": 4,
        "block_out_channels": (8, 8, 8, 8),
        "decoder_block_out_channels": (8, 8, 8),
        "layers_per_block": (1, 1, 1, 1, 1),
        "decoder_layers_per_block": (1, 1, 1, 1),
        "upsample_residual": (False, False, False),
        "upsample_factor": (1, 1, 1),
        "decoder_causal": False,
        "spatial_compression_ratio": 32,
        "temporal_compression_ratio": 8,
    },
    "audio_vae": {"base_channels": 4, "ch_mult": (1,), "num_res_blocks": 1, "latent_channels": 2, "mel_bins": 8},
    "vocoder": {
        "in_channels": 16,
        "hidden_channels": 32,
        "upsample_kernel_sizes": [4, 4],
        "upsample_factors": [2, 2],
        "resnet_kernel_sizes": [3],
        "resnet_dilations": [[1, 3, 5]],
        "output_sampling_rate": 16000,
    },
    "text": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "sliding_window": 32,
        "max_position_embeddings": 2048,
    },
    "vision": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
}


def tiny_tokenizer() -> Any:
    """A Gemma tokenizer built locally: characters only (the real one has 262k BPE pieces)."""
    go_offline()
    from transformers import GemmaTokenizer

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    chars = ["▁", *string.ascii_letters, *string.digits, *",.;:!?'-()/&"]
    image_tokens = ["<start_of_image>", "<end_of_image>", "<image_soft_token>"]
    vocab = {tok: i for i, tok in enumerate([*specials, *chars, *image_tokens])}
    return GemmaTokenizer(vocab=vocab, merges=[])


def _gemma_config(spec: dict[str, dict[str, Any]], tokenizer: Any) -> Any:
    """Gemma 3 config from `spec`; without a vocab_size in it, sized to `tokenizer` (image tokens included)."""
    from transformers import Gemma3Config

    text = dict(spec["text"])
    vision = dict(spec["vision"])
    extra: dict[str, Any] = {}
    if "vocab_size" not in text:
        vision.update(image_size=28, patch_size=14)
        vocab = tokenizer.get_vocab()
        text.update(vocab_size=len(vocab), pad_token_id=0, eos_token_id=1, bos_token_id=2)
        extra = {
            "mm_tokens_per_image": 4,
            "boi_token_index": vocab["<start_of_image>"],
            "eoi_token_index": vocab["<end_of_image>"],
            "image_token_index": vocab["<image_soft_token>"],
        }
    return Gemma3Config(text_config=text, vision_config=vision, **extra)


def build_random_pipeline(spec: dict[str, dict[str, Any]], *, tokenizer: Any, seed: int = 0) -> Any:
    """An LTX2ImageToVideoPipeline with every component randomly initialised from `spec`
    (`TINY_CONFIG` or `FULL_CONFIG`). Built on the current default device and dtype (see `build_context`)."""
    go_offline()
    import torch
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
        LTX2ImageToVideoPipeline,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
    from transformers import Gemma3ForConditionalGeneration

    torch.manual_seed(seed)
    text_encoder = Gemma3ForConditionalGeneration(_gemma_config(spec, tokenizer)).eval()
    return LTX2ImageToVideoPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=AutoencoderKLLTX2Video(**spec["vae"]),
        audio_vae=AutoencoderKLLTX2Audio(**spec["audio_vae"]),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        connectors=LTX2TextConnectors(**spec["connectors"]),
        transformer=LTX2VideoTransformer3DModel(**spec["transformer"]),
        vocoder=LTX2Vocoder(**spec["vocoder"]),
    )


@contextmanager
def build_context(device: str, dtype: Any) -> Iterator[None]:
    """Create parameters directly on `device` in `dtype` (a 19B model never exists in float32 at once)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def save_tiny_random(directory: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Write a tiny random-weight LTX-2 pipeline to `directory` in the production on-disk layout
    (`save_pretrained`: model_index.json + one folder per component), loadable by `load_pipeline`.
    No download: the tokenizer is built locally. About 1 MB, a few seconds on one CPU core."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    pipe = build_random_pipeline(TINY_CONFIG, tokenizer=tiny_tokenizer(), seed=seed)
    pipe.save_pretrained(str(out))
    return out


def options_from_settings(settings: Settings) -> Any:
    """`app.media.ltx_render.LtxOptions` from the LTX_* settings."""
    from app.media.ltx_render import LtxOptions

    return LtxOptions(
        steps=int(settings.LTX_STEPS),
        gen_fps=float(settings.LTX_FPS),
        max_width=int(settings.LTX_WIDTH),
        max_height=int(settings.LTX_HEIGHT),
    )
