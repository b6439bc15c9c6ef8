"""Anomaly detection on sensor series: an autoencoder scores windows by reconstruction error against a threshold.

The evaluation computes its own metric (F1 of each model with its own threshold, agreement of decisions on the
eval and test windows), so the metric here carries only its name and direction for the variant table and the gate.
The bundle's task fields (thresholds, normalization, windowing) come from the evaluation and the transform, which
``components/export`` reads; this declaration says what the rest of the pipeline needs.
"""
from edgepipe.tasks.base import Task, register
from edgepipe.tasks.metrics import TaskMetric

ANOMALY = register(Task(
    name="anomaly", description="windows of a sensor series scored by reconstruction error; alarms above a "
    "threshold fitted on normal training windows", runtime="anomaly_detection",
    metric=TaskMetric("f1", True), label="none", loss="mse", data="windows", calibration="windows",
    template="anomaly_detection", evaluation="anomaly", configurable=False))
