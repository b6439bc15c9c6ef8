"""Device targets: profiles resolved from the registry with overrides, each variant judged fits / does not fit
with its numbers, and the primary chosen among the variants that fit (none fitting: exit 4)."""
import pytest

from edgepipe import tasks
from edgepipe.components.optimization.targets import PROFILES, fit, resolve
from edgepipe.pipeline.errors import ConfigError, VerificationError
from edgepipe.tasks.variants import gated_primary


def test_profiles_and_overrides_resolve_to_plain_data():
    assert {"cortex_m4", "cortex_m7", "linux_arm64"} <= set(PROFILES)
    m4 = resolve("cortex_m4")
    assert m4["int8_only"] and m4["op_set"] == "tflm" and m4["flash_kb"] == 1024
    small = resolve("cortex_m4", flash_kb=64, ram_kb=32, energy_table={"sram_read_32bit": 2.0})
    assert small["flash_kb"] == 64 and small["ram_kb"] == 32 and small["name"] == "cortex_m4 (custom)"
    assert small["energy_table"] == {"sram_read_32bit": 2.0} and small["memory"]["weights"] == "sram"
    custom = resolve(flash_kb=10)
    assert custom["name"] == "custom" and custom["flash_kb"] == 10
    assert resolve() is None
    with pytest.raises(ConfigError, match="not a known device"):
        resolve("cortex_m9")
    with pytest.raises(ConfigError, match="flash_read_32bit"):
        resolve(memory={"weights": "flash"})
    assert resolve(memory={"weights": "flash"}, energy_table={"flash_read_32bit": 12.0})["memory"]["weights"] == \
        "flash"


def test_real_variants_are_judged_with_their_numbers(tflite_models):
    index = tflite_models.read_json("variants.json")
    m4 = resolve("cortex_m4")
    assert fit(index["int8_ptq"], m4)["fits"] is True
    floats = fit(index["float32"], m4)
    assert not floats["fits"] and any(r.startswith("int8 only") for r in floats["reasons"])
    assert fit(index["float32"], resolve("linux_arm64"))["fits"] is True
    int8 = index["int8_ptq"]
    tight = resolve("cortex_m4", flash_kb=int8["size_bytes"] / 1024 - 1, ram_kb=int8["cost"]["arena_bytes"] / 1024 - 1,
                    latency_ms=1e-6, energy_uj=int8["cost"]["energy_uj"] / 2)
    judged = fit(int8, tight)
    assert not judged["fits"] and judged["flash_bytes"] == int8["size_bytes"]
    assert [r.split(":")[0] for r in judged["reasons"]] == ["flash", "RAM", "latency", "energy"]
    assert judged["latency_ms"] == pytest.approx(1000 * (int8["cost"]["macs"] + int8["cost"]["elementwise_ops"])
                                                 / 100e6)


def test_unregistered_op_does_not_fit_tflm():
    entry = {"size_bytes": 100, "mode": "int8", "float_ops": [], "ops": ["CONV_2D", "RFFT2D"],
             "cost": {"macs": 10, "elementwise_ops": 0, "arena_bytes": 100, "energy_uj": 0.1}}
    judged = fit(entry, resolve("cortex_m7"))
    assert not judged["fits"] and judged["reasons"] == ["TFLite Micro lacks op(s) RFFT2D"]
    assert fit(entry, resolve("linux_arm64"))["fits"]


def _row(variant, fits, drop, exported=True):
    return {"variant": variant, "fits": fits, "fit_reasons": [] if fits else ["flash: model 52.1 KB > 48 KB"],
            "target": "cortex_m4 (custom)", "metric_drop": drop, "exported": exported}


