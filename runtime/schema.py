"""Hand-written validation of ``bundle.json``, versioned, with errors that name the offending key.

Why by hand: the runtime ships with NumPy and LiteRT only (no pydantic, no jsonschema), and a device that meets a
bundle it does not understand must refuse it with one clear line rather than mis-read a field. Validation covers
types, ranges and cross-field consistency (channel counts, tensor shapes vs window size, thresholds vs models);
the checks against the model files themselves live in :mod:`edgepipe.runtime.litert`. The typed getters every
check goes through (one line naming the key, numbers held to float32) are :mod:`edgepipe.runtime.checker`.

A ``schema_version`` newer than :data:`SUPPORTED_SCHEMA_VERSION` is refused: a newer exporter may have changed a
field's meaning, and guessing would silently produce wrong scores.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from edgepipe.runtime.checker import Checker, kind_of
from edgepipe.runtime.errors import BundleError
from edgepipe.runtime.likelihood import check_section as _likelihood_section
from edgepipe.runtime.scores import KINDS as SCORE_KINDS, PARAMETRIZED as SCORE_PARAMETRIZED

SUPPORTED_SCHEMA_VERSION = 1
DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32")
INTEGER_DTYPES = ("int8", "uint8", "int16", "int32")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

TaskCheck = Callable[["Checker", dict], None]
TASK_CHECKS: dict[str, TaskCheck] = {}


def task_check(task: str) -> Callable[[TaskCheck], TaskCheck]:
    """Register the task-specific part of the schema (what a family adds to the common keys)."""

    def register(fn: TaskCheck) -> TaskCheck:
        TASK_CHECKS[task] = fn
        return fn

    return register


def validate(doc: Any, source: str = "bundle.json") -> dict:
    """Check ``doc`` (parsed bundle.json) and return it; raise BundleError naming the first bad key."""
    c = Checker(source)
    if not isinstance(doc, dict):
        raise BundleError(f"{source}: must hold a JSON object, got {kind_of(doc)}")
    version = c.get(doc, "schema_version", "")
    c.integer(version, "schema_version", minimum=1)
    if version > SUPPORTED_SCHEMA_VERSION:
        raise BundleError(f"{source}: schema_version {version} is newer than this runtime supports "
                          f"({SUPPORTED_SCHEMA_VERSION}); upgrade edgepipe to load this bundle")
    task = c.string(c.get(doc, "task", ""), "task")
    if task not in TASK_CHECKS:
        raise BundleError(f"{source}: task '{task}' is not supported by this runtime "
                          f"(supported: {', '.join(sorted(TASK_CHECKS))})")
    models = c.obj(c.get(doc, "models", ""), "models")
    if not models:
        c.fail("models", "must name at least one model")
    files = {}
    for name, entry in models.items():
        files[_check_model(c, entry, f"models.{name}")] = name
    default = c.string(c.get(doc, "default_model", ""), "default_model")
    if default not in files:
        c.fail("default_model", f"names '{default}', which is not a file of 'models' ({', '.join(files)})")
    for side in ("input", "output"):
        top = tensor_spec(c, c.get(doc, side, ""), side)
        if top != tensor_spec(c, models[files[default]][side], f"models.{files[default]}.{side}"):
            c.fail(side, f"differs from models.{files[default]}.{side} (the default model '{default}')")
    thresholds = c.get(doc, "thresholds", "", optional=True)
    if thresholds is not None:
        for file, value in c.obj(thresholds, "thresholds").items():
            if file not in files:
                c.fail(f"thresholds.{file}", "names no model file of 'models'")
            expected = models[files[file]].get("threshold")
            if value != expected:
                c.fail(f"thresholds.{file}", f"is {value}, but models.{files[file]}.threshold is {expected}")
    TASK_CHECKS[task](c, doc)
    return doc


def _check_model(c: Checker, entry: Any, key: str) -> str:
    entry = c.obj(entry, key)
    file = c.string(c.get(entry, "file", key), f"{key}.file")
    if "/" in file or "\\" in file or file in (".", "..") or not file.endswith(".tflite"):
        c.fail(f"{key}.file", f"must be a plain '.tflite' file name inside the bundle, got '{file}'")
    _digest(c, entry, key)
    size = c.get(entry, "size_bytes", key, optional=True)
    if size is not None:
        c.integer(size, f"{key}.size_bytes", minimum=1)
    threshold = c.get(entry, "threshold", key, optional=True)
    if threshold is not None:
        c.number(threshold, f"{key}.threshold")
    for side in ("input", "output"):
        tensor_spec(c, c.get(entry, side, key), f"{key}.{side}")
    inputs = c.get(entry, "inputs", key, optional=True)
    if inputs is not None:  # multi-input models (a conditional generator: latent + label)
        if not isinstance(inputs, list) or len(inputs) < 2:
            c.fail(f"{key}.inputs", f"must list at least 2 tensors when present, got {kind_of(inputs)}")
        names = [c.string(c.get(c.obj(t, f"{key}.inputs[{i}]"), "name", f"{key}.inputs[{i}]"), f"{key}.inputs[{i}].name")
                 for i, t in enumerate(inputs)]
        for i, t in enumerate(inputs):
            tensor_spec(c, t, f"{key}.inputs[{i}]")
        if entry["input"].get("name") not in names:
            c.fail(f"{key}.input", "must be one of the tensors of 'inputs'")
    return file


def _digest(c: Checker, entry: dict, key: str) -> str:
    """``<key>.sha256`` is mandatory: without it a swapped or damaged model file would load and predict."""
    sha = c.get(entry, "sha256", key)
    if not isinstance(sha, str) or not _SHA256.match(sha):
        c.fail(f"{key}.sha256", f"must be 64 lowercase hex digits, got {kind_of(sha)}")
    return sha


def tensor_spec(c: Checker, value: Any, key: str) -> dict:
    """Normalized ``{"shape", "dtype", "scale", "zero_point"}`` of a tensor description (name is informative)."""
    spec = c.obj(value, key)
    shape = c.get(spec, "shape", key)
    if not isinstance(shape, list) or not shape:
        c.fail(f"{key}.shape", f"must be a non-empty list, got {kind_of(shape)}")
    for i, dim in enumerate(shape):
        if dim is not None:
            c.integer(dim, f"{key}.shape[{i}]", minimum=1)
    dtype = c.string(c.get(spec, "dtype", key), f"{key}.dtype", DTYPES)
    quant = c.get(spec, "quantization", key, optional=True)
    scale = zero_point = None
    if quant is not None:
        quant = c.obj(quant, f"{key}.quantization")
        scale = c.number(c.get(quant, "scale", f"{key}.quantization"), f"{key}.quantization.scale", positive=True)
        zero_point = c.integer(c.get(quant, "zero_point", f"{key}.quantization"), f"{key}.quantization.zero_point")
    elif dtype in INTEGER_DTYPES and dtype != "int32":  # int32 carries indices (a cGAN's class label), not values
        c.fail(f"{key}.quantization", f"is required for a {dtype} tensor (scale and zero point)")
    return {"shape": shape, "dtype": dtype, "scale": scale, "zero_point": zero_point}


def _feature_shape(c: Checker, doc: dict) -> list:
    """Shape of one model input without the batch dimension, after checking every model agrees on it."""
    shapes = {name: tensor_spec(c, m["input"], f"models.{name}.input")["shape"] for name, m in doc["models"].items()}
    for name, shape in shapes.items():
        if shape[0] is not None and shape[0] != 1:
            c.fail(f"models.{name}.input.shape[0]", f"is a batch dimension: null or 1, got {shape[0]}")
        if None in shape[1:]:
            c.fail(f"models.{name}.input.shape", f"may be dynamic in the batch dimension only, got {shape}")
    first = next(iter(shapes))
    for name, shape in shapes.items():
        if shape[1:] != shapes[first][1:]:
            c.fail(f"models.{name}.input.shape", f"is {shape}, but models.{first}.input.shape is {shapes[first]}")
    return shapes[first][1:]


def _score_section(c: Checker, doc: dict, size: int) -> None:
    """Optional ``score`` (absent: ``reconstruction_mse``): a kind the runtime's score registry knows, and for
    ``newest_mse`` a step count within the window."""
    score = c.get(doc, "score", "", optional=True)
    if score is None:
        return
    score = c.obj(score, "score")
    kind = c.string(c.get(score, "kind", "score"), "score.kind", tuple(SCORE_KINDS))
    if kind in SCORE_PARAMETRIZED:
        steps = c.get(score, "steps", "score")
        if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= size:
            c.fail("score.steps", f"must be an integer in [1, window.size {size}], got {steps!r}")


@task_check("anomaly_detection")
def _anomaly(c: Checker, doc: dict) -> None:
    window = c.obj(c.get(doc, "window", ""), "window")
    size = c.integer(c.get(window, "size", "window"), "window.size", minimum=1)
    c.integer(c.get(window, "stride", "window"), "window.stride", minimum=1)
    channels = c.integer(c.get(window, "channels", "window"), "window.channels", minimum=1)
    names = c.get(window, "channel_names", "window", optional=True)
    if names is not None:
        names = c.strings(names, "window.channel_names", channels)
    norm = c.obj(c.get(doc, "normalization", ""), "normalization")
    c.string(c.get(norm, "method", "normalization"), "normalization.method")
    c.numbers(c.get(norm, "center", "normalization"), "normalization.center", channels)
    c.numbers(c.get(norm, "scale", "normalization"), "normalization.scale", channels, positive=True)
    norm_names = c.get(norm, "channels", "normalization", optional=True)
    if norm_names is not None:
        norm_names = c.strings(norm_names, "normalization.channels", channels)
        if names is not None and norm_names != names:
            c.fail("normalization.channels", f"is {norm_names}, but window.channel_names is {names}")
    clip = c.get(doc, "input_clip", "", optional=True)
    if clip is not None:  # the model's input domain: the normalized window is clipped to [min, max] before the model
        clip = c.obj(clip, "input_clip")
        low = c.number(c.get(clip, "min", "input_clip"), "input_clip.min")
        if c.number(c.get(clip, "max", "input_clip"), "input_clip.max") <= low:
            c.fail("input_clip", f"max must exceed min ({low})")
    feature = _feature_shape(c, doc)
    if feature != [size, channels]:
        c.fail("window", f"says [size {size}, channels {channels}], but the models' input shape is [batch, "
                         f"{', '.join(map(str, feature))}]")
    _score_section(c, doc, size)
    _likelihood_section(c, doc)  # optional: streaming likelihood and alert parameters (runtime/likelihood.py)
    for name, model in doc["models"].items():
        c.number(c.get(model, "threshold", f"models.{name}"), f"models.{name}.threshold")
        out = tensor_spec(c, model["output"], f"models.{name}.output")["shape"]
        if out[1:] != [size, channels]:
            c.fail(f"models.{name}.output.shape", f"is {out}; a reconstruction must match the window "
                                                 f"[batch, {size}, {channels}]")


def _optional_affine(c: Checker, doc: dict, key: str, length: int | None) -> None:
    """``{"center": [...], "scale": [...]}`` applied as ``(x - center) / scale`` over the last axis."""
    value = c.get(doc, key, "", optional=True)
    if value is None:
        return
    value = c.obj(value, key)
    center = c.get(value, "center", key)
    n = length if length is not None else (len(center) if isinstance(center, list) else 0)
    c.numbers(center, f"{key}.center", n)
    c.numbers(c.get(value, "scale", key), f"{key}.scale", n, positive=True)


def _vector_output(c: Checker, doc: dict) -> int:
    out = tensor_spec(c, doc["output"], "output")["shape"]
    if len(out) != 2 or out[1] is None:
        c.fail("output.shape", f"must be [batch, outputs] for task '{doc['task']}', got {out}")
    return out[1]


@task_check("classification")
def _classification(c: Checker, doc: dict) -> None:
    feature = _feature_shape(c, doc)
    classes = _vector_output(c, doc)
    labels = c.get(doc, "labels", "", optional=True)
    if labels is not None:
        c.strings(labels, "labels", classes)
    kind = c.get(doc, "output_kind", "", optional=True)
    if kind is not None:
        c.string(kind, "output_kind", ("probabilities", "logits"))
    _optional_affine(c, doc, "normalization", feature[-1])
    _preprocessing(c, doc, feature)


@task_check("regression")
def _regression(c: Checker, doc: dict) -> None:
    feature = _feature_shape(c, doc)
    outputs = _vector_output(c, doc)
    names = c.get(doc, "target_names", "", optional=True)
    if names is not None:
        c.strings(names, "target_names", outputs)
    _optional_affine(c, doc, "normalization", feature[-1])
    _optional_affine(c, doc, "target_normalization", outputs)
    _preprocessing(c, doc, feature)


@task_check("reconstruction")
def _reconstruction(c: Checker, doc: dict) -> None:
    """An autoencoder: the output has the input's shape; optional ``score`` kind, ``normalization`` and ``encoder``
    (the bottleneck embedding model shipped beside it: file, sha256, input/output tensors)."""
    feature = _feature_shape(c, doc)
    for name, model in doc["models"].items():
        out = tensor_spec(c, model["output"], f"models.{name}.output")["shape"]
        if out[1:] != feature:
            c.fail(f"models.{name}.output.shape", f"is {out}; a reconstruction must match the input [batch, "
                                                 f"{', '.join(map(str, feature))}]")
        if model.get("threshold") is not None:
            c.number(model["threshold"], f"models.{name}.threshold")
    score = c.get(doc, "score", "", optional=True)
    if score is not None:
        c.string(c.get(c.obj(score, "score"), "kind", "score"), "score.kind", ("reconstruction_mse",))
    encoder = c.get(doc, "encoder", "", optional=True)
    if encoder is not None:
        encoder = c.obj(encoder, "encoder")
        c.string(c.get(encoder, "file", "encoder"), "encoder.file")
        _digest(c, encoder, "encoder")
        if tensor_spec(c, c.get(encoder, "input", "encoder"), "encoder.input")["shape"][1:] != feature:
            c.fail("encoder.input.shape", f"must match the model input [batch, {', '.join(map(str, feature))}]")
        tensor_spec(c, c.get(encoder, "output", "encoder"), "encoder.output")
    _optional_affine(c, doc, "normalization", feature[-1])
    _preprocessing(c, doc, feature)


# ---- families added with the per-family bundles (same schema_version: every addition is optional or task-scoped) --
PREPROCESSING_KINDS = ("table", "image", "sequence", "features", "latent", "observation")


def _preprocessing(c: Checker, doc: dict, feature: list) -> None:
    """Optional ``preprocessing``: ``kind``; tables name one column per input feature; images give the file scaling."""
    value = c.get(doc, "preprocessing", "", optional=True)
    if value is None:
        return
    pre = c.obj(value, "preprocessing")
    kind = c.string(c.get(pre, "kind", "preprocessing"), "preprocessing.kind", PREPROCESSING_KINDS)
    if kind == "table":
        names = c.strings(c.get(pre, "features", "preprocessing"), "preprocessing.features", feature[-1])
        if isinstance(pre.get("transform"), dict):
            from edgepipe.runtime.skew import check_transform  # the table transform's own module

            check_transform(c, pre, names)
    if kind == "image":
        image = c.obj(c.get(pre, "image", "preprocessing"), "preprocessing.image")
        c.number(c.get(image, "scale", "preprocessing.image"), "preprocessing.image.scale", positive=True)
        c.number(c.get(image, "offset", "preprocessing.image"), "preprocessing.image.offset")
        if len(feature) != 3:
            c.fail("preprocessing.kind", f"is 'image', but the model input is [batch, {', '.join(map(str, feature))}]")


@task_check("segmentation")
def _segmentation(c: Checker, doc: dict) -> None:
    feature = _feature_shape(c, doc)
    out = tensor_spec(c, doc["output"], "output")["shape"]
    if len(out) != 4 or len(feature) != 3 or out[1:3] != feature[:2]:
        c.fail("output.shape", f"must be [batch, height, width, classes] matching the input "
                               f"[batch, {', '.join(map(str, feature))}], got {out}")
    labels = c.get(doc, "labels", "", optional=True)
    if labels is not None:
        c.strings(labels, "labels", out[3])
    _preprocessing(c, doc, feature)


@task_check("generation")
def _generation(c: Checker, doc: dict) -> None:
    gen = c.obj(c.get(doc, "generation", ""), "generation")
    dim = c.integer(c.get(gen, "latent_dim", "generation"), "generation.latent_dim", minimum=1)
    latent_name = c.string(c.get(gen, "latent_input", "generation"), "generation.latent_input")
    label_name = c.get(gen, "label_input", "generation", optional=True)
    for name, model in doc["models"].items():
        inputs = model.get("inputs") or [model["input"]]
        by_name = {t["name"]: t for t in inputs}
        if latent_name not in by_name:
            c.fail("generation.latent_input", f"names no input of models.{name} ({', '.join(by_name)})")
        if tensor_spec(c, by_name[latent_name], f"models.{name}.input")["shape"][1:] != [dim]:
            c.fail("generation.latent_dim", f"is {dim}, models.{name}'s latent input is {by_name[latent_name]['shape']}")
        if label_name is not None and label_name not in by_name:
            c.fail("generation.label_input", f"names no input of models.{name} ({', '.join(by_name)})")
        if label_name is None and len(inputs) > 1:
            c.fail("generation.label_input", f"is missing, but models.{name} has {len(inputs)} inputs")
    if label_name is not None:
        classes = c.integer(c.get(gen, "num_classes", "generation"), "generation.num_classes", minimum=2)
        labels = c.get(doc, "labels", "", optional=True)
        if labels is not None:
            c.strings(labels, "labels", classes)
    _preprocessing(c, doc, [dim])


@task_check("policy")
def _policy(c: Checker, doc: dict) -> None:
    feature = _feature_shape(c, doc)
    actions = _vector_output(c, doc)
    policy = c.obj(c.get(doc, "policy", ""), "policy")
    n = c.integer(c.get(policy, "num_actions", "policy"), "policy.num_actions", minimum=1)
    if n != actions:
        c.fail("policy.num_actions", f"is {n}, but the model outputs {actions} Q-values")
    _preprocessing(c, doc, feature)
