"""Teacher maps as a recipe reads them: the released 8-bit form of our float maps (min-max over
the whole frame, before the crop), the authors' disp/*.png folders, LiDAR-aligned metric maps,
missing and constant maps."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from data_schemas.errors import InputError, InputNotFoundError
from data_schemas.teacher_maps import LidarFit, open_teacher_maps, write_aligned_map
from tests.train.datasets.kitti.fixtures import official_tree, write_teacher_maps
from train.datasets.augment import AugmentConfig
from train.datasets.kitti.dataset import KittiDataset
from train.datasets.kitti.layout import KittiFrame, find_frames
from train.datasets.kitti.teacher import DispPngTeacher, TeacherMaps, open_teacher
from train.datasets.sample import collate_items
from train.datasets.sampling import SampleRef
from train.stage2.config import dmd3c_recipe
from train.stage2.loss import stage2_loss

HW = (375, 1242)


def float_map(seed: int) -> np.ndarray:
    """A positive relative-disparity-like map with its extremes far apart in the frame."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0.2, 3.0, HW[0], dtype=np.float32)[:, None]
    noise = rng.gamma(2.0, 0.2, HW).astype(np.float32)
    values = rows * np.linspace(1.0, 2.0, HW[1], dtype=np.float32)[None, :] + noise
    return values.astype(np.float32)


def write_like_run_py(depth: np.ndarray, path: Path) -> None:
    """Depth-Anything-V2 run.py --pred-only --grayscale, step by step."""
    scaled = ((depth - depth.min()) / (depth.max() - depth.min()) * 255.0).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.repeat(scaled[..., np.newaxis], 3, axis=-1))


@pytest.fixture()
def tree(tmp_path: Path) -> tuple[Path, list[KittiFrame], dict[str, np.ndarray]]:
    root = official_tree(tmp_path / "kitti", ("train",))
    frames = find_frames(root, "train")
    return root, frames, {f.key: float_map(i) for i, f in enumerate(frames)}


def _window(sample_K: np.ndarray, frame: KittiFrame) -> tuple[int, int]:
    return (round(float(frame.K[1, 2] - sample_K[1, 2])),
            round(float(frame.K[0, 2] - sample_K[0, 2])))


def test_released_form_is_the_8_bit_png_of_the_whole_frame(tmp_path: Path, tree) -> None:
    root, frames, maps = tree
    store = write_teacher_maps(tmp_path / "t.zarr", maps)
    for key, values in maps.items():  # the authors' folders, written as DA-V2 writes them
        write_like_run_py(values, root / key.replace("/data/", "/disp/"))
    dataset = KittiDataset(frames, True, (64, 256), AugmentConfig(flip_prob=0.0, jitter_std=0),
                           teacher_maps=str(store), teacher_form="released")
    for i, frame in enumerate(frames):
        sample, _ = dataset.sample(i)
        top, left = _window(sample.K, frame)
        grey = cv2.imread(str(root / frame.key.replace("/data/", "/disp/")),
                          cv2.IMREAD_GRAYSCALE)
        assert grey is not None
        png = grey.astype(np.float32) / 255
        assert sample.teacher is not None
        np.testing.assert_array_equal(sample.teacher, png[top:top + 64, left:left + 256])
        crop = maps[frame.key][top:top + 64, left:left + 256]
        crop_only = ((crop - crop.min()) / (crop.max() - crop.min()) * 255.0).astype(np.uint8)
        assert not np.array_equal(sample.teacher, crop_only.astype(np.float32) / 255)
    # the disp folders read directly give the same maps, bit for bit
    disp = open_teacher(root, "released")
    assert isinstance(disp, DispPngTeacher) and disp.space == "disparity"
    disp.check_covers(frames)
    converted = TeacherMaps(store, "released")
    for frame in frames:
        np.testing.assert_array_equal(disp.read(frame, HW), converted.read(frame, HW))


def test_missing_maps_are_counted_and_the_first_named(tmp_path: Path, tree) -> None:
    root, frames, maps = tree
    first = frames[0].key
    write_like_run_py(maps[first], root / first.replace("/data/", "/disp/"))
    with pytest.raises(InputNotFoundError, match=r"1 of 2 KITTI images have no teacher map "
                                                 r"\(first missing: .*image_03/disp/"):
        open_teacher(root, "released").check_covers(frames)
    store = write_teacher_maps(tmp_path / "t.zarr", {first: maps[first]})
    with pytest.raises(InputError, match=r"1 of 2 KITTI images have no teacher map in .* "
                                         r"\(first: .*image_03"):
        open_teacher(store, "released").check_covers(frames)


