"""Tiny random-weight models in the production layout, for tests and demos on machines without weights.

Everything is built locally (random init from tiny configs, a byte-level CLIP vocabulary generated here):
nothing is downloaded. The manifests say ``tiny_random: true`` and the registry refuses such folders when
``ENVIRONMENT=production``. Results are meaningless but shaped exactly like the real models' results.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

from app.models.catalog import Kind
from app.models.layout import model_dir, staging_folder, write_manifest
from app.models.runtime import import_torch, import_transformers

DEFAULT_CLIP_NAME = "ViT-B-32"
DEFAULT_DEPTH_NAME = "depth-anything/Depth-Anything-V2-Small-hf"
DEFAULT_MIDAS_NAME = "DPT_Large"
TINY_REVISION = "tiny-random"
_IMAGENET_MEAN = [0.485, 0.456, 0.406]
_IMAGENET_STD = [0.229, 0.224, 0.225]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level BPE alphabet: every byte as a printable character."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def tiny_clip_tokenizer() -> Any:
    """A working CLIPTokenizer over single characters (no merges): 256 + 256 word-final + 2 specials."""
    tf = import_transformers()
    chars = list(_bytes_to_unicode().values())
    tokens = [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return tf.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _save(kind: Kind, cache_dir: Path, name: str, architecture: str, licence: str, objects: list[Any]) -> Path:
    final = model_dir(cache_dir, kind, name)
    with staging_folder(final) as tmp:
        for obj in objects:
            obj.save_pretrained(tmp)
        write_manifest(
            tmp,
            name=name,
            kind=kind,
            architecture=architecture,
            source_repo=f"picaivid/tiny-random-{architecture}",
            revision=TINY_REVISION,
            licence=licence,
            tiny_random=True,
        )
    return final


def save_tiny_random_clip(cache_dir: Path, name: str = DEFAULT_CLIP_NAME, *, seed: int = 0) -> Path:
    """A random CLIP (hidden 32, 2 layers, 32 px images, 16-d embeddings) at ``cache_dir/clip/<name>``."""
    torch, tf = import_torch(), import_transformers()
    tokenizer = tiny_clip_tokenizer()
    special = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|startoftext|>", "<|endoftext|>")}
    small = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    config = tf.CLIPConfig(
        text_config={
            **small,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 77,
            "bos_token_id": special["<|startoftext|>"],
            "eos_token_id": special["<|endoftext|>"],
            "pad_token_id": special["<|endoftext|>"],
        },
        vision_config={**small, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = tf.CLIPModel(config).eval()
    processor = tf.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return _save("clip", cache_dir, name, "clip", "mit", [model, tokenizer, processor])


def save_tiny_random_depth(
    cache_dir: Path, name: str = DEFAULT_DEPTH_NAME, *, seed: int = 0, licence: str = "apache-2.0"
) -> Path:
    """A random Depth Anything (DINOv2 backbone hidden 32, 2 layers, 56 px input) at ``cache_dir/depth/…``."""
    torch, tf = import_torch(), import_transformers()
    backbone = tf.Dinov2Config(
        image_size=56,
        patch_size=14,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        out_features=["stage1", "stage2"],
        reshape_hidden_states=False,
    )
    config = tf.DepthAnythingConfig(
        backbone_config=backbone,
        patch_size=14,
        reassemble_hidden_size=32,
        reassemble_factors=[2, 1],
        neck_hidden_sizes=[16, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
    )
    torch.manual_seed(seed)
    model = tf.DepthAnythingForDepthEstimation(config).eval()
    processor = tf.DPTImageProcessorPil(
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,
        image_mean=_IMAGENET_MEAN,
        image_std=_IMAGENET_STD,
    )
    return _save("depth", cache_dir, name, "depth_anything", licence, [model, processor])


def save_tiny_random_dpt(cache_dir: Path, name: str = DEFAULT_MIDAS_NAME, *, seed: int = 0) -> Path:
    """A random MiDaS-style DPT (ViT hidden 32, 4 layers, 32 px square input) at ``cache_dir/depth/…``."""
    torch, tf = import_torch(), import_transformers()
    config = tf.DPTConfig(
        image_size=32,
        patch_size=16,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[16, 16, 32, 32],
        reassemble_factors=[4, 2, 1, 0.5],
        fusion_hidden_size=16,
    )
    torch.manual_seed(seed)
    model = tf.DPTForDepthEstimation(config).eval()
    processor = tf.DPTImageProcessorPil(
        size={"height": 32, "width": 32}, keep_aspect_ratio=False, resample=3, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    return _save("depth", cache_dir, name, "dpt", "apache-2.0", [model, processor])


def save_tiny_random_ltx2(cache_dir: Path) -> Path | None:
    """The hook for the LTX-2 kind: ``app.models.ltx2.save_tiny_random(dir)`` when that module exists, with
    dir = ``cache_dir / ltx2.DEFAULT_SUBDIR`` (``ltx2/LTX-2``, where its loader looks by default)."""
    if importlib.util.find_spec("app.models.ltx2") is None:
        return None
    module = importlib.import_module("app.models.ltx2")
    subdir = Path(getattr(module, "DEFAULT_SUBDIR", Path("ltx2") / "LTX-2"))
    result = module.save_tiny_random(Path(cache_dir) / subdir)
    return Path(result) if result is not None else None


def save_tiny_random(
    cache_dir: Path, *, kinds: tuple[str, ...] = ("clip", "depth", "midas", "ltx2")
) -> dict[str, Path]:
    """Every tiny model under the default setting names (so pointing MODEL_CACHE_DIR at `cache_dir` loads them)."""
    writers = {
        "clip": save_tiny_random_clip,
        "depth": save_tiny_random_depth,
        "midas": save_tiny_random_dpt,
        "ltx2": save_tiny_random_ltx2,
    }
    written: dict[str, Path] = {}
    for kind in kinds:
        path = writers[kind](Path(cache_dir))
        if path is not None:
            written[kind] = path
    return written
