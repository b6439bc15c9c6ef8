"""What a builder needs to know about the data (:class:`DataSpec`) and one-line checks of what it is given.

A builder is ``fn(spec: DataSpec, **hparams) -> compiled tf_keras.Model``. The registry validates hyperparameter
*types* from the builder's annotations before calling it (see :mod:`edgepipe.models.registry`); the builder then
checks that the data fits the family (``require_rank``, ``require_task``) so that, e.g., images given to ``rnn`` fail
with one ConfigError naming the family, the shape it got and the shapes it accepts, before any training starts.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from edgepipe import tasks
from edgepipe.pipeline.errors import ConfigError


@dataclass(frozen=True)
class DataSpec:
    """Shape of one example and what is predicted from it.

    ``input_shape`` excludes the batch dimension. ``num_classes`` is the number of classes (classification,
    segmentation, conditional generation); ``output_dim`` the number of regression/forecast targets.
    """

    input_shape: tuple[int, ...]
    task: str = "classification"
    num_classes: int | None = None
    output_dim: int = 1
    class_names: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = tuple(int(d) for d in self.input_shape)
        if not shape or any(d <= 0 for d in shape):
            raise ConfigError(f"data spec: input_shape must be non-empty positive dimensions, got {self.input_shape}")
        object.__setattr__(self, "input_shape", shape)
        if self.task not in tasks.names():
            raise ConfigError(f"data spec: unknown task '{self.task}' (allowed: {', '.join(tasks.names())})")
        task = tasks.get(self.task)
        if task.integer_labels and task.label_required and (self.num_classes is None or self.num_classes < 2):
            raise ConfigError(f"data spec: task '{self.task}' needs num_classes >= 2, got {self.num_classes}")

    @property
    def rank(self) -> int:
        return len(self.input_shape)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["input_shape"] = list(self.input_shape)
        out["class_names"] = list(self.class_names) if self.class_names else None
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "DataSpec":
        raw = dict(raw)
        raw["input_shape"] = tuple(raw["input_shape"])
        if raw.get("class_names"):
            raw["class_names"] = tuple(raw["class_names"])
        return cls(**raw)


def coerce_spec(spec: DataSpec | dict[str, Any] | None, family: str) -> DataSpec:
    if isinstance(spec, DataSpec):
        return spec
    if isinstance(spec, dict):
        try:
            return DataSpec.from_json(spec)
        except TypeError as exc:
            raise ConfigError(f"model family '{family}': bad data spec ({exc})") from None
    raise ConfigError(f"model family '{family}' needs a data spec (spec=DataSpec(input_shape=..., task=...))")


def require_rank(family: str, spec: DataSpec, ranks: Iterable[int], what: str) -> None:
    ranks = tuple(ranks)
    if spec.rank not in ranks:
        raise ConfigError(f"model family '{family}' expects {what}, but the data has per-example shape "
                          f"{list(spec.input_shape)} (rank {spec.rank}; accepted ranks: {', '.join(map(str, ranks))})")


def require_task(family: str, spec: DataSpec, tasks: Iterable[str]) -> None:
    tasks = tuple(tasks)
    if spec.task not in tasks:
        raise ConfigError(f"model family '{family}' does not do task '{spec.task}' (supported: {', '.join(tasks)})")


def require(condition: bool, family: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"model family '{family}': {message}")


def positive_ints(family: str, name: str, values: Iterable[int], allow_empty: bool = False) -> list[int]:
    values = [int(v) for v in values]
    if (not values and not allow_empty) or any(v <= 0 for v in values):
        raise ConfigError(f"model family '{family}': hyperparameter '{name}' must be a "
                          f"{'' if allow_empty else 'non-empty '}list of positive integers, got {values}")
    return values


def in_range(family: str, name: str, value: float, low: float, high: float, inclusive_high: bool = False) -> float:
    ok = low <= value <= high if inclusive_high else low <= value < high
    if not ok:
        bracket = "]" if inclusive_high else ")"
        raise ConfigError(f"model family '{family}': hyperparameter '{name}' must be in [{low}, {high}{bracket}, "
                          f"got {value}")
    return value


def optimizer(name: str, learning_rate: float, family: str):
    """An optimizer by name (adam | sgd | rmsprop | adamw)."""
    import tf_keras as keras

    choices = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop,
               "adamw": getattr(keras.optimizers, "AdamW", keras.optimizers.Adam)}
    if name not in choices:
        raise ConfigError(f"model family '{family}': unknown optimizer '{name}' (allowed: {', '.join(choices)})")
    if not learning_rate > 0:
        raise ConfigError(f"model family '{family}': learning_rate must be > 0, got {learning_rate}")
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    return choices[name](learning_rate)


def head(spec: DataSpec, x, name: str = "output"):
    """The task's output layer(s) on features ``x``; float32 outputs so mixed precision keeps a stable loss."""
    import tf_keras as keras

    if tasks.get(spec.task).label == "class":
        return keras.layers.Dense(spec.num_classes, activation="softmax", dtype="float32", name=name)(x)
    return keras.layers.Dense(spec.output_dim, dtype="float32", name=name)(x)


def compile_for_task(model, spec: DataSpec, opt) -> None:
    """Compile with the task's declared loss; accuracy for class labels, MAE for values."""
    task = tasks.get(spec.task)
    model.compile(optimizer=opt, loss=task.loss, metrics=["accuracy"] if task.integer_labels else ["mae"])