def test_constant_map_gives_a_finite_target_and_loss(tmp_path: Path, tree) -> None:
    _, frames, _ = tree
    store = write_teacher_maps(tmp_path / "t.zarr",
                               {f.key: np.full(HW, 2.5, np.float32) for f in frames})
    dataset = KittiDataset(frames, True, (64, 256), AugmentConfig(jitter_std=0.0),
                           teacher_maps=str(store), teacher_form="released")
    batch = collate_items([dataset[SampleRef(0, i, 0)] for i in range(2)])
    assert batch.teacher is not None and not batch.teacher.any()  # 0 / 0 -> 0, not NaN
    preds = [(5 + torch.rand(2, 1, 64, 256)).requires_grad_(True) for _ in range(6)]
    out = stage2_loss(preds, batch, dmd3c_recipe().loss)
    out.total.backward()
    assert torch.isfinite(out.total)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in preds)


def _aligned_store(tmp_path: Path, maps: dict[str, np.ndarray], aligned: list[str],
                   kind: str = "disparity") -> Path:
    store = write_teacher_maps(tmp_path / "t.zarr", maps, output_kind=kind)
    group = open_teacher_maps(store, "r+")
    for key in aligned:
        write_aligned_map(group, key, 40.0 / maps[key], LidarFit("disparity", 0.025, 0.0, 900,
                                                                  850, 0.2))
    if aligned:
        group.attrs["align"] = {"method": "lidar", "space": kind}
    return store


def test_aligned_form_reads_metric_depth(tmp_path: Path, tree) -> None:
    _, frames, maps = tree
    store = _aligned_store(tmp_path, maps, [frames[0].key])
    teacher = open_teacher(store, "aligned")
    assert teacher.space == "depth" and teacher.form == "aligned"
    np.testing.assert_allclose(teacher.read(frames[0], HW), 40.0 / maps[frames[0].key],
                               rtol=1e-6)
    assert not teacher.read(frames[1], HW).any()  # no fit: no teacher term for this frame
    assert teacher.unaligned(frames) == [frames[1].name]


def test_aligned_form_without_aligned_maps(tmp_path: Path, tree) -> None:
    _, frames, maps = tree
    with pytest.raises(InputError, match="needs metric teacher depth.*--align lidar"):
        open_teacher(_aligned_store(tmp_path / "rel", maps, []), "aligned")
    metric = open_teacher(_aligned_store(tmp_path / "metric", maps, [], kind="depth"), "aligned")
    assert metric.space == "depth" and metric.form == "raw"  # a metric teacher's own maps
    np.testing.assert_array_equal(metric.read(frames[0], HW), maps[frames[0].key])
    with pytest.raises(ValueError, match="teacher_form=aligned needs"):
        DispPngTeacher(tmp_path, "aligned")


def test_flip_teacher_switch_in_the_dataset(tmp_path: Path, tree) -> None:
    _, frames, maps = tree
    store = write_teacher_maps(tmp_path / "t.zarr", maps)
    flip = AugmentConfig(flip_prob=1.0, jitter_std=0.0)
    with_image = KittiDataset(frames, True, (64, 256), flip, teacher_maps=str(store),
                              teacher_form="raw")
    released = KittiDataset(frames, True, (64, 256), flip, teacher_maps=str(store),
                            teacher_form="raw", flip_teacher=False)
    a, _ = with_image.sample(0)
    b, _ = released.sample(0)
    assert a.teacher is not None and b.teacher is not None
    np.testing.assert_array_equal(a.rgb, b.rgb)
    top = round(float(frames[0].K[1, 2] - a.K[1, 2]))
    left = round(float((HW[1] - 1 - frames[0].K[0, 2]) - a.K[0, 2]))  # in the flipped frame
    full = maps[frames[0].key]
    np.testing.assert_array_equal(a.teacher, full[:, ::-1][top:top + 64, left:left + 256])
    np.testing.assert_array_equal(b.teacher, full[top:top + 64, left:left + 256])
