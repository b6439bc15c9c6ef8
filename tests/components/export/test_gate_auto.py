"""``convert.primary: auto`` at the export gate (QA 23 N5): when no int8 variant passes, the refusal names every
int8 variant this run built and why each failed, not only the first choice; the ranking a reason shows lists only
the variants this run built (a cGAN builds no pqat or pruned_int8)."""
from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest

from edgepipe.components.export.gate import gate_variants
from edgepipe.pipeline.errors import VerificationError
from edgepipe.tasks.variants import gated_primary


def _report(**agreement):
    models = {"keras": {}, "float32": {}, **{v: {} for v in agreement}}
    return {"models": models, "metric_name": "accuracy",
            "agreement": {"float32": {"all": 1.0}, **{v: {"all": a} for v, a in agreement.items()}}}


NO_TABLE = SimpleNamespace(variant_rows=lambda: None)  # the rows come from evaluation.json's models


def test_auto_refusal_names_every_int8_variant_and_why():
    report = _report(int8_ptq=0.8, int8_qat=0.3333, pruned_int8=0.3333, pqat=0.3333)
    with pytest.raises(VerificationError) as err:
        gate_variants(None, NO_TABLE, report, min_agreement=0.98, max_metric_drop=None, primary="auto")
    assert str(err.value) == ("no int8 variant passed verification: pqat agreement 0.3333 < 0.98; int8_qat agreement "
                              "0.3333 < 0.98; pruned_int8 agreement 0.3333 < 0.98; int8_ptq agreement 0.8 < 0.98 "
                              "(agreement with the Keras model on the evaluated data); nothing exported")


def test_a_named_primary_that_fails_is_refused_alone():
    report = _report(int8_ptq=0.8, pqat=0.3333)
    with pytest.raises(VerificationError, match=r"^primary int8 variant 'int8_ptq' agrees .* on 0\.8000"):
        gate_variants(None, NO_TABLE, report, min_agreement=0.98, max_metric_drop=None, primary="int8_ptq")


def test_float_fallback_says_every_int8_variant_failed(tmp_path):
    report = _report(int8_qat=0.5, int8_ptq=0.6)
    (tmp_path / "float32.tflite").write_bytes(b"float model")
    report["models"]["float32"]["sha256"] = hashlib.sha256(b"float model").hexdigest()
    tflite = SimpleNamespace(path=tmp_path, variant_path=lambda v: tmp_path / f"{v}.tflite")
    gated = gate_variants(tflite, NO_TABLE, report, min_agreement=0.98, max_metric_drop=None, primary="auto",
                          float_fallback=True)
    assert gated.chosen == "float32"
    assert gated.reason == ("no int8 variant passed verification (int8_qat agreement 0.5 < 0.98; int8_ptq agreement "
                            "0.6 < 0.98); the float32 model is shipped")


def test_auto_ranking_lists_only_the_variants_built():
    rows = [{"variant": "keras"}, {"variant": "float32", "exported": True},
            {"variant": "int8_qat", "exported": False, "reason": "agreement 0.5 < 0.98"},
            {"variant": "int8_ptq", "exported": True}]
    chosen, why = gated_primary("auto", rows)  # a cGAN's variants
    assert chosen == "int8_ptq"
    assert "(auto: int8_qat > int8_ptq)" in why and "pqat" not in why
