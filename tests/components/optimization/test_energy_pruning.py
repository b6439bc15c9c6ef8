"""Energy-aware pruning: the allocation meets the global target exactly, moves sparsity towards layers whose
weights cost more energy and away from sensitive ones, and the pruned model really has those sparsities."""
import numpy as np
import pytest

from edgepipe.components.optimization.energy_allocation import allocate, energy_policy, layer_energy
from edgepipe.components.optimization.pruning import layer_sparsity, measured_sparsity, prunable_layers, prune_with_report


def test_allocation_meets_the_global_target_and_follows_the_score():
    weights = {"a": 1000, "b": 3000, "c": 500}
    sparsity = allocate(weights, {"a": 2.0, "b": 1.0, "c": 0.5}, 0.5)
    zeroed = sum(sparsity[k] * n for k, n in weights.items())
    assert zeroed == pytest.approx(0.5 * sum(weights.values()), rel=1e-6)
    assert sparsity["a"] > sparsity["b"] > sparsity["c"] > 0
    assert max(sparsity.values()) <= 0.95
    assert allocate(weights, {"a": 1.0, "b": 1.0, "c": 1.0}, 0.3) == pytest.approx({"a": 0.3, "b": 0.3, "c": 0.3})


def test_energy_per_weight_counts_reuse_at_every_output_position(trained_model):
    model = trained_model.load_keras()
    names = prunable_layers(model)
    sram = layer_energy(model, names, memory={"weights": "sram"})
    dram = layer_energy(model, names)
    for name in names:
        assert sram[name]["macs"] % sram[name]["weights"] == 0 and sram[name]["macs"] >= sram[name]["weights"]
        assert dram[name]["energy_per_weight_pj"] - sram[name]["energy_per_weight_pj"] == pytest.approx(
            (640 - 5) / 4)  # one int8 weight byte from DRAM instead of SRAM
    # with weights in SRAM the MACs dominate: layers reusing each weight at more positions cost more per weight
    per_weight = sorted(names, key=lambda n: sram[n]["macs"] / sram[n]["weights"])
    assert sram[per_weight[0]]["energy_per_weight_pj"] < sram[per_weight[-1]]["energy_per_weight_pj"]


def test_energy_policy_reaches_the_global_target_with_per_layer_sparsities(trained_model, windows_examples):
    model = trained_model.load_keras()
    x = windows_examples.read_numpy("train")["window"]
    net, report = prune_with_report(model, x, target_sparsity=0.5, epochs=2, batch_size=16, policy="energy",
                                    memory={"weights": "sram"})
    planned = {k: v["sparsity"] for k, v in report["allocation"]["layers"].items()}
    assert report["policy"] == "energy" and set(planned) == set(report["pruned"])
    assert len({round(s, 2) for s in planned.values()}) > 1  # not uniform
    measured = layer_sparsity(net)
    for name, s in planned.items():
        assert measured[name] == pytest.approx(s, abs=0.05)
    assert measured_sparsity(net) == pytest.approx(0.5, abs=0.03)
    alloc = report["allocation"]["layers"]
    assert sum(a["energy_share"] for a in alloc.values()) == pytest.approx(1.0)
    assert all(a["sensitivity"] >= 0 for a in alloc.values())


def test_sensitive_layer_is_spared(trained_model, windows_examples):
    model = trained_model.load_keras()
    x = windows_examples.read_numpy("train")["window"][:256]
    names = prunable_layers(model)
    policy = energy_policy(model, names, 0.5, x, x, "mse")
    layers = policy["layers"]
    most, least = max(names, key=lambda n: layers[n]["sensitivity"]), min(names, key=lambda n: layers[n]["sensitivity"])
    per_weight = {n: layers[n]["energy_per_weight_pj"] for n in names}
    # in DRAM the energy per weight is nearly equal, so sensitivity decides
    assert max(per_weight.values()) / min(per_weight.values()) < 1.2
    assert layers[most]["sparsity"] < layers[least]["sparsity"]
    assert np.allclose(model.get_layer(most).kernel.numpy(), trained_model.load_keras().get_layer(most).kernel.numpy())
