import numpy as np
import pytest

from pipeline.seeding import stream


def test_streams_are_reproducible_and_independent():
    a = stream(7, "returns", "img_001").random(4)
    assert np.array_equal(a, stream(7, "returns", "img_001").random(4))
    assert not np.array_equal(a, stream(7, "mount", "img_001").random(4))
    assert not np.array_equal(a, stream(7, "returns", "img_002").random(4))
    assert not np.array_equal(a, stream(8, "returns", "img_001").random(4))


def test_generator_seed_is_accepted_and_bad_seed_rejected():
    assert (
        stream(np.random.default_rng(0), "x").random()
        == stream(np.random.default_rng(0), "x").random()
    )
    with pytest.raises(ValueError, match="seed"):
        stream(-1, "x")
