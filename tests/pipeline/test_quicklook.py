import cv2

from pipeline import quicklook


def test_quicklook_writes_three_stacked_panels(tmp_path):
    out = tmp_path / "ql.png"
    quicklook.main(out=out, beams=32)
    img = cv2.imread(str(out))
    assert img.shape == (3 * 352, 1216, 3)
    sparse_panel = img[352:704]
    assert 0.02 < (sparse_panel.max(axis=2) > 0).mean() < 0.5  # points drawn, most pixels empty
