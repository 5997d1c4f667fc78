"""What ``dmd3c teach`` is asked to do: :class:`TeachConfig`.

The command's options derive from it (:mod:`pipeline.config_options`), so this module stays
light to import (no zarr, no teacher); the work is :mod:`pipeline.teach`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.teacher import DEFAULT_TEACHER, TeacherConfig, parse_choice
from pipeline.teachers.align import ALIGNS, AlignConfig

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
    align: str = "none"
    """``lidar``: also store each map fitted to its frame's LiDAR (metric, with the fit)."""
    fit: AlignConfig = field(default_factory=AlignConfig)
    """The robust fit of ``align="lidar"``."""

    def __post_init__(self) -> None:
        parse_choice("align", self.align, ALIGNS)
