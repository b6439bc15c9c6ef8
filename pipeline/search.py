"""Budget search: Optuna trials over a small declared space, each trial the normal pipeline on its overrides.

Why a driver and not a component: a trial is a whole pipeline (train, variants, evaluate, export), so the search
sits above the runner, like the CLI. Every trial is built by the one builder (``templates.build_pipeline``) from
the user's config plus the trial's overrides and run by the normal runner on the same pipeline root, so sub-steps
that do not depend on the trial's values (ingest, statistics, normalize; windows for the same size) are cache
hits, and a repeated trial costs nothing.

The space is data (:data:`DIMENSIONS`: a dimension name -> how a chosen value rewrites the config), never a
branch per dimension in the driver; ``search.space`` maps dimension names to the choices to try.

Objective: the metric of the trial's int8 variant (the one ``quantization`` picks) with its cost under the device
target (flash = the ``.tflite`` size, arena, latency and energy estimates; ``targets.fit``). A trial is feasible
when that variant fits the target and passes the export gate. Sampler: Optuna's TPE, seeded, single objective
(the metric) with the fit as a constraint (``constraints_func``). Why TPE and not NSGA-II: a search here has a
handful to a few dozen trials, each minutes of training, and NSGA-II needs generations of a population (50 by
default) before it moves; TPE uses every finished trial from the ~10th on. The Pareto front (metric against
flash, arena, latency, energy) is computed afterwards over all trials with a metric, for the report.
"""
from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgepipe.pipeline.errors import ConfigError, EdgepipeError, VerificationError

OBJECTIVES = (("metric", "max"), ("flash_bytes", "min"), ("arena_bytes", "min"), ("latency_ms", "min"),
              ("energy_uj", "min"))


@dataclass(frozen=True)
class Dimension:
    keys: tuple[str, ...]  # the config keys it sets
    apply: Callable[[dict[str, Any], Any], None]  # (raw config, chosen value): rewrite the raw config in place
    doc: str
    valid: Callable[[Any], bool]  # a choice it can apply: checked when the config loads, not per trial
    expects: str  # what ``valid`` accepts, for the error

    def refusal(self, name: str, choices: list[Any]) -> str | None:
        """Why ``search.space.<name>``'s choices cannot be tried (one line naming the bad values), or None."""
        bad = [v for v in choices if not self.valid(v)]
        if not bad:
            return None
        expects = self.expects.format(int8=_int8_names()) if "{int8}" in self.expects else self.expects
        return (f"search.space.{name}: {', '.join(repr(v) for v in bad)} {'is' if len(bad) == 1 else 'are'} "
                f"not {expects}")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _count(v: Any) -> bool:  # a whole number >= 1 (2.0 is 2)
    return _number(v) and v >= 1 and float(v).is_integer()


def _int8_variant(v: Any) -> bool:
    from edgepipe.tasks.variants import VARIANTS  # TensorFlow-free catalogue

    return isinstance(v, str) and v in VARIANTS and VARIANTS[v].mode == "int8"


def _int8_names() -> str:
    from edgepipe.tasks.variants import VARIANTS

    return ", ".join(n for n, v in VARIANTS.items() if v.mode == "int8")


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return raw.setdefault(name, {})


def _filters(raw: dict[str, Any]) -> list[int]:
    from edgepipe.pipeline.config import ModelSection

    return list(_section(raw, "model").get("filters") or ModelSection().filters)


