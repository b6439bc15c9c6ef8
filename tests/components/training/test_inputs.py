"""Streaming the windows contract (components/training/inputs.py): same windows, same order as loading it whole."""
from __future__ import annotations

import numpy as np

from tests.components.fixtures import make_windows_examples


def test_iter_windows_yields_full_batches_in_load_order(tmp_path):
    from edgepipe.components.training.inputs import iter_windows, load_windows

    windows = make_windows_examples(tmp_path / "w", {"train": (300, 25), "eval": (10, 2)})
    for only_normal in (False, True):
        whole = load_windows(windows, "train", only_normal=only_normal)
        batches = list(iter_windows(windows, "train", only_normal=only_normal, batch_size=64))
        assert [len(b["window"]) for b in batches[:-1]] == [64] * (len(batches) - 1)
        for key in ("window", "label", "start"):
            np.testing.assert_array_equal(np.concatenate([b[key] for b in batches]), whole[key])
        assert batches[0]["window"].dtype == np.float32 and batches[0]["label"].dtype == np.int64
    assert sum(len(b["label"]) for b in iter_windows(windows, "train", only_normal=True)) == 275


def test_fit_inputs_streams_datasets_and_keeps_arrays_as_before(tmp_path):
    import tensorflow as tf

    from edgepipe.components.training.inputs import autoencoder_dataset, fit_inputs

    windows = make_windows_examples(tmp_path / "w", {"train": (40, 0)})
    ds = autoencoder_dataset(windows, "train", 8, only_normal=True)
    assert fit_inputs(ds, None, 8) == {"x": ds} and isinstance(ds, tf.data.Dataset)
    x = np.zeros((4, 16, 2), np.float32)
    kwargs = fit_inputs(x, None, 8)
    assert kwargs["x"] is x and kwargs["y"] is x and kwargs["batch_size"] == 8 and kwargs["shuffle"] is True


def test_calibration_samples_streamed_equal_indexing_every_window(tmp_path, trained_model):
    """convert_tflite's int8 calibration set (seeded draw + the windows holding the extremes) is gathered while
    streaming; it must be exactly what indexing the whole normal train split gave."""
    from edgepipe.components.optimization.calibration import SOURCES
    from edgepipe.components.training.inputs import load_windows

    windows = make_windows_examples(tmp_path / "w", {"train": (500, 30)})
    x = load_windows(windows, "train", only_normal=True)["window"]
    flat = x.reshape(len(x), -1)
    pick = np.random.default_rng(3).choice(len(x), size=40, replace=False)
    pick = np.unique(np.concatenate([pick, [int(flat.min(axis=1).argmin()), int(flat.max(axis=1).argmax())]]))
    calibration = SOURCES["windows"](windows, trained_model, None, samples=40, seed=3, batch_size=64)
    got = np.concatenate([batch[0] for batch in calibration.representative()])
    assert calibration.count == len(pick)
    np.testing.assert_array_equal(got, x[pick])
