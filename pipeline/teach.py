"""``dmd3c teach``: teacher maps of KITTI images at full resolution, for stage-2 fine-tuning.

Replaces the official repository's lossy 8-bit ``disp/*.png`` with float32 maps in a
teacher-map store (format ``dmd3c.teacher_maps``, defined in :mod:`data_schemas.teacher_maps`).
With ``align="lidar"`` every map is also fitted to its frame's LiDAR
(:mod:`pipeline.teachers.align`) and stored as metric depth next to the raw map, with the fit.
:func:`official_disp_png` turns a stored map back into the official grey PNG. The command's
configuration is :class:`pipeline.teach_config.TeachConfig`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import zarr
from PIL import Image
from tqdm import tqdm
from zarr.core.common import JSON

from data_schemas.errors import ConfigError, InputError, InputNotFoundError
from data_schemas.lease import StoreLease
from data_schemas.location import StoreLocation
from data_schemas.teacher_maps import (
    create_teacher_maps,
    is_complete,
    open_teacher_maps,
    write_aligned_map,
    write_teacher_map,
)
from pipeline.corpus import CorpusItem, keep_key, to_rgb8
from pipeline.teach_config import TeachConfig
from pipeline.teacher import Teacher, TeacherSpec, check_teacher_inputs, resolve_teacher
from pipeline.teachers.align import apply_fit, fit_to_lidar
from pipeline.teachers.kitti import focal_px, lidar_path, read_kitti_depth
from pipeline.teachers.registry import FOCAL, PROMPT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeachSummary:
    out: str
    written: int
    already: int
    seconds: float
    unaligned: dict[str, str] = field(default_factory=dict)
    """Maps written without an aligned map (this run): key -> why."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Images not taught (no depth prompt for Prompt Depth Anything): key -> why."""


def kitti_images(root: str, include: tuple[str, ...]) -> list[CorpusItem]:
    """RGB images under ``root`` matching ``include``, sorted by key (path under root)."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise InputNotFoundError(f"KITTI root {root} is not a folder")
    items = [CorpusItem(p.relative_to(base).as_posix(), str(p)) for p in sorted(base.rglob("*"))
             if p.is_file() and keep_key(p.relative_to(base).as_posix(), include, ())]
    if not items:
        raise InputNotFoundError(f"no KITTI images under {root} matching {list(include)}")
    return items


def open_maps(cfg: TeachConfig, root_attrs: dict[str, JSON]) -> zarr.Group:
    """The output group, created or reopened (same teacher and alignment) for resume."""
    if not StoreLocation.parse(cfg.out).exists("zarr.json") or cfg.overwrite:
        group = create_teacher_maps(cfg.out, root_attrs["teacher"])  # type: ignore[arg-type]
        group.attrs.update(root_attrs)
        return group
    group = open_teacher_maps(cfg.out, mode="r+")
    for name, value in root_attrs.items():
        if dict(group.attrs).get(name) != value:
            raise ConfigError(f"{cfg.out}: teacher maps made with another {name} are stored "
                              f"here; pass --overwrite or choose another --out")
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


def frame_lidar(item: CorpusItem, hw: tuple[int, int]) -> np.ndarray | None:
    """The frame's LiDAR (H, W) metres, or None when there is none of the image's size."""
    path = lidar_path(item.source)
    if path is None:
        return None
    sparse = read_kitti_depth(path)
    return sparse if sparse.shape == hw else None


@dataclass
class _Inputs:
    """One batch's teacher inputs besides RGB, and the images that cannot be taught."""

    focal: np.ndarray | None
    lidar: list[np.ndarray | None]


def _inputs(spec: TeacherSpec, cfg: TeachConfig, run: list[CorpusItem],
            hw: tuple[int, int]) -> _Inputs:
    focal = None
    if FOCAL in spec.needs:
        found = [focal_px(item.source) for item in run]
        if any(f is None for f in found):
            log.warning("no KITTI calibration for %d image(s): Depth Pro uses its own field "
                        "of view for them", sum(f is None for f in found))
        focal = np.array([np.nan if f is None else f for f in found], np.float64)
    needs_lidar = PROMPT in spec.needs or cfg.align == "lidar"
    lidar = [frame_lidar(item, hw) if needs_lidar else None for item in run]
    return _Inputs(focal, lidar)


class _Writer:
    """Writes the maps of one run and keeps its counts."""

    def __init__(self, group: zarr.Group, spec: TeacherSpec, cfg: TeachConfig) -> None:
        self.group, self.spec, self.cfg = group, spec, cfg
        self.written, self.unaligned, self.skipped = 0, dict[str, str](), dict[str, str]()

    def skip(self, item: CorpusItem, why: str) -> None:
        self.skipped[item.key] = why

    def write(self, item: CorpusItem, values: np.ndarray, lidar: np.ndarray | None,
              focal: float | None) -> None:
        extra: dict[str, JSON] = {"inputs": {"focal_px": focal} if focal is not None else {}}
        if self.cfg.align == "lidar":
            extra["align"] = self._align(item, values, lidar)
        write_teacher_map(self.group, item.key, item.source, values, self.spec.units, extra)
        self.written += 1

    def _align(self, item: CorpusItem, values: np.ndarray, lidar: np.ndarray | None) -> str:
        fit = None if lidar is None else fit_to_lidar(values, lidar, self.spec.output_kind,
                                                      self.cfg.fit)
        if fit is None:
            points = 0 if lidar is None else int(np.count_nonzero(lidar))
            why = (f"too few LiDAR points ({points} < {self.cfg.fit.min_points})"
                   if lidar is not None else "no LiDAR map (velodyne_raw) for this image")
            self.unaligned[item.key] = why
            return why
        write_aligned_map(self.group, item.key, apply_fit(values, fit, self.cfg.fit), fit)
        return "fitted"


