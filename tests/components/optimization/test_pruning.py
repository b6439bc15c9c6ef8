"""Pruning reaches its target sparsity, measured from the stripped weights, and QAT keeps it."""
import numpy as np
import pytest

from edgepipe.components.optimization import prune_model, quantize_model
from edgepipe.components.optimization.pruning import layer_sparsity, measured_sparsity, prune, pruning_schedule
from edgepipe.pipeline.artifacts import Model
from edgepipe.pipeline.errors import ConfigError


@pytest.mark.parametrize("schedule,epochs,batch_size", [("polynomial", 2, 16), ("constant", 1, 64)])
def test_prune_reaches_target_per_layer_and_leaves_input_model_alone(trained_model, windows_examples, schedule,
                                                                     epochs, batch_size):
    model = trained_model.load_keras()
    before = [w.copy() for w in model.get_weights()]
    x = windows_examples.read_numpy("train")["window"]
    pruned = prune(model, x, target_sparsity=0.6, epochs=epochs, schedule=schedule, batch_size=batch_size)
    assert [type(layer).__name__ for layer in pruned.layers] == [type(layer).__name__ for layer in model.layers]
    assert measured_sparsity(pruned) == pytest.approx(0.6, abs=0.02)
    assert all(s == pytest.approx(0.6, abs=0.05) for s in layer_sparsity(pruned).values())
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_prune_model_component_and_qat_keeps_sparsity(trained_model, windows_examples, tmp_path):
    pruned = Model(tmp_path / "pruned")
    metrics = prune_model.fn(windows=windows_examples, model=trained_model, pruned=pruned, target_sparsity=0.5,
                             epochs=2, batch_size=16)
    pruned.finalize()
    assert metrics["measured_sparsity"] == pytest.approx(0.5, abs=0.02)
    assert measured_sparsity(Model.open(pruned.path).load_keras()) == pytest.approx(metrics["measured_sparsity"])
    assert pruned.read_json("pruning.json")["not_pruned"] == []
    assert pruned.properties["train_on"] == "normal" and pruned.properties["pruning"]["target_sparsity"] == 0.5

    qat = Model(tmp_path / "qat")
    qmetrics = quantize_model.fn(windows=windows_examples, model=Model.open(pruned.path), qat_model=qat, epochs=1,
                                 batch_size=16)
    assert qat.read_json("quantization.json")["sparsity_preserved"] is True
    assert qmetrics["kernel_sparsity"] >= metrics["measured_sparsity"] - 1e-9


def test_schedule_validation():
    with pytest.raises(ConfigError, match="unknown schedule 'cubic'"):
        pruning_schedule("cubic", 0.5, 10)
    with pytest.raises(ConfigError, match="target_sparsity"):
        pruning_schedule("polynomial", 1.0, 10)


def test_prune_and_qat_report_epochs_and_stop_on_request(trained_model, windows_examples, tmp_path):
    """Their fine-tuning fits carry the shared progress callback: epochs reported, a stop honoured mid-fit."""
    from edgepipe.pipeline import progress

    events = []
    execution = progress.Execution("prune", sink=events.append)
    with progress.bound(execution):
        prune_model.fn(windows=windows_examples, model=trained_model, pruned=Model(tmp_path / "p"),
                       target_sparsity=0.5, epochs=2, batch_size=16)
    assert [(e.kind, e.step, e.total) for e in events if e.kind == "epoch"] == [("epoch", 1, 2), ("epoch", 2, 2)]
    execution.stop.set()
    with progress.bound(execution), pytest.raises(progress.StopRequested):
        quantize_model.fn(windows=windows_examples, model=trained_model, qat_model=Model(tmp_path / "q"), epochs=3,
                          batch_size=16)
