"""Evaluators by the kind a task declares (``Task.evaluation``): anomaly, supervised, generation, control.

An evaluator is a plain function ``(model, evaluation, [examples], [tflite], [classifier], settings, [seed]) ->
metrics`` that writes ``evaluation.json`` (and, given ``tflite``, the variant table the export gates on) into
``evaluation``; ``settings`` is the task's ``evaluate`` section (``Task.evaluate``), one object rather than a keyword
argument per key. The one ``evaluate`` component (``evaluate.py``) looks the task's evaluator up here, so a task
with a new kind of evaluation registers one function and nothing else changes.
"""
from __future__ import annotations

from typing import Callable

EVALUATORS: dict[str, Callable[..., dict]] = {}


def evaluator(kind: str) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    def register(fn: Callable[..., dict]) -> Callable[..., dict]:
        EVALUATORS[kind] = fn
        return fn

    return register