def test_primary_is_the_best_metric_int8_variant_that_fits():
    rows = [{"variant": "keras", "metric_drop": 0.0, "exported": None}, _row("float32", False, 0.0),
            _row("int8_ptq", True, 0.01), _row("int8_qat", False, 0.0), _row("pqat", True, 0.03),
            _row("clustered", True, 0.005, exported=False)]
    chosen, reason = gated_primary("auto", rows)
    assert chosen == "int8_ptq" and "int8_qat: flash" in reason
    with pytest.raises(VerificationError, match="'int8_qat' does not fit cortex_m4"):
        gated_primary("int8_qat", rows)
    none = [_row("int8_ptq", False, 0.0), _row("pqat", False, 0.0)]
    with pytest.raises(VerificationError, match=r"no int8 variant fits cortex_m4 \(custom\): int8_ptq: flash: "
                                                r"model 52.1 KB > 48 KB"):
        gated_primary("auto", none)
    # without a target nothing changes: the auto preference order
    plain = [{k: v for k, v in r.items() if k not in ("fits", "fit_reasons", "target")} for r in rows]
    assert gated_primary("auto", plain)[0] == "pqat"


def test_target_section_is_validated_in_one_line():
    from edgepipe.pipeline.config import load_config

    cfg = load_config(None, ["target.profile=cortex_m7", "target.ram_kb=256",
                             "target.energy_table={sram_read_32bit: 2.5}"])
    assert cfg.target.resolved()["ram_kb"] == 256 and cfg.target.resolved()["op_set"] == "tflm"
    assert load_config(None).target.resolved() is None
    for override, expected in [("target.profile=cortex_m9", "config key 'target.profile': must be one of"),
                               ("target.flash_kb=-1", "config key 'target.flash_kb'"),
                               ("target.energy_table={sram_reed_32bit: 1}", "unknown key.*sram_reed_32bit"),
                               ("target.memory={weights: flash}", "no flash_read_32bit"),
                               ("target.flashkb=64", "unknown config key 'target.flashkb'")]:
        with pytest.raises(ConfigError, match=expected) as info:
            load_config(None, [override])
        assert "\n" not in str(info.value)


def test_convert_judges_each_variant_and_the_export_gate_ships_only_what_fits(trained_model, qat_model,
                                                                             windows_examples, tmp_path):
    """convert_tflite -> evaluation rows -> export gate, on the real tiny detector: every variant carries its
    judgement, the primary is an int8 variant that fits, and a device nothing fits refuses the export (exit 4)."""
    from edgepipe.components.evaluation.anomaly import evaluate_anomaly
    from edgepipe.components.export.gate import gate_variants
    from edgepipe.components.optimization import convert_tflite
    from edgepipe.pipeline.artifacts import ModelEvaluation, TFLiteModels

    def judged(name, target):
        tflite = TFLiteModels(tmp_path / name)
        convert_tflite.fn(examples=windows_examples, model=trained_model, qat_model=qat_model, tflite=tflite,
                          representative_samples=16, variants=["float32", "int8_ptq", "int8_qat"], target=target)
        tflite.finalize()
        evaluation = ModelEvaluation(tmp_path / f"{name}-eval")
        evaluate_anomaly(examples=windows_examples, model=trained_model, tflite=TFLiteModels.open(tflite.path),
                         evaluation=evaluation, settings=tasks.get("anomaly").evaluate(latency_runs=2))
        evaluation.finalize()
        evaluation = ModelEvaluation.open(evaluation.path)
        return TFLiteModels.open(tflite.path), evaluation

    tflite, evaluation = judged("m4", resolve("cortex_m4"))
    index = tflite.read_json("variants.json")
    assert {n: e["target"]["fits"] for n, e in index.items()} == {"float32": False, "int8_ptq": True, "int8_qat": True}
    assert tflite.properties["target"]["name"] == "cortex_m4"
    rows = {r["variant"]: r for r in evaluation.read_json("variants.json")}
    assert rows["float32"]["fits"] is False and rows["float32"]["fit_reasons"][0].startswith("int8 only")
    gated = gate_variants(tflite, evaluation, evaluation.read_json("evaluation.json"), 0.0, None, "auto")
    assert gated.chosen in ("int8_ptq", "int8_qat") and "device target cortex_m4" in gated.reason

    smallest = min(e["size_bytes"] for e in index.values())
    tflite, evaluation = judged("tiny", resolve("cortex_m4", flash_kb=smallest / 1024 / 2))
    with pytest.raises(VerificationError, match=r"no int8 variant fits cortex_m4 \(custom\): .*int8_ptq: flash: "
                                                r"model [\d.]+ KB > [\d.]+ KB"):
        gate_variants(tflite, evaluation, evaluation.read_json("evaluation.json"), 0.0, None, "auto")