def _depth(raw: dict[str, Any], depth: int) -> None:
    filters = _filters(raw)
    while len(filters) < depth:  # deeper: each extra layer half the last one's filters
        filters.append(max(1, filters[-1] // 2))
    _section(raw, "model")["filters"] = filters[:int(depth)]


def _width(raw: dict[str, Any], width: float) -> None:
    _section(raw, "model")["filters"] = [max(1, round(f * float(width))) for f in _filters(raw)]


def _quantization(raw: dict[str, Any], variant: str) -> None:
    """Only this int8 variant (and float32, the reference the variant table compares with) is made and shipped."""
    _section(raw, "convert").update(variants=["float32", variant], primary=variant)


# Applied in this order (depth before width: width scales the filters depth chose).
DIMENSIONS: dict[str, Dimension] = {
    "depth": Dimension(("model.filters",), _depth, "encoder convolutions (extra ones halve the last filters)",
                       _count, "a whole number >= 1"),
    "width": Dimension(("model.filters",), _width, "multiplier of every layer's filters",
                       lambda v: _number(v) and v > 0, "a number > 0"),
    "window": Dimension(("window.size",), lambda raw, v: _section(raw, "window").update(size=int(v)),
                        "window size in steps (the input resolution)", _count, "a whole number >= 1"),
    "sparsity": Dimension(("prune.target_sparsity",),
                          lambda raw, v: _section(raw, "prune").update(target_sparsity=float(v)),
                          "pruning's global target sparsity (pruned variants)",
                          lambda v: _number(v) and 0 < v < 1, "a number between 0 and 1 (exclusive)"),
    "quantization": Dimension(("convert.variants", "convert.primary"), _quantization,
                              "the int8 variant made and shipped (int8_ptq, int8_qat, pruned_int8, pqat ...)",
                              _int8_variant, "an int8 variant (one of {int8})"),
}


def trial_config(base: dict[str, Any], params: dict[str, Any], source: str, root: str):
    """The trial's validated Config: the user's explicitly given keys, the trial's values, no ``search`` section."""
    from edgepipe.pipeline.config import validate

    raw = copy.deepcopy(base)
    raw.pop("search", None)
    for name, dimension in DIMENSIONS.items():
        if name in params:
            dimension.apply(raw, params[name])
    config = validate(raw, source=f"{source} (search trial {params})")
    config.pipeline.root = root
    return config


def _node(pipeline, output: str) -> str | None:
    return next((n.name for n in reversed(pipeline.nodes) if output in n.component.outputs), None)


def measure(config, pipeline, result) -> dict[str, Any]:
    """A finished (or export-refused) trial run -> its metric and cost: the shipped int8 variant's row of the
    evaluation's variant table, gated the way the export gates it, with the target's latency estimate."""
    from edgepipe.components.evaluation.variants import gate

    evaluation, convert = _node(pipeline, "evaluation"), _node(pipeline, "tflite")
    if evaluation not in result.nodes:
        return {"error": str(result.error or "no evaluation")}
    rows = gate(result.artifact(evaluation, "evaluation").variant_rows() or [], config.export.min_agreement,
                config.export.max_metric_drop)
    variant = config.convert.primary
    if variant == "auto":  # no quantization dimension: the variant the export gate picks among those produced
        from edgepipe.tasks.variants import gated_primary

        try:
            variant = gated_primary(variant, rows)[0]
        except EdgepipeError as err:  # nothing fits / no int8 variant: the export refused this trial
            return {"error": str(err)}
    row = next((r for r in rows if r.variant == variant), None)
    if row is None:
        return {"error": f"variant {variant} not in the variant table"}
    index = result.artifact(convert, "tflite").read_json("variants.json") if convert in result.nodes else {}
    fit = (index.get(variant) or {}).get("target") or {}
    cost = (index.get(variant) or {}).get("cost") or {}
    latency = fit.get("latency_ms")
    if latency is None and cost.get("macs") is not None:  # no target: the custom target's default MAC rate
        latency = round(1000.0 * (cost["macs"] + (cost.get("elementwise_ops") or 0)) / 100e6, 6)
    fits = row.fits is not False
    reasons = list(row.fit_reasons or []) + ([row.reason] if row.reason else [])
    return {"variant": variant, "metric_name": row.metric_name, "metric": row.metric,
            "keras_metric": next((r.metric for r in rows if r.reference), None),
            "flash_bytes": row.size_bytes, "arena_bytes": row.arena_bytes, "latency_ms": latency,
            "energy_uj": row.energy_uj, "fits": fits, "exported": row.exported,
            "feasible": fits and bool(row.exported) and row.metric is not None,
            "reasons": reasons}


def pareto(trials: list[dict[str, Any]]) -> None:
    """Mark each trial ``pareto``: no other trial is at least as good on every objective and better on one. A
    repeat (``repeat_of``: the same parameters as an earlier trial) is that trial's point, never a second one."""
    scored = [t for t in trials if t.get("metric") is not None and "repeat_of" not in t
              and all(t.get(k) is not None for k, _ in OBJECTIVES)]

    def key(t: dict[str, Any]) -> tuple[float, ...]:
        return tuple(t[k] if sense == "min" else -t[k] for k, sense in OBJECTIVES)

    for t in trials:
        t["pareto"] = False
    for t in scored:
        mine = key(t)
        t["pareto"] = not any(all(a <= b for a, b in zip(key(o), mine)) and key(o) != mine for o in scored)


def best(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The feasible trial with the best metric (ties: the smaller flash, then the earlier trial)."""
    feasible = [t for t in trials if t.get("feasible") and "repeat_of" not in t]
    return min(feasible, key=lambda t: (-t["metric"], t.get("flash_bytes") or 0, t["number"]), default=None)


class _TrialNotices:
    """``stop_on_ctrl_c``'s printer for a whole search: each trial has its own progress printer (the runner's)."""

    def __init__(self, runner):
        self.runner = runner

    def notice(self, text: str) -> None:
        printer = getattr(self.runner, "progress", None)
        if hasattr(printer, "notice"):
            printer.notice(text)
        else:
            print(text, file=sys.stderr, flush=True)


def run_search(config, runner, on_trial: Callable[[dict[str, Any]], None] = lambda t: None,
               progress_for: Callable[[Any], Any] | None = None):
    """Run ``config.search.trials`` trials; returns (the search record, the best trial's Config).
    Raises VerificationError (exit 4) with the trials' numbers when no trial fits the target."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("search.trials needs Optuna: pip install 'edgepipe[search]'") from None
    from edgepipe.pipeline.display import stop_on_ctrl_c
    from edgepipe.pipeline.templates import build_pipeline

    s = config.search
    base = config.model_dump(mode="json", exclude_unset=True)
    source, root = getattr(config, "_source", "config"), config.pipeline.root
    space = {name: list(choices) for name, choices in s.space.items()}
    trials: list[dict[str, Any]] = []
    runs: dict[int, Any] = {}  # trial number -> its Config
    stopped: list[BaseException] = []  # the stop (Ctrl-C, SIGTERM) that ended a trial's run: no further trial

    def objective(trial: "optuna.Trial") -> float:
        params = {name: trial.suggest_categorical(name, choices) for name, choices in space.items()}
        record: dict[str, Any] = {"number": trial.number, "params": params}
        earlier = next((t for t in trials if t["params"] == params and "repeat_of" not in t), None)
        if earlier is not None:  # TPE may propose a combination again: the same run, so its result, not run again
            record.update({k: v for k, v in earlier.items() if k not in ("number", "params", "pareto", "best")},
                          repeat_of=earlier["number"])
            trials.append(record)
            trial.set_user_attr("constraint", [0.0 if record["feasible"] else 1.0])
            on_trial(record)
            return float(record.get("metric") or 0.0)
        try:
            trial_cfg = trial_config(base, params, source, root)
            pipeline = build_pipeline(trial_cfg)
        except ConfigError as err:  # e.g. a window not divisible by 2**depth: this combination cannot be built
            record.update(error=str(err), feasible=False)
        else:
            if progress_for is not None:
                runner.progress = progress_for(pipeline)
            try:
                result = runner.run(pipeline, trial_cfg.model_dump(mode="json"))
            except KeyboardInterrupt as stop:  # the run ended `interrupted`: stop the study, re-raised after it
                stopped.append(stop)
                trial.set_user_attr("constraint", [1.0])
                trial.study.stop()
                return 0.0
            code = getattr(result.error, "exit_code", 0)
            if runner.stop_requested or code not in (0, 1, VerificationError.exit_code):
                raise result.error or KeyboardInterrupt()  # bad data, storage, a stop: no other trial would do better
            record.update(run_id=result.run_id, **measure(trial_cfg, pipeline, result))
            if code:  # a component failed or the export refused: recorded, the search goes on
                record.update(error=str(result.error), feasible=False)
            runs[trial.number] = trial_cfg
        record.setdefault("feasible", False)
        trials.append(record)
        trial.set_user_attr("constraint", [0.0 if record["feasible"] else 1.0])
        on_trial(record)
        return float(record.get("metric") or 0.0)

    # ERROR: Optuna logs a trial's exception as a WARNING with its traceback; edgepipe reports it as one line
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # TPE's default 10 random start-up trials would be the whole of a small search: a third of them, 2 to 10
    sampler = optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=max(2, min(10, s.trials // 3)),
                                         multivariate=True, constraints_func=lambda t: t.user_attrs["constraint"])
    study = optuna.create_study(direction="maximize", sampler=sampler)
    # the final run's stop handling for every trial: first Ctrl-C/SIGTERM stops after the current step, one line
    with stop_on_ctrl_c(runner, _TrialNotices(runner)):
        study.optimize(objective, n_trials=s.trials, catch=())
    if stopped:
        raise stopped[0]
    pareto(trials)
    chosen = best(trials)
    target = config.target.resolved()
    record = {"trials": trials, "space": space, "sampler": f"TPE (seed {s.seed}, constraint: fits the target)",
              "target": target, "best": chosen["number"] if chosen else None, "objectives": dict(OBJECTIVES)}
    if chosen is None:
        raise VerificationError(
            f"search: none of {len(trials)} trials "
            + (f"fits the target {target.get('name')}: " if target else "passes the export gate: ")
            + "; ".join(f"trial {t['number']} {t['params']}: {', '.join(t.get('reasons') or [t.get('error', '?')])}"
                        for t in trials))
    for t in trials:
        t["best"] = t["number"] == chosen["number"]
    return record, runs[chosen["number"]]


def final_pipeline(config, record: dict[str, Any]):
    """The best trial's pipeline again (every node a cache hit) with ``record_search`` feeding the report, so the
    run that exports also holds ``search.json`` and draws the Pareto front; export and report re-run only."""
    from edgepipe.components.optimization.search import record_search
    from edgepipe.pipeline.dag import Pipeline
    from edgepipe.pipeline.templates import plan_stages, resolve
    from edgepipe.pipeline.templates.deploy import report_stage
    from edgepipe.pipeline.templates.stages import Context

    plan = resolve(config)
    ctx = Context()
    for stage in plan_stages(plan)[0]:
        if stage is report_stage:
            node = record_search(record=record)
            ctx.nodes.append(node)
            ctx.search = node.outputs["search"]
        stage(config, plan, ctx)
    return Pipeline(config.pipeline.name, ctx.nodes)


def cmd_search(args, config, pipeline_ref: str | None, log_file: Path | None) -> int:
    """``edgepipe run`` with ``search.trials`` > 0: the trials, then the best trial's run with the search recorded
    and its bundle copied to ``--output`` (the CLI's own summary and copy)."""
    from edgepipe.pipeline import cli
    from edgepipe.pipeline.display import ProgressPrinter, number
    from edgepipe.pipeline.runner import LocalRunner

    if pipeline_ref:
        raise ConfigError("search.trials: the budget search varies the built-in templates' keys; it cannot run "
                          f"your pipeline {pipeline_ref}")
    root = Path(config.pipeline.root)
    runner = LocalRunner(root, use_cache=not args.no_cache, max_workers=config.pipeline.max_workers)
    print(f"edgepipe: budget search, {config.search.trials} trials over {', '.join(config.search.space)}, "
          f"root {root}", flush=True)

    def each(t: dict[str, Any]) -> None:
        cost = (f"{t.get('metric_name') or 'metric'} {number(t.get('metric'))}, flash {t.get('flash_bytes')} B, "
                f"arena {t.get('arena_bytes')} B" if "metric" in t else t.get("error", ""))
        why = "" if t["feasible"] else f"  (not feasible: {'; '.join(t.get('reasons') or [t.get('error', '?')])})"
        again = f" (repeat of trial {t['repeat_of']}, not run again)" if "repeat_of" in t else ""
        print(f"search trial {t['number']} {t['params']}{again}: {cost}{why}", flush=True)

    record, best_cfg = run_search(config, runner, each, lambda p: ProgressPrinter(len(p.nodes)))
    pipeline = final_pipeline(best_cfg, record)
    best = next(t for t in record["trials"] if t["best"])
    print(f"search: best under the budget is trial {best['number']} {best['params']}; "
          f"{sum(t['pareto'] for t in record['trials'])} trials on the Pareto front", flush=True)
    return cli._run_pipeline(args, best_cfg, pipeline, root, log_file)


__all__ = ["DIMENSIONS", "Dimension", "best", "cmd_search", "final_pipeline", "measure", "pareto", "run_search",
           "trial_config"]
