"""Statistics do not depend on how a runner partitions and merges shards: the same shard summaries merged in any
grouping and order give the same bits (in-process DirectRunner vs multi_processing differed in the last digit)."""
import numpy as np

from edgepipe.components.data.statistics import MergeCombineFn, SplitStats, add_batch, summarize


def _shard(values: np.ndarray) -> SplitStats:
    return add_batch(SplitStats(values.shape[1], 1 << 20), (values, np.zeros(len(values), np.int64)))


def _merged(shards, groups) -> dict:
    """Merge as a runner would: each group into one partial, then the partials, like MergeCombineFn does."""
    fn = MergeCombineFn()
    partials = []
    for group in groups:
        acc = fn.create_accumulator()
        for i in group:
            acc = fn.add_input(acc, shards[i]())
        partials.append(acc)
    return summarize(fn.extract_output(fn.merge_accumulators(partials)))


def test_any_grouping_and_order_of_shards_gives_the_same_bits():
    rng = np.random.default_rng(7)
    data = [np.column_stack([rng.normal(2.09, 0.3, n), rng.normal(46.0, 7.2, n)]) for n in rng.integers(50, 400, 12)]
    shards = [lambda d=d: _shard(d) for d in data]  # a fresh accumulator per use, as each worker makes its own
    one_by_one = _merged(shards, [range(12)])
    results = [_merged(shards, groups) for groups in ([range(12)[::-1]], [range(0, 6), range(6, 12)],
                                                        [range(0, 12, 2), range(1, 12, 2)], [[i] for i in range(12)],
                                                        [[5, 3, 11], [0, 1, 2, 4], [6, 7, 8, 9, 10]])]
    for got in results:
        for c in range(2):
            assert got["channels"][c]["mean"] == one_by_one["channels"][c]["mean"]
            assert got["channels"][c]["std"] == one_by_one["channels"][c]["std"]
    every = np.concatenate(data)
    np.testing.assert_allclose([c["mean"] for c in one_by_one["channels"]], every.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose([c["std"] for c in one_by_one["channels"]], every.std(axis=0), rtol=1e-12)
