"""The retrain stage: bless a candidate against the last exported bundle before it may ship (``retrain.*``).

Why a stage of its own: a later run on new data is the same pipeline (ingest, train, variants, evaluate ...);
what makes it a *retrain* is only that its export must not regress from what is deployed. With
``retrain.baseline`` set, this stage adds ``bless_model`` after evaluate: the baseline bundle is scored on the
candidate's evaluation data with the task's metric (``components/evaluation/blessing.py``), the report shows the
comparison and the export gate refuses (exit 4) a candidate worse by more than ``retrain.max_regression``.

``retrain.baseline``: ``last`` is the newest bundle any run of this ``pipeline.name`` exported into this root,
found through the metadata store (none yet: the first export is blessed as such); a path names an exported bundle
directory (``bundle.json``); null (the default) adds nothing. The baseline directory is an ``InputPath``: its
content joins the cache key. With ``last`` each export becomes the next run's baseline, so repeating a retrain
re-blesses (and re-exports) against the bundle it just wrote; a fixed bundle path left unchanged is a cache hit.

The baseline (``last`` resolved through the metadata store, a cheap query) is checked here, while the pipeline is
built: what its ``bundle.json`` says that the config contradicts (another task, window size, channels, table
columns, image shape: ``blessing.incomparable``) is refused (exit 2), naming the config key, where it was given
(the ``--set`` or the YAML file), and the bundle, before anything trains.
"""
from __future__ import annotations

from pathlib import Path

from edgepipe.pipeline.config import Config, key_origin
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.templates.plan import Plan
from edgepipe.pipeline.templates.stages import Context

KEYS = {"retrain.baseline", "retrain.max_regression"}


def applies(plan: Plan) -> bool:
    """A task whose evaluation has a baseline scorer, shipping through the variant stage's gated rows."""
    from edgepipe.components.evaluation.blessing import SCORERS

    return plan.variants == "full" and plan.task.evaluation in SCORERS


def keys(plan: Plan) -> set[str]:
    """The config keys the stage reads for ``plan`` (none where it cannot apply: ``retrain.*`` is then refused)."""
    return set(KEYS) if applies(plan) else set()


def baseline_bundle(cfg: Config) -> tuple[str | None, str | None]:
    """``(bundle directory, run id)`` the candidate is compared with; ``(None, None)`` when ``last`` finds none."""
    source = key_origin(cfg, "retrain.baseline")  # the --set that gave it, else the YAML file
    wanted = cfg.retrain.baseline
    if wanted == "last":
        db = Path(cfg.pipeline.root) / "metadata.sqlite"
        if not db.is_file():
            return None, None
        from edgepipe.pipeline.artifacts import Bundle
        from edgepipe.pipeline.metadata import MetadataStore

        store = MetadataStore(db)
        try:
            found = store.last_artifact(cfg.pipeline.name, Bundle.type_name)
        finally:
            store.close()
        if found is None:
            return None, None
        if not Bundle.is_bundle_dir(found["uri"]):
            raise ConfigError(f"{source}: config key 'retrain.baseline': the last bundle of pipeline "
                              f"'{cfg.pipeline.name}' ({found['uri']}, run {found['run_id']}) is gone from the root; "
                              "name a bundle directory instead")
        return str(Path(found["uri"]).resolve()), found["run_id"]
    from edgepipe.pipeline.artifacts import Bundle

    path = Path(wanted).expanduser()
    if not Bundle.is_bundle_dir(path):
        raise ConfigError(f"{source}: config key 'retrain.baseline': '{wanted}' is not an exported bundle directory "
                          "(no bundle.json with schema_version and task); use last, a bundle path or null")
    return str(path.resolve()), None


def retrain_stage(cfg: Config, plan: Plan, ctx: Context) -> None:
    """bless_model after evaluate (nothing when ``retrain.baseline`` is null)."""
    if cfg.retrain.baseline is None:
        return
    from edgepipe.components.evaluation.blessing import bless_model

    bundle, run = baseline_bundle(cfg)
    if bundle is not None:
        check_baseline(cfg, plan, ctx, bundle, run)
    inputs = {k: v for k, v in {"examples": ctx.examples, "transform": ctx.transform}.items() if v is not None}
    node = bless_model(evaluation=ctx.evaluation, baseline=bundle, baseline_run=run, task=plan.task.name,
                       max_regression=cfg.retrain.max_regression, primary=ctx.primary,
                       min_agreement=cfg.export.min_agreement, max_metric_drop=cfg.export.max_metric_drop, **inputs)
    ctx.nodes.append(node)
    ctx.blessing = node.outputs["blessing"]


def check_baseline(cfg: Config, plan: Plan, ctx: Context, bundle: str, run: str | None) -> None:
    """Refuse a baseline whose ``bundle.json`` alone shows it cannot be compared with this pipeline's candidate
    (exit 2, one line naming the key, the bundle and what differs). ``data.image`` is known only where the data
    stage's ingest reads images (its resolved parameters); the rest only the data can tell, at run time."""
    import json

    from edgepipe.components.evaluation.blessing import incomparable

    doc = json.loads((Path(bundle) / "bundle.json").read_text(encoding="utf-8"))
    image = next((n.component.resolved_params(n) for n in ctx.nodes if "image_size" in n.component.params), None)
    given = {"window.size": cfg.window.size, "data.feature_columns": cfg.data.feature_columns,
             "data.image": [*image["image_size"], image["channels"]] if image else None}
    found = incomparable(doc, plan.task, given)
    if found is None:
        return
    key, why = found
    origin = key_origin(cfg, key)
    if not origin.startswith("--set"):  # not given by a --set: the baseline's own --set, if that is where it came from
        origin = key_origin(cfg, "retrain.baseline")
    raise ConfigError(f"{origin}: config key '{key}': {why} (baseline bundle {bundle}{f', run {run}' if run else ''})")
