"""The config's sections: one typed pydantic model per YAML section, each forbidding unknown keys.

Why a module of their own: ``pipeline/config.py`` loads, overrides and validates; what each section holds (and the
registries its choices are checked against: templates, families, tasks, variants, sources, device profiles) grew
with every issue and is read on its own when a key's meaning is wanted. :class:`edgepipe.pipeline.config.Config`
assembles them and re-exports the section classes (``from edgepipe.pipeline.config import DataSection``).
"""
from __future__ import annotations

from typing import Annotated, Any, Callable, Iterable, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from edgepipe import tasks
from edgepipe.models.registry import families
from edgepipe.pipeline.errors import ConfigError
from edgepipe.tasks import variants as catalogue
from edgepipe.tasks.sections import EvaluateSection  # noqa: F401 (re-exported)


def registered(what: str, names: Callable[[], Iterable[str]]):
    """A string that must name a registered entry, checked when a config is validated (not when this module is
    imported), so a family or task registered by a user's module before the config is read is accepted."""

    def check(value: str) -> str:
        allowed = tuple(names())
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(map(repr, allowed))} ({what})")
        return value

    return AfterValidator(check)


TemplateName = Annotated[str, registered("templates: the task registry's", lambda: tasks.templates())]
FamilyName = Annotated[str, registered("model families: edgepipe models", lambda: families())]
TaskName = Annotated[str, registered("tasks model.task may name; the others follow from family and template",
                                     lambda: tasks.names(configurable=True))]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PipelineSection(Section):
    name: str = "default"
    template: TemplateName = "anomaly_detection"  # a template runs the tasks naming it
    root: str = ".edgepipe"
    beam_args: list[str] = Field(default_factory=lambda: ["--runner=DirectRunner"])
    max_workers: PositiveInt = 1
    plugins: list[str] = Field(default_factory=list)  # modules imported before validation (config.import_plugins)


SourceFormat = Annotated[str, registered("data sources: components/data/sources", lambda: __import__(
    "edgepipe.components.data.sources", fromlist=["SOURCES"]).SOURCES)]


