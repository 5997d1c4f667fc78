"""Shard-aware order, DDP shares, the per-worker batch plan, the map-style batch sampler and
the per-sample RNG."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from train.datasets.sampling import (
    PlanBatchSampler,
    SampleRef,
    StreamPlan,
    epoch_order,
    rank_share,
    sample_rng,
)

SHARDS = (0, 1, 2, 4, 5)
COUNTS = (8, 8, 8, 8, 5)  # the last shard is partial


def as_set(rows: np.ndarray) -> list[tuple[int, int]]:
    return [(int(s), int(o)) for s, o in rows]


def all_samples() -> set[tuple[int, int]]:
    return {(s, o) for s, c in zip(SHARDS, COUNTS, strict=True) for o in range(c)}


def test_epoch_order_is_a_permutation_mixing_only_within_shard_groups() -> None:
    order = epoch_order(SHARDS, COUNTS, seed=3, epoch=0, shuffle_shards=2)
    assert sorted(as_set(order)) == sorted(all_samples())
    # consecutive groups of 2 shards: each group's rows are contiguous in the order
    seen: list[int] = []
    for shard in order[:, 0]:
        if shard not in seen:
            seen.append(int(shard))
    groups = [set(seen[i:i + 2]) for i in range(0, len(seen), 2)]
    position = 0
    for group in groups:
        size = sum(COUNTS[SHARDS.index(s)] for s in group)
        assert set(order[position:position + size, 0].tolist()) == group
        position += size


def test_epoch_order_depends_on_seed_and_epoch_only() -> None:
    a = epoch_order(SHARDS, COUNTS, 1, 0, 4)
    np.testing.assert_array_equal(a, epoch_order(SHARDS, COUNTS, 1, 0, 4))
    assert not np.array_equal(a, epoch_order(SHARDS, COUNTS, 1, 1, 4))
    assert not np.array_equal(a, epoch_order(SHARDS, COUNTS, 2, 0, 4))
    ordered = epoch_order(SHARDS, COUNTS, 1, 0, 0)
    assert as_set(ordered) == sorted(all_samples())


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_ranks_get_disjoint_equal_shares_covering_every_sample(world: int) -> None:
    order = epoch_order(SHARDS, COUNTS, 0, 5, 2)
    shares = [rank_share(order, r, world) for r in range(world)]
    assert len({len(s) for s in shares}) == 1
    counts = Counter(sample for share in shares for sample in as_set(share))
    assert set(counts) == all_samples()
    total = sum(COUNTS)
    if total % world == 0:
        assert set(counts.values()) == {1}
    else:  # wrap-around padding repeats fewer than `world` samples
        assert sum(counts.values()) - total == len(shares[0]) * world - total < world


def test_ranks_cover_every_sample_exactly_once_when_divisible() -> None:
    counts = (8, 8, 8, 6)
    order = epoch_order((0, 1, 2, 3), counts, 0, 0, 2)
    shares = [as_set(rank_share(order, r, 2)) for r in range(2)]
    assert not set(shares[0]) & set(shares[1])
    assert len(shares[0]) == len(shares[1]) == 15
    assert sorted(shares[0] + shares[1]) == sorted(as_set(epoch_order((0, 1, 2, 3), counts,
                                                                      0, 0, 0)))


@pytest.mark.parametrize("regions", [1, 2, 3])
def test_plan_batches_use_each_sample_of_the_share_at_most_once(regions: int) -> None:
    plan = StreamPlan(SHARDS, COUNTS, batch_size=3, seed=0, shuffle_shards=2, rank=1,
                      world_size=2, num_regions=regions)
    share = plan.share(epoch=0)
    used = [tuple(r) for j in range(plan.batches_per_epoch)
            for r in plan.batch_rows(share, j).tolist()]
    assert plan.batches_per_epoch == len(share) // 3
    assert len(used) == plan.batches_per_epoch * 3
    assert Counter(used) == Counter(tuple(r) for r in share[:len(used)].tolist())


def test_plan_regions_are_contiguous_in_the_share() -> None:
    plan = StreamPlan((0, 1, 2, 3), (8, 8, 8, 8), batch_size=2, num_regions=2)
    share = plan.share(0)
    first = [plan.batch_rows(share, j) for j in range(0, plan.batches_per_epoch, 2)]
    np.testing.assert_array_equal(np.concatenate(first), share[:16])


def test_plan_rejects_a_store_smaller_than_a_batch() -> None:
    with pytest.raises(ValueError, match="fewer than the per-rank batch size"):
        StreamPlan((0,), (3,), batch_size=3, world_size=2)


def test_locate() -> None:
    plan = StreamPlan((0,), (10,), batch_size=3)
    assert plan.batches_per_epoch == 3
    assert plan.locate(7) == (2, 1)


def _batches(start: int, n: int, rank: int = 0, world: int = 1,
             batch: int = 2) -> list[list[SampleRef]]:
    plan = StreamPlan.for_items(10, batch, seed=0, rank=rank, world_size=world)
    it = iter(PlanBatchSampler(plan, start))
    return [next(it) for _ in range(n)]


def test_plan_batch_sampler_is_deterministic_and_resumable() -> None:
    run = _batches(0, 12)
    assert _batches(7, 5) == run[7:12]  # resume from batch 7 continues the same stream
    assert [b[0].batch for b in run] == list(range(12))
    assert [b[0].epoch for b in run] == [0] * 5 + [1] * 5 + [2] * 2
    epoch0 = [r.item for batch in run[:5] for r in batch]
    epoch1 = [r.item for batch in run[5:10] for r in batch]
    assert sorted(epoch0) == sorted(epoch1) == list(range(10))  # an epoch = a permutation
    assert epoch0 != epoch1
    with pytest.raises(ValueError, match="fewer than the per-rank batch size"):
        StreamPlan.for_items(1, 2)


def test_plan_batch_sampler_splits_epochs_over_ranks() -> None:
    shares = [[r.item for b in _batches(0, 5, rank, 2, batch=1) for r in b]
              for rank in range(2)]
    assert not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == list(range(10))


def test_sample_rng_is_a_function_of_seed_epoch_and_key() -> None:
    draw = sample_rng(3, 1, "a/0001.png").random(4)
    np.testing.assert_array_equal(draw, sample_rng(3, 1, "a/0001.png").random(4))
    for other in (sample_rng(4, 1, "a/0001.png"), sample_rng(3, 2, "a/0001.png"),
                  sample_rng(3, 1, "a/0002.png")):
        assert not np.array_equal(draw, other.random(4))