def root_attrs(spec: TeacherSpec, cfg: TeachConfig) -> dict[str, JSON]:
    run = cfg.teacher_run
    teacher = {**spec.attrs(), "input_size": run.input_size, "precision": run.precision,
               "pos_embed": run.pos_embed, "prompt": run.prompt}
    attrs: dict[str, JSON] = {"teacher": teacher}  # type: ignore[dict-item]
    if cfg.align == "lidar":
        attrs["align"] = {"method": "lidar", "space": spec.output_kind, **asdict(cfg.fit)}
    return attrs


def run_teach(cfg: TeachConfig) -> TeachSummary:
    """Write (or complete) the teacher maps of every KITTI image under ``cfg.kitti``."""
    start = time.perf_counter()
    items = kitti_images(cfg.kitti, cfg.include)
    spec = resolve_teacher(cfg.teacher)
    check_teacher_inputs(spec, cfg.teacher_run)
    teacher = Teacher(spec, cfg.teacher_run)
    with StoreLease(cfg.out, "dmd3c teach", break_lease=cfg.break_lease) as lease:
        group = open_maps(cfg, root_attrs(spec, cfg))
        lease.renew()  # creating the store rewrites its folder, lease included
        todo = [item for item in items if not is_complete(group, item.key)]
        writer = _Writer(group, spec, cfg)
        with tqdm(total=len(todo), unit="image", desc="teach", disable=not cfg.progress,
                  file=sys.stderr) as bar:
            for run, rgb in _batches(todo, cfg.teacher_run.batch_size):
                lease.check()
                _teach_batch(teacher, writer, run, rgb)
                bar.update(len(run))
        _finish(group, items, writer)
    return TeachSummary(cfg.out, writer.written, len(items) - len(todo),
                        time.perf_counter() - start, writer.unaligned, writer.skipped)


def _teach_batch(teacher: Teacher, writer: _Writer, run: list[CorpusItem],
                 rgb: np.ndarray) -> None:
    inputs = _inputs(teacher.spec, writer.cfg, run, rgb.shape[1:3])
    keep = list(range(len(run)))
    if PROMPT in teacher.spec.needs:
        keep = [i for i in keep if inputs.lidar[i] is not None]
        for i in sorted(set(range(len(run))) - set(keep)):
            writer.skip(run[i], "no KITTI LiDAR map (velodyne_raw) for the depth prompt")
    if not keep:
        return
    prompt = (np.stack([inputs.lidar[i] for i in keep])  # type: ignore[misc]
              if PROMPT in teacher.spec.needs else None)
    focal = None if inputs.focal is None else inputs.focal[keep]
    for j, values in zip(keep, teacher.predict(rgb[keep], focal, prompt), strict=True):
        given = None if inputs.focal is None or np.isnan(inputs.focal[j]) else inputs.focal[j]
        writer.write(run[j], values, inputs.lidar[j], None if given is None else float(given))


def _finish(group: zarr.Group, items: list[CorpusItem], writer: _Writer) -> None:
    """Root ``keys`` (every complete map) and ``unaligned`` (all runs so far)."""
    group.attrs["keys"] = [item.key for item in items if is_complete(group, item.key)]
    if writer.cfg.align == "lidar":
        stored = group.attrs.get("unaligned")
        unaligned: dict[str, JSON] = dict(stored) if isinstance(stored, Mapping) else {}
        unaligned.update(writer.unaligned)
        group.attrs["unaligned"] = unaligned
    if writer.skipped:
        log.warning("%d images not taught: %s", len(writer.skipped),
                    "; ".join(f"{k}: {v}" for k, v in list(writer.skipped.items())[:3]))


def official_disp_png(values: np.ndarray) -> np.ndarray:
    """A stored map -> the official ``run.py --grayscale`` PNG pixels: (H, W, 3) uint8.

    Min-max normalised to [0, 255] and truncated to uint8, the grey value repeated in 3
    channels (``cv2.imwrite`` of it gives the official ``disp/*.png``; DMD3C reads them
    with ``Image.open(path).convert('L')``).
    """
    if values.ndim != 2:
        raise InputError(f"expected an (H, W) map, got shape {values.shape}")
    span = float(values.max() - values.min())
    grey = ((values - values.min()) / span * 255.0) if span > 0 else np.zeros_like(values)
    return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
