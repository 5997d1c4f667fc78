"""NYUv2 HDF5 samples (BP-Net / NLSPN format) on tiny generated files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.train.datasets.nyu_fixtures import nyu_tree
from train.datasets.nyu import (
    CROP_HW,
    NUM_SPARSE,
    PADDED_HW,
    NyuDataset,
    find_nyu_files,
    load_nyu_sample,
    pad_collate,
    resize_and_crop,
)
from train.datasets.sample import collate_items
from train.datasets.sampling import SampleRef

h5py = pytest.importorskip("h5py", reason="h5py is needed to read NYUv2 HDF5 files")


@pytest.fixture()
def nyu_root(tmp_path: Path) -> Path:
    return nyu_tree(tmp_path / "nyu")


def test_sample_is_resized_cropped_with_500_points(nyu_root: Path) -> None:
    files = find_nyu_files(nyu_root, "val")
    assert [f.name for f in files] == ["00001.h5", "00002.h5"]
    sample = load_nyu_sample(files[0])
    assert sample.rgb.shape == (*CROP_HW, 3) and sample.target.shape == CROP_HW
    assert sample.key == "official/00001" and sample.teacher is None
    assert (sample.sparse > 0).sum() == NUM_SPARSE
    assert np.all(sample.sparse[sample.sparse > 0] == sample.target[sample.sparse > 0])
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


def test_dataset_batches_padding_and_flip(nyu_root: Path) -> None:
    files = find_nyu_files(nyu_root, "train")
    items = [NyuDataset(files, train=False)[SampleRef(0, 0, 0)]]
    raw = collate_items(items)
    assert raw.rgb.shape == (1, 3, *CROP_HW)
    assert raw.sparse.shape == (1, 1, *CROP_HW) and raw.target.shape == (1, 1, *CROP_HW)
    padded = pad_collate(items)  # like BP-Net: 14 rows, 8 columns on each side
    assert PADDED_HW == (256, 320)
    assert padded.rgb.shape == (1, 3, 256, 320) and padded.target.shape == (1, 1, 256, 320)
    torch.testing.assert_close(padded.target[..., 14:-14, 8:-8], raw.target)
    torch.testing.assert_close(padded.rgb[..., 14:-14, 8:-8], raw.rgb)
    torch.testing.assert_close(padded.K[0, :2, 2], raw.K[0, :2, 2] + torch.tensor([8.0, 14.0]))
    ds = NyuDataset(files, train=True)
    unflipped = items[0].sample.target
    flips = set()
    for epoch in range(8):
        target = ds.sample(0, epoch).target
        flipped = bool(np.array_equal(target, unflipped[:, ::-1]))
        assert flipped or np.array_equal(target, unflipped)
        flips.add(flipped)
    assert flips == {True, False}
    sparse = {tuple(np.flatnonzero(ds.sample(0, e).sparse)[:5]) for e in range(3)}
    assert len(sparse) == 3  # fresh points every epoch
    np.testing.assert_array_equal(ds.sample(0, 5).sparse, ds.sample(0, 5).sparse)


def test_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing NYUv2 folder"):
        find_nyu_files(tmp_path, "val")
    (tmp_path / "val").mkdir()
    with pytest.raises(FileNotFoundError, match="no .h5 files"):
        find_nyu_files(tmp_path, "val")
    with pytest.raises(ValueError, match="choose one of train, val"):
        find_nyu_files(tmp_path, "test")
