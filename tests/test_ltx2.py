"""LTX-2 image-to-video: a tiny random-weight pipeline written in the production layout, loaded by the
production loader, rendered, cancelled. No download, no GPU."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from app.config import Settings
from app.errors import RenderCancelled
from app.media.ffmpeg import probe
from app.media.ltx_render import (
    NEGATIVE_PROMPT,
    LtxOptions,
    LtxRequest,
    build_prompt,
    clip_frames,
    condition_image,
    generate,
    generation_frames,
    generation_size,
    render_ltx,
    seed_for,
    source_positions,
)
from app.media.types import MotionPlan, MotionType, Viewport
from app.models import ltx2

#: 2 steps, short prompts: the whole file runs in well under a minute on 2 cores.
FAST = LtxOptions(steps=2, max_width=64, max_height=64, max_sequence_length=32)
PLAN = MotionPlan(MotionType.PUSH_IN, Viewport(0.5, 0.5, 1.0), Viewport(0.55, 0.5, 1.25))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ltx2.save_tiny_random(tmp_path_factory.mktemp("ltx2") / "LTX-2")


@pytest.fixture(scope="module")
def pipe(tiny_dir: Path):  # type: ignore[no-untyped-def]
    import torch

    torch.set_num_threads(2)
    loaded = ltx2.load_pipeline(tiny_dir, device="cpu")
    assert loaded.ok, loaded.reason
    return loaded.pipeline


def _photo(w: int = 160, h: int = 120) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], axis=-1).astype(np.uint8)
    rgb[30:60, 40:90] = (230, 40, 40)
    return rgb


def _request(**overrides: object) -> LtxRequest:
    base: dict[str, object] = {
        "rgb": _photo(),
        "plan": PLAN,
        "width": 64,
        "height": 64,
        "fps": 30,
        "duration": 11 / 30,  # 11 output frames span 1/3 s: 9 generated frames at 24 fps
        "seed_key": "render-key-1",
        "room_type": "kitchen",
    }
    base.update(overrides)
    return LtxRequest(**base)  # type: ignore[arg-type]


def test_tiny_pipeline_uses_the_production_layout(tiny_dir: Path) -> None:
    index = json.loads((tiny_dir / "model_index.json").read_text())
    assert index["_class_name"] == "LTX2ImageToVideoPipeline"
    for name in ("transformer", "vae", "audio_vae", "text_encoder", "tokenizer", "connectors", "vocoder", "scheduler"):
        assert (tiny_dir / name).is_dir(), name
    assert index["text_encoder"] == ["transformers", "Gemma3ForConditionalGeneration"]
    assert ltx2.missing_weights_reason(tiny_dir) is None


def test_render_frame_count_size_fps_and_determinism(pipe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    request = _request()
    generated, stats = generate(pipe, request, FAST)
    assert generated.shape == (9, 64, 64, 3) and generated.dtype == np.uint8  # 8k+1 frames at 64x64
    assert (stats.frames, stats.generated_frames, stats.generation_fps) == (11, 9, 24.0)
    assert stats.generation_size == (64, 64)
    frames = list(clip_frames(generated, stats, request))
    assert len(frames) == 11 and all(f.shape == (64, 64, 3) for f in frames)
    assert np.array_equal(frames[0], generated[0]) and np.array_equal(frames[-1], generated[-1])

    again, _ = generate(pipe, request, FAST)
    assert np.array_equal(generated, again)  # same seed key -> same frames
    other, other_stats = generate(pipe, _request(seed_key="render-key-2"), FAST)
    assert other_stats.seed != stats.seed and not np.array_equal(generated, other)

    # A wide output: generated at 96x64 (multiples of 32, same aspect), written at 144x96, 25 fps.
    out = tmp_path / "clip.mp4"
    wide = _request(width=144, height=96, fps=25, duration=0.4)
    written = render_ltx(pipe, wide, out, options=LtxOptions(**{**FAST.__dict__, "max_width": 128}))
    info = probe(out)
    assert written.generation_size == (96, 64)
    assert info.video is not None and (info.video.width, info.video.height) == (144, 96)
    assert info.frame_count == 10 and abs(info.video.fps - 25) < 0.01


def test_cancel_mid_denoise_stops_within_the_step(pipe) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM arrives during step 2 (before its first transformer block): the render stops right
    there, before the second block runs, instead of finishing the step, the others and the VAE decode."""
    cancel = threading.Event()
    steps_seen: list[int] = []
    second_block_calls_in_step_2 = []

    def progress(done: int, total: int) -> None:
        steps_seen.append(done)

    def first_block(module: object, args: object) -> None:
        if steps_seen == [1]:
            cancel.set()

    def second_block(module: object, args: object) -> None:
        if steps_seen == [1]:
            second_block_calls_in_step_2.append(1)

    blocks = pipe.transformer.transformer_blocks
    handles = [blocks[0].register_forward_pre_hook(first_block), blocks[1].register_forward_pre_hook(second_block)]
    try:
        started = time.perf_counter()
        with pytest.raises(RenderCancelled):
            generate(pipe, _request(cancel=cancel, progress=progress), LtxOptions(**{**FAST.__dict__, "steps": 4}))
        elapsed = time.perf_counter() - started
    finally:
        for handle in handles:
            handle.remove()
    assert steps_seen == [1] and second_block_calls_in_step_2 == [] and elapsed < 30
    # The guard's hooks are gone: the next render runs normally.
    generated, _ = generate(pipe, _request(), FAST)
    assert len(generated) == 9