class TfdsSection(Section):
    """``data.source: tfds:<name>[:version]``: where TFDS keeps the prepared dataset (null: its default,
    ``~/tensorflow_datasets``) and our split names as TFDS split specs, e.g. {train: 'train[:90%]', eval:
    'train[90%:]', test: test}, which replace data.split (null: data.split's fractions, cut at the same percents
    across the dataset's own TFDS splits)."""
    data_dir: str | None = None
    splits: dict[str, str] | None = None

    @field_validator("splits")
    @classmethod
    def _has_train(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and "train" not in value:
            raise ValueError("must map a 'train' split (e.g. {train: 'train[:80%]', eval: 'train[80%:]', test: test})")
        return value


class ImageSection(Section):
    """Image and segmentation folders: each image resized (bilinear; masks nearest) to ``size`` [H, W] and
    converted to ``channels`` (1 grey, 3 RGB, 4 RGBA); the bundle resizes a PNG given to predict the same way."""
    size: tuple[PositiveInt, PositiveInt] = (32, 32)
    channels: Literal[1, 3, 4] = 3


class DataSection(Section):
    source: str = "builtin:sensors"
    format: SourceFormat | None = None  # the source registry's name, where the path does not tell (data.source)
    tfds: TfdsSection = Field(default_factory=TfdsSection)
    image: ImageSection = Field(default_factory=ImageSection)
    timestamp_column: str = "timestamp"
    series_column: str | None = "machine"
    feature_columns: list[str] | None = None
    label_column: str | None = "anomaly"
    class_names: list[str] | None = None  # a CSV's integer label classes 0..k-1 by name: the bundle's labels
    labels_json: str | None = None
    labels_key: str | None = None
    split: dict[str, float] = Field(default_factory=lambda: {"train": 0.6, "eval": 0.2, "test": 0.2})
    max_reject_fraction: float = Field(0.01, ge=0.0, le=1.0)
    chunk_size: PositiveInt = 4096
    resample: str | None = None  # e.g. "10min": put every step on that grid (slot average)
    gaps: Literal["leave", "interpolate", "break"] = "leave"
    bucket_rows: int = Field(1 << 20, ge=2)  # rows a worker holds while sorting/splitting a series

    @field_validator("split")
    @classmethod
    def _split_fractions(cls, value: dict[str, float]) -> dict[str, float]:
        if "train" not in value:
            raise ValueError("must contain a 'train' fraction")
        if any(f <= 0 for f in value.values()) or abs(sum(value.values()) - 1.0) > 1e-6:
            raise ValueError(f"fractions must be positive and sum to 1 (got {value})")
        return value


class NormalizeSection(Section):
    method: Literal["zscore", "minmax", "robust"] = "zscore"


class WindowSection(Section):
    size: PositiveInt = 32
    stride: PositiveInt = 4
    label_mode: Literal["any", "last"] = "any"




class TransformSection(Section):
    """Tables (a CSV source): the transform fitted on the train split, shipped in the bundle and applied by the
    runtime to raw rows (``components/data/transform.py``)."""
    numeric: Literal["zscore", "minmax", "robust", "none"] = "zscore"
    impute: Literal["mean", "median", "constant", "none"] = "mean"  # none: a missing value stays NaN
    fill_value: float = 0.0                    # impute: constant
    missing_indicator: bool = False            # one 0/1 input '<column>__missing' per numeric column with gaps
    clip: float | None = Field(5.0, gt=0.0)    # scaled values beyond +-clip are clipped (null: never)
    categorical: Literal["onehot", "index"] = "onehot"  # index: one int input per column (for an embedding)
    vocab_max_size: PositiveInt = 20           # top-k train values per string column; the rest share an OOV slot


class SchemaSection(Section):
    """Every Examples pipeline: a schema inferred on train, other splits validated against it
    (``components/data/schema.py``); the run fails only for the anomaly kinds in ``fail_on``."""
    fail_on: list[Literal["missing_column", "unexpected_column", "type_change", "out_of_range", "mean_drift",
                          "missing_values", "new_category"]] = Field(default_factory=lambda: ["missing_column",
                                                                                              "type_change"])
    max_mean_drift: float = Field(1.0, gt=0.0)      # |mean - train mean| / train std
    range_margin: float = Field(0.0, ge=0.0)        # x the train span beyond [min, max] still in range
    max_missing_increase: float = Field(0.05, ge=0.0, le=1.0)
    max_domain_size: PositiveInt = 100              # string columns with more train values get no domain


class ModelSection(Section):
    family: FamilyName = "autoencoder"  # the family registry's (edgepipe.models.registry), never listed by hand
    filters: list[PositiveInt] = Field(default_factory=lambda: [64, 32])
    kernel_size: PositiveInt = 7
    # Families other than the anomaly autoencoder: task, input/label features, and the builder's hyperparameters
    # (validated against the builder's signature when the pipeline is built; see `edgepipe models`).
    task: TaskName = "classification"
    x_key: str = "x"
    y_key: str = "label"
    hparams: dict[str, Any] = Field(default_factory=dict)


class TrainingSection(Section):
    epochs: PositiveInt = 20
    batch_size: PositiveInt = 64
    learning_rate: float = Field(1e-3, gt=0)
    strategy: Literal["auto", "default", "one_device", "mirrored", "multi_worker", "tpu"] = "auto"
    seed: int = 0
    train_on: Literal["normal", "all"] = "normal"
    patience: int = Field(5, ge=0)
    lr_schedule: Literal["plateau", "cosine", "constant"] = "plateau"
    fine_tune_epochs: int = Field(0, ge=0)     # mobilenet_v2: epochs with the top of the base unfrozen
    mixed_precision: bool = False              # mixed_float16 on GPU (ignored on CPU)
    checkpoints: bool = True                   # per-epoch checkpoints under ROOT/checkpoints: a retry resumes
    workers: list[str] | None = None           # multi_worker without TF_CONFIG: ["host:port", ...] ...
    task_index: int | None = None              # ... and this process's index in it
    time_budget_s: float | None = None         # dqn: stop collecting/training after this many seconds


class PruneSection(Section):
    enabled: bool = True
    target_sparsity: float = Field(0.5, gt=0.0, lt=1.0)
    epochs: PositiveInt = 2
    schedule: Literal["polynomial", "constant"] = "polynomial"
    learning_rate: float = Field(5e-4, gt=0)
    skip_layers: list[str] = Field(default_factory=list)
    structured_2_4: bool = False
    # energy: the same global target spread over layers by estimated energy and sensitivity
    # (components/optimization/energy_allocation.py); the variant table then adds pruned_uniform_int8 beside it
    policy: Literal["uniform", "energy"] = "uniform"


class QATSection(Section):
    enabled: bool = True
    epochs: PositiveInt = 2
    learning_rate: float = Field(1e-4, gt=0)


class ClusterSection(Section):
    enabled: bool = True
    number_of_clusters: int = Field(16, ge=2, le=256)
    epochs: PositiveInt = 1
    learning_rate: float = Field(1e-4, gt=0)
    skip_layers: list[str] = Field(default_factory=list)


VariantName = Literal[tuple(catalogue.VARIANTS)]  # the catalogue's (edgepipe.tasks.variants)
PrimaryName = Literal[("auto", *(n for n, v in catalogue.VARIANTS.items() if v.mode == "int8"))]


class ConvertSection(Section):
    representative_samples: PositiveInt = 200
    variants: list[VariantName] = Field(default_factory=lambda: list(catalogue.DEFAULT_VARIANTS))
    primary: PrimaryName = "auto"
    inference_type: Literal["int8", "uint8"] = "int8"
    allow_float_fallback: bool = False


# The ``evaluate`` section is the class of the config's task (``Task.evaluate``: tasks/sections.py and each task's
# module), chosen when the config is validated (``Config._evaluate_of_task``); re-exported here with the others.


class ExportSection(Section):
    min_agreement: float = Field(0.98, ge=0.0, le=1.0)
    max_metric_drop: float | None = Field(0.1, ge=0.0)  # task metric (F1 ...) below Keras float by more: refused


class RetrainSection(Section):
    """A later run on new data, blessed against the last exported bundle (``pipeline/templates/retrain.py``)."""
    baseline: str | None = None  # last: this pipeline's newest exported bundle in the root | a bundle path | null
    max_regression: float = Field(0.01, ge=0.0)  # the candidate's metric may be worse than the baseline's by this


def _device_profiles() -> Iterable[str]:
    from edgepipe.components.optimization.targets import PROFILES  # data only: no TensorFlow

    return PROFILES


TargetProfile = Annotated[str, registered("device profiles: components/optimization/targets.py", _device_profiles)]


class TargetSection(Section):
    """The device the model must fit (components/optimization/targets.py): a named profile, any of its numbers
    overridden, or custom numbers alone. Every variant is marked fits / does not fit; the primary is the
    best-metric int8 variant that fits; none fitting is exit 4."""
    profile: TargetProfile | None = None  # cortex_m4 | cortex_m7 | linux_arm64
    flash_kb: float | None = Field(None, gt=0)
    ram_kb: float | None = Field(None, gt=0)
    latency_ms: float | None = Field(None, gt=0)  # estimated from MACs / macs_per_second
    energy_uj: float | None = Field(None, gt=0)  # per inference, the cost model's estimate
    int8_only: bool | None = None
    op_set: Literal["tflm", "litert"] | None = None
    macs_per_second: float | None = Field(None, gt=0)
    memory: dict[Literal["weights", "activations"], str] | None = None  # where weights/activations are read from
    energy_table: dict[str, float] | None = None  # pJ, overrides of the Han et al. 45 nm table (docs/device.md)

    def resolved(self) -> dict[str, Any] | None:
        from edgepipe.components.optimization.targets import resolve

        return resolve(**self.model_dump())

    @model_validator(mode="after")
    def _resolvable(self) -> "TargetSection":
        try:
            self.resolved()
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("target: ")) from None
        return self


class SearchSection(Section):
    """Budget search (pipeline/search.py): ``trials`` Optuna trials (0: off) over the declared ``space``
    (dimension -> choices; dimensions in ``search.DIMENSIONS``), each a cached run of the normal pipeline; the best
    trial whose variant fits ``target`` is exported."""
    trials: int = Field(0, ge=0)
    seed: int = 0
    space: dict[str, list[Any]] = Field(default_factory=lambda: {
        "width": [0.25, 0.5, 1.0], "depth": [1, 2], "window": [16, 32], "sparsity": [0.5, 0.8],
        "quantization": ["int8_ptq", "int8_qat", "pruned_int8", "pqat"]})

    @field_validator("space")
    @classmethod
    def _known_dimensions(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        from edgepipe.pipeline.search import DIMENSIONS  # data only: no TensorFlow, no Optuna

        for name, choices in value.items():
            if name not in DIMENSIONS:
                raise ValueError(f"unknown dimension '{name}' (known: {', '.join(DIMENSIONS)})")
            if not isinstance(choices, list) or not choices:
                raise ValueError(f"'{name}' needs a non-empty list of choices")
            refusal = DIMENSIONS[name].refusal(name, choices)
            if refusal:
                raise ValueError(refusal)
        return value
