"""A stop asked while a fine-tuning component sets up (data, model, pruning wrappers) ends it before the first
batch, not after it: the first step traces the graph, seconds under load (C9: 6.4 s from SIGTERM to exit)."""
import numpy as np
import pytest

from edgepipe.pipeline import progress


def test_a_stop_asked_during_setup_ends_fit_before_any_batch():
    import tf_keras as keras

    from edgepipe.components.training.fit import progress_callback

    model = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    before = [w.copy() for w in model.get_weights()]
    x = np.ones((8, 4), np.float32)
    with progress.bound(progress.Execution("prune_model")) as execution:
        execution.stop.set()
        with pytest.raises(progress.StopRequested):
            model.fit(x, x[:, :1], batch_size=4, epochs=1, verbose=0, callbacks=[progress_callback(1)])
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)  # no batch ran
