"""The model layer (app/models): tiny random checkpoints written in the production layout, loaded through
the production loader, offline. Fast: every model here is a few hundred kB."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from app.config import Settings
from app.media.images import ROOM_LABELS
from app.models import (
    MANIFEST_NAME,
    ClipResult,
    ModelRegistry,
    clear_model_registry_cache,
    get_model_registry,
    read_manifest,
    resolve,
)
from app.models.catalog import folder_name
from app.models.depth import _normalise
from app.models.fetch import DownloadError, download_model, weight_patterns
from app.models.tiny import save_tiny_random, save_tiny_random_clip, save_tiny_random_depth

ROOT = Path(__file__).resolve().parents[1]
CLIP_SOURCE = "clip:picaivid/tiny-random-clip@tiny-random"
DEPTH_SOURCE = "depth:picaivid/tiny-random-depth_anything@tiny-random"
DPT_SOURCE = "depth:picaivid/tiny-random-dpt@tiny-random"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Any connection attempt fails the test (after being refused)."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("network access in a model test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield attempts
    assert attempts == [], f"network touched: {attempts}"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model-cache")
    written = save_tiny_random(root, kinds=("clip", "depth", "midas"))
    assert set(written) == {"clip", "depth", "midas"}
    return root


def settings_for(cache_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "MODEL_CACHE_DIR": cache_dir,
        "OPENCLIP_MODEL": "ViT-B-32",
        "DEPTH_MODEL": "depth-anything/Depth-Anything-V2-Small-hf",
        "MIDAS_MODEL": "DPT_Large",
        "MODELS_ENABLED": True,
        "MODELS_ALLOW_NONCOMMERCIAL": False,
        "MODELS_DEVICE": "cpu",
        "ENVIRONMENT": "test",
        "DEPTH_INPUT_SIZE": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def registry(cache: Path) -> ModelRegistry:
    return ModelRegistry.from_settings(settings_for(cache))


def photo(seed: int, width: int = 160, height: int = 120) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) % 255], axis=-1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def copy_model(cache: Path, kind: str, folder: str, dest_root: Path) -> Path:
    dest = dest_root / kind / folder
    shutil.copytree(cache / kind / folder, dest)
    return dest


# --- layout and loading --------------------------------------------------------------------------


def test_layout_and_manifest(cache: Path) -> None:
    folder = cache / "clip" / "ViT-B-32"
    manifest = read_manifest(folder)
    assert (manifest.name, manifest.kind, manifest.architecture, manifest.licence) == (
        "ViT-B-32",
        "clip",
        "clip",
        "mit",
    )
    assert manifest.tiny_random and manifest.source == CLIP_SOURCE
    assert {"config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"} <= set(manifest.files)
    assert all(len(h) == 64 for h in manifest.files.values())
    assert (cache / "depth" / "Depth-Anything-V2-Small-hf" / MANIFEST_NAME).is_file()
    assert read_manifest(cache / "depth" / "DPT_Large").architecture == "dpt"
    assert not list(cache.rglob(".*")), "no staging leftovers"


def test_registry_loads_tiny_models_offline(registry: ModelRegistry) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert registry.clip is not None and registry.depth is not None
    assert registry.components == {"clip": registry.clip, "depth": registry.depth}
    report = registry.report()
    assert report["clip"] == {"loaded": True, "source": CLIP_SOURCE, "fallback_reason": None}
    assert report["depth"] == {"loaded": True, "source": DEPTH_SOURCE, "fallback_reason": None}
    midas = [a for a in report["attempts"] if a["setting"] == "MIDAS_MODEL"]
    assert midas and midas[0]["reason"] == "not needed (DEPTH_MODEL loaded)"
    json.dumps(report)
    assert "clip=" + CLIP_SOURCE in registry.describe()
    assert set(registry.clip.components) == {"model", "tokenizer", "image_processor"}


def test_clip_results(registry: ModelRegistry) -> None:
    clip = registry.clip
    images = [photo(1), photo(2, 90, 200), Image.fromarray(photo(3)), photo(4)[:, :, 0]]
    results = clip(images)
    assert len(results) == 4 and all(isinstance(r, ClipResult) for r in results)
    for r in results:
        assert tuple(r.room_probs) == ROOM_LABELS
        assert sum(r.room_probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert r.interior_prob + r.exterior_prob == pytest.approx(1.0, abs=1e-6)
        assert 0.0 <= r.exterior_prob <= 1.0 and r.room_label in ROOM_LABELS
        assert r.embedding.dtype == np.float32 and r.embedding.shape == (16,)
        assert float(np.linalg.norm(r.embedding)) == pytest.approx(1.0, abs=1e-5)
        assert r.source == CLIP_SOURCE
        assert json.loads(json.dumps(r.as_dict()))["room_label"] == r.room_label
    again = clip(images)
    for a, b in zip(results, again, strict=True):
        assert a.room_probs == b.room_probs and np.array_equal(a.embedding, b.embedding)
    assert not np.allclose(results[0].embedding, results[1].embedding)
    assert clip([]) == []


def test_clip_batching_does_not_change_results(registry: ModelRegistry) -> None:
    clip = registry.clip
    images = [photo(i) for i in range(5)]
    whole = clip.embed_images(images)
    saved = clip.batch_size
    try:
        clip.batch_size = 2
        assert np.allclose(clip.embed_images(images), whole, atol=1e-5)
    finally:
        clip.batch_size = saved


def test_depth_results(registry: ModelRegistry) -> None:
    depth = registry.depth
    for width, height in ((160, 120), (90, 200), (1500, 1000)):
        image = photo(width, width, height)
        result = depth(image)
        assert result.depth.shape == (height, width) and result.size == (width, height)
        assert result.depth.dtype == np.float32
        assert float(result.depth.min()) == pytest.approx(0.0, abs=1e-6)
        assert float(result.depth.max()) == pytest.approx(1.0, abs=1e-6)
        assert result.depth_variance == pytest.approx(float(result.depth.var()), rel=1e-5)
        assert result.source == DEPTH_SOURCE
    first, second = depth(photo(7)), depth(Image.fromarray(photo(7)))
    assert np.array_equal(first.depth, second.depth)
    assert depth(photo(7), size=(40, 30)).depth.shape == (30, 40)
    flat = _normalise(np.full((4, 5), 3.0, dtype=np.float32))
    assert flat.dtype == np.float32 and not flat.any()


def test_depth_input_size_setting(cache: Path) -> None:
    registry = ModelRegistry.from_settings(settings_for(cache, DEPTH_INPUT_SIZE=28))
    assert registry.depth is not None and registry.depth.input_size == 28
    result = registry.depth(photo(3, 150, 100))
    assert result.depth.shape == (100, 150) and float(result.depth.max()) == pytest.approx(1.0, abs=1e-6)
    dpt = ModelRegistry.from_settings(settings_for(cache, DEPTH_MODEL="", DEPTH_INPUT_SIZE=28))
    assert dpt.depth is not None and dpt.depth.input_size is None and dpt.depth.source == DPT_SOURCE


def test_midas_is_used_when_depth_model_is_unavailable(cache: Path) -> None:
    registry = ModelRegistry.from_settings(settings_for(cache, DEPTH_MODEL="Depth-Anything-V2-Small-missing"))
    assert registry.depth is not None and registry.depth(photo(1)).source == DPT_SOURCE
    report = registry.report()
    assert report["depth"]["source"] == DPT_SOURCE
    first = report["attempts"][1]
    assert first["setting"] == "DEPTH_MODEL" and "no weights at" in first["reason"]
    result = registry.depth(photo(2, 90, 200))
    assert result.depth.shape == (200, 90)


def test_missing_weights_fall_back_with_reasons(tmp_path: Path) -> None:
    registry = ModelRegistry.from_settings(settings_for(tmp_path / "empty"))
    assert registry.clip is None and registry.depth is None
    report = registry.report()
    assert not report["clip"]["loaded"] and "no weights at" in report["clip"]["fallback_reason"]
    reason = report["depth"]["fallback_reason"]
    assert "DEPTH_MODEL: no weights at" in reason and "MIDAS_MODEL: no weights at" in reason
    assert "fallback (" in registry.describe()


def test_missing_weights_never_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from app.config import Settings; from app.models import ModelRegistry; "
        f"r = ModelRegistry.from_settings(Settings(_env_file=None, MODEL_CACHE_DIR={str(tmp_path)!r})); "
        "assert r.clip is None and r.depth is None; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'imported'"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)


def test_disabled_and_unconfigured(cache: Path) -> None:
    off = ModelRegistry.from_settings(settings_for(cache, MODELS_ENABLED=False))
    assert off.clip is None and off.depth is None
    assert off.report()["clip"]["fallback_reason"] == "OPENCLIP_MODEL: disabled (MODELS_ENABLED=false)"
    empty = ModelRegistry.from_settings(settings_for(cache, OPENCLIP_MODEL="", DEPTH_MODEL="", MIDAS_MODEL=""))
    assert empty.clip is None and empty.depth is None
    assert "not configured" in empty.report()["clip"]["fallback_reason"]
    assert "not configured" in empty.report()["depth"]["fallback_reason"]


@pytest.mark.parametrize("damage", ["flip_weights", "drop_manifest", "garbage_manifest", "drop_file", "wrong_kind"])
def test_corrupt_weights_fall_back(cache: Path, tmp_path: Path, damage: str) -> None:
    folder = copy_model(cache, "clip", "ViT-B-32", tmp_path)
    weights, manifest = folder / "model.safetensors", folder / MANIFEST_NAME
    if damage == "flip_weights":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "drop_manifest":
        manifest.unlink()
    elif damage == "garbage_manifest":
        manifest.write_text("{not json")
    elif damage == "drop_file":
        (folder / "tokenizer.json").unlink()
    else:
        manifest.write_text(manifest.read_text().replace('"kind": "clip"', '"kind": "depth"'))
    registry = ModelRegistry.from_settings(settings_for(tmp_path))
    assert registry.clip is None
    reason = registry.report()["clip"]["fallback_reason"]
    expected = {
        "flip_weights": "does not match its sha256",
        "drop_manifest": f"no {MANIFEST_NAME}",
        "garbage_manifest": "unreadable manifest",
        "drop_file": "tokenizer.json is missing",
        "wrong_kind": "holds a 'depth' model",
    }[damage]
    assert reason.startswith("OPENCLIP_MODEL: corrupt weights") and expected in reason


def test_weights_that_fail_to_load_fall_back(cache: Path, tmp_path: Path) -> None:
    """Files consistent with their manifest but not a loadable checkpoint: caught, reason recorded."""
    from app.models.layout import write_manifest

    folder = copy_model(cache, "clip", "ViT-B-32", tmp_path)
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    old = read_manifest(folder)
    write_manifest(
        folder, **{k: getattr(old, k) for k in ("name", "kind", "architecture", "source_repo", "revision", "licence")}
    )
    registry = ModelRegistry.from_settings(settings_for(tmp_path))
    assert registry.clip is None
    assert registry.report()["clip"]["fallback_reason"].startswith("OPENCLIP_MODEL: failed to load")


def test_noncommercial_depth_checkpoints_are_refused(tmp_path: Path) -> None:
    # The manifest claims Apache-2.0, but the catalogue knows Base is CC-BY-NC-4.0: the catalogue wins.
    save_tiny_random_depth(tmp_path, "depth-anything/Depth-Anything-V2-Base-hf", licence="apache-2.0")
    assert (tmp_path / "depth" / "Depth-Anything-V2-Base-hf").is_dir()
    refused = ModelRegistry.from_settings(
        settings_for(tmp_path, DEPTH_MODEL="depth-anything/Depth-Anything-V2-Base-hf", MIDAS_MODEL="")
    )
    assert refused.depth is None
    reason = refused.report()["depth"]["fallback_reason"]
    assert "refused" in reason and "cc-by-nc-4.0" in reason and "MODELS_ALLOW_NONCOMMERCIAL" in reason
    allowed = ModelRegistry.from_settings(
        settings_for(
            tmp_path,
            DEPTH_MODEL="Depth-Anything-V2-Base",
            MIDAS_MODEL="",
            MODELS_ALLOW_NONCOMMERCIAL=True,
        )
    )
    assert allowed.depth is not None


def test_uncatalogued_checkpoints_need_a_commercial_licence(tmp_path: Path) -> None:
    save_tiny_random_depth(tmp_path, "someone/depth-nc", licence="cc-by-nc-4.0")
    save_tiny_random_depth(tmp_path, "someone/depth-mit", licence="mit")
    assert (tmp_path / "depth" / "someone--depth-mit").is_dir()
    nc = ModelRegistry.from_settings(settings_for(tmp_path, DEPTH_MODEL="someone/depth-nc", MIDAS_MODEL=""))
    assert nc.depth is None and "cc-by-nc-4.0" in nc.report()["depth"]["fallback_reason"]
    ok = ModelRegistry.from_settings(settings_for(tmp_path, DEPTH_MODEL="someone/depth-mit", MIDAS_MODEL=""))
    assert ok.depth is not None


def test_tiny_random_weights_are_refused_in_production(cache: Path) -> None:
    registry = ModelRegistry.from_settings(settings_for(cache, ENVIRONMENT="production"))
    assert registry.clip is None and registry.depth is None
    assert "tiny random test weights" in registry.report()["clip"]["fallback_reason"]


def test_unsafe_names_are_refused_not_crashed(cache: Path) -> None:
    registry = ModelRegistry.from_settings(settings_for(cache, OPENCLIP_MODEL="../../etc"))
    assert registry.clip is None and "not a safe folder name" in registry.report()["clip"]["fallback_reason"]


def test_catalog() -> None:
    assert resolve("clip", "ViT-B-32").repo == "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"  # type: ignore[union-attr]
    assert resolve("clip", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K").folder == "ViT-B-32"  # type: ignore[union-attr]
    small = resolve("depth", "depth-anything/Depth-Anything-V2-Small-hf")
    assert small is not None and small.licence == "apache-2.0" and small.commercial
    for name in ("Depth-Anything-V2-Base-hf", "depth-anything/Depth-Anything-V2-Large-hf"):
        spec = resolve("depth", name)
        assert spec is not None and not spec.commercial and spec.licence == "cc-by-nc-4.0"
    assert resolve("depth", "dpt_large").repo == "Intel/dpt-large"  # type: ignore[union-attr]
    assert resolve("clip", "DPT_Large") is None
    assert folder_name("depth", "org/Some.Model-1") == "org--Some.Model-1"
    with pytest.raises(ValueError):
        folder_name("clip", "a/../b")


def test_get_model_registry_is_built_once(cache: Path) -> None:
    clear_model_registry_cache()
    settings = settings_for(cache, DEPTH_MODEL="", MIDAS_MODEL="")
    first = get_model_registry(settings)
    assert get_model_registry(settings) is first and first.clip is not None
    clear_model_registry_cache()
    assert get_model_registry(settings) is not first
    clear_model_registry_cache()


# --- downloads and the script ----------------------------------------------------------------------


def test_download_is_refused_offline_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"cannot reach the Hugging Face hub.*offline"):
        download_model("clip", "ViT-B-32", tmp_path)
    with pytest.raises(DownloadError, match=r"refused.*cc-by-nc-4\.0"):
        download_model("depth", "depth-anything/Depth-Anything-V2-Large-hf", tmp_path)
    with pytest.raises(DownloadError, match="neither a known"):
        download_model("clip", "mystery", tmp_path)
    assert not list((tmp_path / "clip").glob("*")) if (tmp_path / "clip").exists() else True


def test_weight_patterns_prefer_safetensors() -> None:
    assert "model.safetensors" in weight_patterns(["model.safetensors", "pytorch_model.bin", "config.json"])
    assert "pytorch_model.bin" not in weight_patterns(["model.safetensors", "pytorch_model.bin"])
    assert "pytorch_model.bin" in weight_patterns(["pytorch_model.bin", "config.json"])


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("download_models", ROOT / "scripts" / "download_models.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_tiny_random_and_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = _script()
    assert script.main(["--tiny-random", str(tmp_path / "tiny"), "--only", "clip"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written == {"clip": str(tmp_path / "tiny" / "clip" / "ViT-B-32")}
    assert read_manifest(tmp_path / "tiny" / "clip" / "ViT-B-32").tiny_random
    assert script.main(["--cache-dir", str(tmp_path / "real"), "--only", "clip,ltx2"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["clip"].startswith("error: cannot reach the Hugging Face hub") and out["ltx2"].startswith("skipped")


def test_ltx2_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("app.models.ltx2") is None:
        pytest.skip("app.models.ltx2 is not in this checkout")
    import app.models.ltx2 as ltx2

    calls: list[Path] = []

    def fake(directory: Path) -> Path:
        calls.append(Path(directory))
        return Path(directory)

    monkeypatch.setattr(ltx2, "save_tiny_random", fake)
    written = save_tiny_random(tmp_path, kinds=("ltx2",))
    assert calls == [tmp_path / "ltx2" / "LTX-2"] and written == {"ltx2": tmp_path / "ltx2" / "LTX-2"}


def test_tiny_models_replace_existing_folders(tmp_path: Path) -> None:
    first = save_tiny_random_clip(tmp_path, seed=0)
    before = read_manifest(first).files["model.safetensors"]
    second = save_tiny_random_clip(tmp_path, seed=1)
    assert first == second and read_manifest(second).files["model.safetensors"] != before
    assert sorted(p.name for p in (tmp_path / "clip").iterdir()) == ["ViT-B-32"]
