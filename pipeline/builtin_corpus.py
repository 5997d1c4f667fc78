"""The built-in default corpus: photographs shipped inside the scikit-image wheel.

``--corpus builtin`` (the ``make generate-data`` default) needs no download and no network:
it reads the sample photographs in ``skimage/data/`` of the installed scikit-image. Real
runs point ``--corpus`` at their own image folders or buckets instead.
"""

from __future__ import annotations

from pathlib import Path

from data_schemas.errors import InputNotFoundError

BUILTIN_NAME = "builtin"
"""The ``--corpus`` value that selects this corpus."""

BUILTIN_LABEL = "skimage"
"""Key prefix of the built-in samples: keys read ``skimage/<file name>``."""

BUILTIN_IMAGES: tuple[str, ...] = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png",
    "coffee.png", "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png",
    "moon.png", "motorcycle_left.png", "motorcycle_right.png", "retina.jpg", "rocket.jpg",
)
"""The photographs (RGB and grayscale) of ``skimage.data``; charts, logos and binary
masks are left out. Every one is in the scikit-image wheel (no pooch download)."""


def builtin_root() -> str:
    """Absolute path of the folder holding the built-in photographs."""
    try:
        import skimage.data
    except ImportError as err:  # pragma: no cover - scikit-image is a dependency
        raise InputNotFoundError("the built-in corpus needs scikit-image (pip install "
                                "scikit-image); or pass --corpus PATH") from err
    root = Path(skimage.data.__file__).resolve().parent
    missing = [name for name in BUILTIN_IMAGES if not (root / name).is_file()]
    if missing:
        raise InputNotFoundError(f"the built-in corpus is incomplete in {root} (missing "
                                f"{', '.join(missing)}); pass --corpus PATH")
    return str(root)
