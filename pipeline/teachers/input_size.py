"""The official Depth Anything V2 network input size: sides multiples of the 14 px patch.

Pure arithmetic (no torch), so that config checks and ``--help`` can use it without loading
the model code; :mod:`pipeline.teachers.resize` resamples images to these sizes.
"""

from __future__ import annotations

import math

import numpy as np

PATCH = 14


def multiple_of_at_least(x: float, minimum: int, multiple: int = PATCH) -> int:
    """``x`` rounded to a multiple of ``multiple``; raised to the next one if below ``minimum``.

    The official ``constrain_to_multiple_of(x, min_val=...)``: numpy rounding (half to even).
    """
    y = int(np.round(x / multiple) * multiple)
    return int(math.ceil(x / multiple) * multiple) if y < minimum else y


def official_network_size(hw: tuple[int, int], input_size: int) -> tuple[int, int]:
    """Network input (h, w) of the official ``Resize(keep_aspect_ratio, lower_bound, 14)``.

    Both sides are scaled by ``max(input_size / h, input_size / w)`` (the shorter side lands on
    ``input_size``), rounded to multiples of 14 and raised to the next multiple when the
    rounding falls below ``input_size`` (520 -> 532, not 518).
    """
    h, w = hw
    scale = max(input_size / h, input_size / w)
    return (multiple_of_at_least(scale * h, input_size),
            multiple_of_at_least(scale * w, input_size))
