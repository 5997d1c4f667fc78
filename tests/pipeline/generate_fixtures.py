"""Helpers shared by the corpus / teacher / generate tests: tiny corpora, configs, stores."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from data_schemas import SampleStore
from pipeline.corpus import CanvasConfig, CorpusConfig
from pipeline.generate_config import GenerateConfig, RunConfig
from pipeline.teacher import TeacherConfig

CANVAS = CanvasConfig(height=48, width=96, min_side=16, max_pixels=4_000_000)
REPO = Path(__file__).resolve().parents[2]
KITTI_SAMPLE = REPO.parent / "shared" / "data" / "kitti_sample"


def scene_image(seed: int, size: tuple[int, int] = (80, 120)) -> np.ndarray:
    """A deterministic (h, w, 3) uint8 "photo": a gradient ground, a sky band, a few boxes."""
    rng = np.random.default_rng(seed)
    h, w = size
    rows = np.linspace(0, 1, h)[:, None, None]
    img = np.concatenate([rows * 200 + 30, rows * 120 + 60, 255 - rows * 200], axis=2)
    img = np.broadcast_to(img, (h, w, 3)).copy()
    for _ in range(4):
        top, left = rng.integers(h // 4, h - 8), rng.integers(0, w - 8)
        img[top:top + rng.integers(4, h // 3), left:left + rng.integers(4, w // 3)] = (
            rng.integers(0, 255, 3))
    return img.astype(np.uint8)


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(buffer, format="PNG")
    return buffer.getvalue()


def make_corpus(root: Path, count: int, start: int = 0) -> list[str]:
    """``count`` good PNG images under ``root`` (some in a sub-folder); returns their keys."""
    keys = []
    for i in range(start, start + count):
        key = f"{'sub/' if i % 3 == 0 else ''}img_{i:03d}.png"
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(scene_image(i)))
        keys.append(key)
    return sorted(keys)


def add_bad_files(root: Path) -> dict[str, str]:
    """One file of each bad kind; returns key -> expected reason prefix."""
    good = png_bytes(scene_image(99))
    (root / "bad_empty.png").write_bytes(b"")
    (root / "bad_text.png").write_bytes(b"this is not an image at all\n" * 10)
    (root / "bad_truncated.png").write_bytes(good[: len(good) // 2])
    (root / "bad_small.png").write_bytes(png_bytes(np.zeros((8, 10, 3), np.uint8)))
    bomb = Image.new("1", (3000, 2000))
    bomb.save(root / "bad_bomb.png")
    return {"bad_empty.png": "empty file", "bad_text.png": "not an image",
            "bad_truncated.png": "corrupt", "bad_small.png": "too small",
            "bad_bomb.png": "decompression bomb"}


def tiny_config(store: Path | str, corpus: Path | str, **changes: object) -> GenerateConfig:
    """A CPU-fast generate config: tiny canvas, tiny-random teacher, VLP-16, shards of 3."""
    from pipeline.generate_config import SensorChoice

    run = changes.pop("run", RunConfig(progress=False))
    values: dict[str, object] = dict(
        store=str(store), corpus=CorpusConfig((str(corpus),)), canvas=CANVAS,
        teacher="tiny-random", teacher_run=TeacherConfig(input_size=42, batch_size=4),
        sensor=SensorChoice("vlp16"), shard_size=3, seed=7, run=run)
    values.update(changes)
    return GenerateConfig(**values)  # type: ignore[arg-type]


def store_arrays(url: Path | str) -> dict[str, bytes]:
    """Every array's bytes over the committed rows, plus the commit records, for equality."""
    store = SampleStore.open(url)
    out: dict[str, bytes] = {}
    for shard in store.committed_shards:
        for name, values in store.read_shard(shard).items():
            data = values.tobytes() if values.dtype != object else "\0".join(
                str(v) for v in values).encode()
            out[f"{shard}/{name}"] = data
        out[f"{shard}/record"] = store.records[shard].to_json()
    return out
