"""BeatNet's beat/downbeat activation network (CRNN), loaded from the installed `BeatNet` package.

BeatNet (M. Heydari, F. Cwitkowitz, Z. Duan, "BeatNet: CRNN and particle filtering for online joint
beat downbeat and meter tracking", ISMIR 2021; https://github.com/mjhydri/BeatNet) is CC BY 4.0. Its
wheel ships three trained weight sets (~1.6 MB each); only `BeatNet.model` (the `BDA` module, pure
torch) is imported: the package's other modules import madmom, pyaudio and matplotlib, which are not
installed and must not be (madmom's models are non-commercial). The input features are computed in
numpy by `app.media.beat_frontend`; the activations are decoded by `app.media.beat_decode`.

Weight set 1 is the one trained *without* GTZAN ("GTZAN out" in BeatNet's code): it is used by default
so that the project's GTZAN evaluation (`scripts/eval_beats.py`) measures held-out music.

Use::

    model = load_beat_model()                      # BeatActivationModel, or BeatModelUnavailable
    grid = analyze_music(path, beat_model=model)
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from app.models.runtime import import_torch

#: BeatNet's network configuration (`BDA(272, 150, 2, device)` in `BeatNet.py`).
_DIM_IN, _HIDDEN, _LAYERS = 272, 150, 2
#: Credit line for the README / about page (the licence asks for attribution).
CREDIT = (
    "Beat and downbeat activations: BeatNet by Mojtaba Heydari, Frank Cwitkowitz and Zhiyao Duan "
    "(ISMIR 2021, https://github.com/mjhydri/BeatNet), CC BY 4.0; weights used unmodified."
)


class BeatModelUnavailable(RuntimeError):
    """The BeatNet package or its weights are not installed (or do not load): use the classical path."""


class BeatActivationModel:
    """BeatNet's CRNN: (frames, 272) features -> (frames, 2) [beat, downbeat] probabilities at 50 fps.

    The column "beat" is the probability of a beat that is not a downbeat (BeatNet's 3-way softmax:
    beat, downbeat, no beat). The network is causal (unidirectional LSTM); every call starts from a
    zero LSTM state, so calls are independent (`BDA.forward` keeps its state between calls; this class
    runs the same layers without that state). A lock serialises calls from several threads.
    """

    sample_rate = 22050
    fps = 50.0

    def __init__(self, module: Any, torch: Any, *, name: str, device: str = "cpu") -> None:
        self.module = module
        self.torch = torch
        self.name = name
        self.device = device
        self._lock = threading.Lock()

    @property
    def source(self) -> str:
        return f"beatnet:{self.name}"

    def activations(self, features: np.ndarray) -> np.ndarray:
        """Beat and downbeat probabilities per frame for BeatNet features (see the class docstring)."""
        torch, m = self.torch, self.module
        feats = np.ascontiguousarray(features, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[1] != _DIM_IN:
            raise ValueError(f"expected (frames, {_DIM_IN}) features, got {feats.shape}")
        if feats.shape[0] == 0:
            return np.zeros((0, 2), dtype=np.float32)
        with self._lock, torch.inference_mode():
            x = torch.from_numpy(feats).to(self.device).unsqueeze(1)  # (T, 1, 272): one channel per frame
            x = torch.nn.functional.max_pool1d(torch.relu(m.conv1(x)), 2)
            x = m.linear0(x.reshape(x.shape[0], -1)).unsqueeze(0)  # (1, T, 150)
            zeros = torch.zeros(_LAYERS, 1, _HIDDEN, device=self.device)
            x, _ = m.lstm(x, (zeros, zeros))
            probs = torch.softmax(m.linear(x)[0], dim=1)  # (T, 3): beat, downbeat, no beat
            return np.asarray(probs[:, :2].cpu().numpy(), dtype=np.float32)


def beatnet_weights(which: int = 1) -> Path:
    """Path of a weight file shipped with the installed BeatNet package (1 = trained without GTZAN)."""
    spec = importlib.util.find_spec("BeatNet")
    if spec is None or not spec.submodule_search_locations:
        raise BeatModelUnavailable("the BeatNet package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / f"model_{which}_weights.pt"
    if not path.is_file():
        raise BeatModelUnavailable(f"BeatNet weights {path.name} are missing")
    return path


def load_beat_model(device: str = "cpu", *, which: int = 1) -> BeatActivationModel:
    """BeatNet's CRNN with the shipped weights `which` (1-3), on `device`; `BeatModelUnavailable` when
    the package, its weights or torch are missing, or the weights do not fit the network."""
    path = beatnet_weights(which)
    try:
        torch = import_torch()
        from BeatNet.model import BDA  # pure torch; the package's other modules need madmom
    except ImportError as exc:
        raise BeatModelUnavailable(f"cannot import BeatNet's model: {exc}") from exc
    try:
        module = BDA(_DIM_IN, _HIDDEN, _LAYERS, device)
        state = torch.load(str(path), map_location=device, weights_only=True)
        # strict: every layer must come from the file (BeatNet itself loads with strict=False)
        module.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise BeatModelUnavailable(f"cannot load BeatNet weights {path.name}: {exc}") from exc
    module.eval()
    return BeatActivationModel(module, torch, name=f"model_{which}", device=device)


def try_load_beat_model(device: str = "cpu", *, which: int = 1) -> BeatActivationModel | None:
    """`load_beat_model`, or None when it is unavailable (the caller runs the classical analysis)."""
    try:
        return load_beat_model(device, which=which)
    except BeatModelUnavailable:
        return None
