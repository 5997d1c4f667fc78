import cv2

from pipeline import quicklook


def test_quicklook_writes_three_stacked_panels(tmp_path):
    out = tmp_path / "ql.png"
    quicklook.main(out=out, beams=32)
    img = cv2.imread(str(out))
    assert img.shape == (3 * 352, 1216, 3)
    sparse_panel = img[352:704]
    assert 0.02 < (sparse_panel.max(axis=2) > 0).mean() < 0.5  # points drawn, most pixels empty


def test_real_vs_simulated_picture(tmp_path, kitti_sample):
    out = tmp_path / "real_vs_sim.png"
    quicklook.main(out=out, kitti=kitti_sample)
    img = cv2.imread(str(out))
    assert img.shape == (2 * 352, 2 * 1216, 3)
    real, sim = img[352:, :1216], img[352:, 1216:]
    lit_real, lit_sim = (real.max(axis=2) > 0).mean(), (sim.max(axis=2) > 0).mean()
    assert 0.1 < lit_real < 0.6 and abs(lit_sim / lit_real - 1) < 0.2
