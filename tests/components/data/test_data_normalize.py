"""normalize fits on the train split only and applies (x - center) / scale to every split."""
import numpy as np
import pytest

from edgepipe.components.data import compute_statistics, ingest_timeseries, normalize
from edgepipe.pipeline.errors import ConfigError


@pytest.fixture(scope="module")
def drifting(tmp_path_factory, run):
    """One series whose later (eval/test) part is shifted and wider; plus a constant channel."""
    rng = np.random.default_rng(11)
    n = 200
    x = np.where(np.arange(n) < 120, rng.normal(0, 1, n), rng.normal(10, 3, n))
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(n) * np.timedelta64(10, "m")
    tmp_path = tmp_path_factory.mktemp("drifting")
    (tmp_path / "s.csv").write_text("timestamp,x,const\n" + "".join(f"{t},{v:.6f},4.5\n" for t, v in zip(stamps, x)))
    _, ing = run(ingest_timeseries, tmp_path / "ing", source=str(tmp_path / "s.csv"), chunk_size=32)
    _, st = run(compute_statistics, tmp_path / "st", examples=ing["examples"])
    return ing["examples"], st["statistics"]


def _values(rows, examples, split):
    return rows(examples, split)["s"]["values"].astype(np.float64)


@pytest.mark.parametrize("method", ["zscore", "minmax", "robust"])
def test_fitted_on_train_only_and_applied_to_all_splits(tmp_path, run, rows, drifting, method):
    examples, statistics = drifting
    metrics, out = run(normalize, tmp_path / method, examples=examples, statistics=statistics, method=method)
    params = out["params"].read_json("transform.json")
    train = _values(rows, examples, "train")[:, 0]
    everything = np.concatenate([_values(rows, examples, s) for s in ("train", "eval", "test")])[:, 0]
    fits = {"zscore": lambda v: (v.mean(), v.std()), "minmax": lambda v: (v.min(), v.max() - v.min()),
            "robust": lambda v: (np.median(v), np.quantile(v, 0.75) - np.quantile(v, 0.25))}
    expected, overall = fits[method](train), fits[method](everything)
    assert params["method"] == method and params["channels"] == ["x", "const"]
    assert params["center"][0] == pytest.approx(expected[0], rel=1e-9, abs=1e-12)
    assert params["scale"][0] == pytest.approx(expected[1], rel=1e-9)
    assert max(abs(params["center"][0] - overall[0]), abs(params["scale"][0] - overall[1])) > 1.0  # not all data
    assert params["center"][1] == pytest.approx(4.5) and params["scale"][1] == 1.0  # zero spread -> scale 1
    for split in ("train", "eval", "test"):
        raw, done = _values(rows, examples, split), _values(rows, out["transformed"], split)
        np.testing.assert_allclose(done, (raw - params["center"]) / params["scale"], rtol=1e-5, atol=1e-5)
    assert out["transformed"].properties["splits"] == examples.properties["splits"]
    assert out["transformed"].properties["feature_spec"] == examples.properties["feature_spec"]
    assert out["transformed"].properties["normalization"] == method
    assert metrics["examples"] == 4 + 2 + 2  # 120/40/40 steps in chunks of 32


def test_zscore_train_split_becomes_standard(tmp_path, run, rows, drifting):
    examples, statistics = drifting
    _, out = run(normalize, tmp_path / "z", examples=examples, statistics=statistics)
    train = _values(rows, out["transformed"], "train")[:, 0]
    assert train.mean() == pytest.approx(0.0, abs=1e-5) and train.std() == pytest.approx(1.0, rel=1e-5)
    assert _values(rows, out["transformed"], "test")[:, 0].mean() > 5  # the drift stays visible


def test_unknown_method_is_a_config_error(tmp_path, run, drifting):
    examples, statistics = drifting
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        run(normalize, tmp_path / "n", examples=examples, statistics=statistics, method="nope")