def test_cancel_at_step_end(pipe) -> None:  # type: ignore[no-untyped-def]
    cancel = threading.Event()
    steps_seen: list[int] = []

    def progress(done: int, total: int) -> None:
        steps_seen.append(done)
        if done == 1:
            cancel.set()

    with pytest.raises(RenderCancelled):
        generate(pipe, _request(cancel=cancel, progress=progress), LtxOptions(**{**FAST.__dict__, "steps": 4}))
    assert steps_seen == [1]


def test_cancel_before_start_raises_at_once(pipe) -> None:  # type: ignore[no-untyped-def]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(RenderCancelled):
        generate(pipe, _request(cancel=cancel), FAST)


def test_loader_and_settings(tiny_dir: Path, tmp_path: Path) -> None:
    missing = ltx2.load_pipeline(tmp_path / "nope")
    assert missing.pipeline is None and "not found" in missing.reason

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text(json.dumps({"_class_name": "LTX2ImageToVideoPipeline", "vae": ["x", "y"]}))
    assert "missing vae" in (ltx2.load_pipeline(broken).reason)

    bad_offload = ltx2.load_pipeline(tiny_dir, offload="bogus")
    assert bad_offload.pipeline is None and "LTX_OFFLOAD" in bad_offload.reason

    off = Settings(_env_file=None, LTX_MODEL_PATH=str(tiny_dir))  # type: ignore[call-arg]
    assert ltx2.load_from_settings(off).reason == "LTX_ENABLED is false"
    default = Settings(_env_file=None, MODEL_CACHE_DIR=tmp_path)  # type: ignore[call-arg]
    assert ltx2.model_path_from_settings(default) == tmp_path / "ltx2" / "LTX-2"
    assert "not found" in ltx2.load_from_settings(default.model_copy(update={"LTX_ENABLED": True})).reason

    ltx2.clear_cache()
    on = Settings(_env_file=None, LTX_MODEL_PATH=str(tiny_dir), LTX_ENABLED=True)  # type: ignore[call-arg]
    first = ltx2.load_from_settings(on, device="cpu")
    assert first.ok and first.dtype == "float32" and first.device == "cpu"
    assert ltx2.load_from_settings(on, device="cpu").pipeline is first.pipeline  # one per process
    ltx2.clear_cache()
    opts = ltx2.options_from_settings(on)
    assert (opts.steps, opts.gen_fps, opts.max_width, opts.max_height) == (30, 24.0, 1280, 704)


@pytest.mark.parametrize("seconds", [0.1, 1.0, 3.0, 4.37, 8.0, 10.5])
@pytest.mark.parametrize("fps", [24, 25, 30, 60])
def test_frame_count_rule(seconds: float, fps: int) -> None:
    n_out = round(seconds * fps)
    n_gen, gen_fps = generation_frames(n_out, fps, 24.0)
    assert (n_gen - 1) % 8 == 0 and 9 <= n_gen <= 257
    pos = source_positions(n_out, fps, gen_fps, n_gen)
    # Every output frame falls inside the generated clip, and the generated clip is no longer than needed.
    assert pos[-1] <= n_gen - 1 + 1e-9 and (n_out - 1) * gen_fps / fps <= n_gen - 1 + 1e-9
    assert n_gen - 1 - (n_out - 1) * gen_fps / fps < 8 + 1e-9 or gen_fps < 24.0


def test_long_clip_lowers_the_generation_rate() -> None:
    n_gen, gen_fps = generation_frames(12 * 30, 30, 24.0, max_frames=257)
    assert n_gen == 257 and gen_fps < 24.0
    assert abs((n_gen - 1) / gen_fps - (360 - 1) / 30) < 1e-9


def test_generation_size_and_conditioning_crop() -> None:
    assert generation_size(1920, 1080, 1280, 704) == (1248, 704)
    assert generation_size(1080, 1920, 1280, 704) == (384, 704)
    assert generation_size(1280, 720, 768, 512) == (736, 416)
    for w, h in [generation_size(1920, 1080, 1280, 704), generation_size(64, 64, 64, 64)]:
        assert w % 32 == 0 and h % 32 == 0
    img = condition_image(_photo(640, 480), PLAN, 1248, 704)
    assert img.shape == (704, 1248, 3) and img.dtype == np.uint8


def test_prompts_and_seeds() -> None:
    prompt = build_prompt("kitchen", MotionType.PUSH_IN)
    assert "dolly-in" in prompt and "kitchen" in prompt and "no people" in prompt
    assert "pan to the left" in build_prompt("living_room", "pan_left")
    assert "exterior" in build_prompt("exterior", MotionType.PULL_OUT)
    assert "home" in build_prompt(None, "unknown-motion")
    assert "watermark" in NEGATIVE_PROMPT and "people" in NEGATIVE_PROMPT
    assert seed_for("a") == seed_for("a") != seed_for("b") and 0 <= seed_for("a") < 2**63
