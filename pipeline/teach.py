"""``dmd3c teach``: teacher maps of KITTI images at full resolution, for stage-2 fine-tuning.

Replaces the official repository's lossy 8-bit ``disp/*.png`` with float32 maps in a
teacher-map store (format ``dmd3c.teacher_maps``, defined in :mod:`data_schemas.teacher_maps`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr
from PIL import Image
from tqdm import tqdm

from data_schemas.lease import StoreLease
from data_schemas.location import StoreLocation
from data_schemas.teacher_maps import (
    create_teacher_maps,
    is_complete,
    open_teacher_maps,
    write_teacher_map,
)
from pipeline.corpus import CorpusItem, keep_key, to_rgb8
from pipeline.teacher import DEFAULT_TEACHER, Teacher, TeacherConfig, resolve_teacher

KITTI_IMAGES: tuple[str, ...] = (
    "raw/*/*/image_02/data/*.png", "raw/*/*/image_03/data/*.png",
    "val_selection_cropped/image/*.png", "test_depth_completion_anonymous/image/*.png")
"""Globs (matched from the right of the path under the KITTI root) of the RGB images."""


@dataclass(frozen=True)
class TeachConfig:
    """What ``dmd3c teach`` reads and writes."""

    kitti: str
    """KITTI root holding raw/, val_selection_cropped/, test_depth_completion_anonymous/."""
    out: str
    """Output teacher-map store (local path or fsspec URL)."""
    teacher: str = DEFAULT_TEACHER
    """Registry name, local folder (save_pretrained / huggingface-cli download) or hub id."""
    teacher_run: TeacherConfig = field(default_factory=TeacherConfig)
    include: tuple[str, ...] = KITTI_IMAGES
    """Globs of the RGB images under the root (repeatable; matched from the right of the
    path): raw image_02/03 and the image/ folders of val_selection_cropped and
    test_depth_completion_anonymous."""
    overwrite: bool = False
    """Replace teacher maps made by another teacher."""
    progress: bool = True
    """Show a progress bar on stderr."""
    break_lease: bool = False
    """Take the output store's lease even from a job that looks alive (it must be dead)."""


@dataclass(frozen=True)
class TeachSummary:
    out: str
    written: int
    already: int
    seconds: float


def kitti_images(root: str, include: tuple[str, ...]) -> list[CorpusItem]:
    """RGB images under ``root`` matching ``include``, sorted by key (path under root)."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"KITTI root {root} is not a folder")
    items = [CorpusItem(p.relative_to(base).as_posix(), str(p)) for p in sorted(base.rglob("*"))
             if p.is_file() and keep_key(p.relative_to(base).as_posix(), include, ())]
    if not items:
        raise FileNotFoundError(f"no KITTI images under {root} matching {list(include)}")
    return items


def open_maps(cfg: TeachConfig, teacher_attrs: dict[str, object]) -> zarr.Group:
    """The output group, created or reopened (same teacher) for resume."""
    if not StoreLocation.parse(cfg.out).exists("zarr.json") or cfg.overwrite:
        return create_teacher_maps(cfg.out, teacher_attrs)
    group = open_teacher_maps(cfg.out, mode="r+")
    if dict(group.attrs).get("teacher") != teacher_attrs:
        raise ValueError(f"{cfg.out}: teacher maps of another teacher are stored here; "
                         f"pass --overwrite or choose another --out")
    return group


def _batches(items: list[CorpusItem], size: int) -> Iterator[tuple[list[CorpusItem], np.ndarray]]:
    """Runs of up to ``size`` consecutive images with equal shape, decoded to RGB8."""
    run: list[CorpusItem] = []
    images: list[np.ndarray] = []
    for item in items:
        with Image.open(item.source) as opened:
            rgb = to_rgb8(opened)
        if images and (rgb.shape != images[0].shape or len(images) == size):
            yield run, np.stack(images)
            run, images = [], []
        run.append(item)
        images.append(rgb)
    if images:
        yield run, np.stack(images)


def run_teach(cfg: TeachConfig) -> TeachSummary:
    """Write (or complete) the teacher maps of every KITTI image under ``cfg.kitti``."""
    import time

    start = time.perf_counter()
    items = kitti_images(cfg.kitti, cfg.include)
    spec = resolve_teacher(cfg.teacher)
    teacher = Teacher(spec, cfg.teacher_run)
    teacher_attrs = {**spec.attrs(), "input_size": cfg.teacher_run.input_size,
                     "precision": teacher.precision}
    with StoreLease(cfg.out, "dmd3c teach", break_lease=cfg.break_lease) as lease:
        group = open_maps(cfg, teacher_attrs)
        lease.renew()  # creating the store rewrites its folder, lease included
        todo = [item for item in items if not is_complete(group, item.key)]
        units = str(teacher_attrs["units"])
        with tqdm(total=len(todo), unit="image", desc="teach", disable=not cfg.progress,
                  file=sys.stderr) as bar:
            for run, rgb in _batches(todo, cfg.teacher_run.batch_size):
                lease.check()
                for item, values in zip(run, teacher.predict(rgb), strict=True):
                    write_teacher_map(group, item.key, item.source, values, units)
                bar.update(len(run))
        group.attrs["keys"] = [item.key for item in items]
    return TeachSummary(cfg.out, len(todo), len(items) - len(todo), time.perf_counter() - start)
