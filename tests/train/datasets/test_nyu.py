"""NYUv2 HDF5 samples (BP-Net / NLSPN format) on tiny generated files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from train.metrics import nyu_metrics
from train.nyu import (
    CROP_HW,
    NUM_SPARSE,
    NyuDataset,
    evaluate_nyu,
    find_nyu_files,
    load_nyu_sample,
    resize_and_crop,
)

h5py = pytest.importorskip("h5py", reason="h5py is needed to read NYUv2 HDF5 files")


def _write_h5(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    depth = rng.uniform(0.5, 9.0, (480, 640)).astype(np.float32)
    depth[:20] = 0.0  # Kinect holes
    with h5py.File(path, "w") as f:
        f["rgb"] = rng.integers(0, 255, (3, 480, 640), dtype=np.uint8)
        f["depth"] = depth


@pytest.fixture()
def nyu_root(tmp_path: Path) -> Path:
    _write_h5(tmp_path / "nyu" / "train" / "scene_a" / "00001.h5", 1)
    _write_h5(tmp_path / "nyu" / "val" / "official" / "00001.h5", 2)
    _write_h5(tmp_path / "nyu" / "val" / "official" / "00002.h5", 3)
    return tmp_path / "nyu"


class StubNet(torch.nn.Module):
    def forward(self, rgb: torch.Tensor, sparse: torch.Tensor, K: torch.Tensor) -> list:
        return [torch.full_like(sparse, 4.0)] * 6


def test_sample_is_resized_cropped_with_500_points(nyu_root: Path) -> None:
    files = find_nyu_files(nyu_root, "val")
    assert [f.name for f in files] == ["00001.h5", "00002.h5"]
    sample = load_nyu_sample(files[0])
    assert sample.rgb.shape == (*CROP_HW, 3) and sample.gt.shape == CROP_HW
    assert (sample.sparse > 0).sum() == NUM_SPARSE
    assert np.all(sample.sparse[sample.sparse > 0] == sample.gt[sample.sparse > 0])
    np.testing.assert_allclose(sample.K[0, 2], 325.58244941119034 / 2 - 8, rtol=1e-6)
    np.testing.assert_allclose(sample.K[1, 2], 253.73616633400465 / 2 - 6, rtol=1e-6)
    np.testing.assert_allclose(sample.K[0, 0], 518.8579 / 2, rtol=1e-6)
    again = load_nyu_sample(files[0])
    np.testing.assert_array_equal(again.sparse, sample.sparse)  # fixed points for evaluation


def test_crop_keeps_the_centre_pixel_geometry() -> None:
    rgb = np.zeros((480, 640, 3), np.uint8)
    depth = np.zeros((480, 640), np.float32)
    depth[200:280, 280:360] = 3.0  # a block around the image centre
    _, cropped, _ = resize_and_crop(rgb, depth)
    ys, xs = np.nonzero(cropped > 2.9)
    assert abs(ys.mean() - (120 - 6)) < 1 and abs(xs.mean() - (160 - 8)) < 1


def test_dataset_tensors_and_flip(nyu_root: Path) -> None:
    files = find_nyu_files(nyu_root, "train")
    raw = NyuDataset(files, train=False, pad_to=None)[0]
    assert raw["rgb"].shape == (3, *CROP_HW)
    assert raw["sparse"].shape == (1, *CROP_HW) and raw["gt"].shape == (1, *CROP_HW)
    item = NyuDataset(files, train=False)[0]  # padded like BP-Net: 14 rows, 8 columns
    assert item["rgb"].shape == (3, 256, 320) and item["gt"].shape == (1, 256, 320)
    torch.testing.assert_close(item["gt"][:, 14:-14, 8:-8], raw["gt"])
    torch.testing.assert_close(item["K"][:2, 2], raw["K"][:2, 2] + torch.tensor([8.0, 14.0]))
    ds = NyuDataset(files, train=True, pad_to=None)
    flips = {bool(torch.equal(ds[0]["gt"], raw["gt"].flip(-1))) for ds.epoch in range(8)}
    assert flips == {True, False}


def test_evaluate_nyu_averages_per_image_metrics(nyu_root: Path) -> None:
    files = find_nyu_files(nyu_root, "val")
    report = evaluate_nyu(StubNet(), files, torch.device("cpu"))
    expected = np.mean([nyu_metrics(np.full(CROP_HW, 4.0), load_nyu_sample(f).gt).rmse
                        for f in files])
    assert report["frames"] == 2
    assert report["metrics"]["rmse"] == pytest.approx(expected, rel=1e-5)  # type: ignore[index]


def test_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing NYUv2 folder"):
        find_nyu_files(tmp_path, "val")
    (tmp_path / "val").mkdir()
    with pytest.raises(FileNotFoundError, match="no .h5 files"):
        find_nyu_files(tmp_path, "val")
    with pytest.raises(ValueError, match="choose one of train, val"):
        find_nyu_files(tmp_path, "test")
