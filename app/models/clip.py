"""Zero-shot scene and room-type recognition with CLIP, plus image embeddings for clustering/duplicates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.media.images import ROOM_LABELS
from app.models.runtime import ModulesMixin, import_torch, import_transformers, to_pil

#: Each phrase is put in every template; a class's text embedding is the mean of its prompts' unit
#: embeddings, renormalised (CLIP's prompt ensembling).
TEMPLATES: tuple[str, ...] = (
    "a photo of {}.",
    "a real estate listing photo of {}.",
    "a wide-angle photo of {}.",
    "a professional photo of {}.",
)

#: Phrases per room label. A label added to ROOM_LABELS later without phrases here is described by
#: its own name ("a laundry room" for "laundry_room").
ROOM_PHRASES: Mapping[str, tuple[str, ...]] = {
    "exterior": ("the front of a house", "a house exterior", "the facade of a home", "a home seen from the street"),
    "living_room": ("a living room", "a family room with a sofa", "a lounge"),
    "kitchen": ("a kitchen", "a kitchen with cabinets and countertops", "a modern kitchen"),
    "bedroom": ("a bedroom", "a bedroom with a bed", "a master bedroom"),
    "bathroom": ("a bathroom", "a bathroom with a sink and a shower", "a bathroom with a bathtub"),
    "dining_room": ("a dining room", "a dining table with chairs", "a dining area"),
    "outdoor": ("a backyard", "a garden", "a patio", "a swimming pool", "a balcony with a view"),
    "other": ("a hallway", "a staircase", "a home office", "a laundry room", "a garage", "an empty room"),
}

#: Interior vs exterior, a two-way choice of its own (outdoor spaces count as exterior).
SCENE_PHRASES: Mapping[str, tuple[str, ...]] = {
    "interior": ("the inside of a house", "a room inside a home", "an interior of an apartment"),
    "exterior": ("the outside of a house", "a house exterior", "a backyard or a garden", "a building from outside"),
}


def room_prompts(labels: Sequence[str] = ROOM_LABELS) -> dict[str, list[str]]:
    """Every prompt of every class, in `labels` order."""
    out: dict[str, list[str]] = {}
    for label in labels:
        phrases = ROOM_PHRASES.get(label) or ("a " + label.replace("_", " "),)
        out[label] = [t.format(p) for p in phrases for t in TEMPLATES]
    return out


def scene_prompts() -> dict[str, list[str]]:
    return {label: [t.format(p) for p in phrases for t in TEMPLATES] for label, phrases in SCENE_PHRASES.items()}


@dataclass(frozen=True)
class ClipResult:
    """CLIP's view of one photo. Probabilities are softmaxes over prompt-ensemble similarities:
    `interior_prob + exterior_prob == 1` and `sum(room_probs.values()) == 1` (keys: ROOM_LABELS order).
    `embedding` is the L2-normalised image embedding (float32, shape (D,)): cosine similarity is a dot
    product, for clustering and near-duplicate checks."""

    interior_prob: float
    exterior_prob: float
    room_probs: dict[str, float]
    embedding: np.ndarray
    source: str

    @property
    def is_exterior(self) -> bool:
        return self.exterior_prob >= 0.5

    @property
    def room_label(self) -> str:
        return max(self.room_probs, key=self.room_probs.__getitem__)

    @property
    def room_confidence(self) -> float:
        return self.room_probs[self.room_label]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (for `photos.analysis`), without the embedding."""
        return {
            "interior_prob": round(self.interior_prob, 4),
            "exterior_prob": round(self.exterior_prob, 4),
            "room_probs": {k: round(v, 4) for k, v in self.room_probs.items()},
            "room_label": self.room_label,
            "source": self.source,
        }


class ClipAnalyzer(ModulesMixin):
    """Build once per process (`ModelRegistry`), then call: ``analyzer(images) -> list[ClipResult]``.

    Modules: `model` (transformers CLIPModel, eval mode, on `device`), `tokenizer`, `image_processor`.
    Class text embeddings are computed once, here."""

    model: Any
    tokenizer: Any
    image_processor: Any

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        image_processor: Any,
        *,
        source: str,
        device: str = "cpu",
        labels: Sequence[str] = ROOM_LABELS,
        batch_size: int = 16,
    ) -> None:
        self.register_modules(model=model, tokenizer=tokenizer, image_processor=image_processor)
        self.source = source
        self.device = device
        self.labels = tuple(labels)
        self.batch_size = max(1, batch_size)
        self.logit_scale = float(model.logit_scale.detach().exp().clamp(max=100.0))
        self._room_text = self._class_embeddings(room_prompts(self.labels))
        self._scene_text = self._class_embeddings(scene_prompts())

    def __call__(self, images: Sequence[Any]) -> list[ClipResult]:
        """`images`: PIL images or RGB uint8 arrays (H, W, 3). One result per image, in order."""
        if not len(images):
            return []
        emb = self.embed_images(images)
        scene = _softmax(self.logit_scale * emb @ self._scene_text.T)
        rooms = _softmax(self.logit_scale * emb @ self._room_text.T)
        return [
            ClipResult(
                interior_prob=float(s[0]),
                exterior_prob=float(s[1]),
                room_probs={label: float(p) for label, p in zip(self.labels, r, strict=True)},
                embedding=e,
                source=self.source,
            )
            for s, r, e in zip(scene, rooms, emb, strict=True)
        ]

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        """Unit image embeddings, float32 (N, D)."""
        torch = import_torch()
        chunks = []
        for start in range(0, len(images), self.batch_size):
            pils = [to_pil(img)[0] for img in images[start : start + self.batch_size]]
            pixels = self.image_processor(images=pils, return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                feats = _features(self.model.get_image_features(pixel_values=pixels.to(self.device)))
            chunks.append(_unit(feats.float().cpu().numpy()))
        return np.concatenate(chunks).astype(np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit text embeddings, float32 (N, D)."""
        torch = import_torch()
        max_len = int(self.model.config.text_config.max_position_embeddings)
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        with torch.inference_mode():
            feats = _features(self.model.get_text_features(**{k: v.to(self.device) for k, v in enc.items()}))
        return _unit(feats.float().cpu().numpy()).astype(np.float32)

    def _class_embeddings(self, prompts: Mapping[str, list[str]]) -> np.ndarray:
        return np.stack([_unit(self.embed_texts(p).mean(axis=0)) for p in prompts.values()]).astype(np.float32)


def load_clip(folder: Path, *, source: str, device: str = "cpu") -> ClipAnalyzer:
    """A ClipAnalyzer from a save_pretrained folder (local files only)."""
    tf = import_transformers()
    model = tf.CLIPModel.from_pretrained(folder, local_files_only=True).to(device).eval()
    tokenizer = tf.CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    processor = tf.CLIPImageProcessorPil.from_pretrained(folder, local_files_only=True)
    return ClipAnalyzer(model, tokenizer, processor, source=source, device=device)


def _features(out: Any) -> Any:
    """transformers 5 returns a ModelOutput whose pooler_output is the projected embedding; 4.x a tensor."""
    return out if hasattr(out, "ndim") else out.pooler_output


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)
