"""Device cost of the int8 model: the cost model's arena estimate against TFLite Micro's measured arena.

Builds the default pipeline's int8 model and the cnn digits model cheaply (few epochs, only the float32 and
int8_ptq variants, a temporary pipeline root), then for each: the cost model (components/optimization/cost.py:
MACs, weight bytes, arena estimate, energy per inference) and the TFLite Micro check (components/export/micro.py:
outputs against LiteRT's on random int8 inputs, the arena RecordingMicroAllocator recorded). Prints one JSON line:

    {"benchmark": "device", "default": {...}, "cnn": {...}, "arena_within_10pct": true}

Target (issue 16): the arena estimate within 10% of TFLM's measured allocation for both models.

``--pruning``: energy-aware against uniform pruning at the same global sparsity (``prune.policy: energy``, which
adds the uniform baseline ``pruned_uniform_int8``), per model, with the default memory assumption (weights in DRAM)
and on the Cortex-M4 target (weights in flash/SRAM): the estimated energy of each and the task metric from the
evaluation's variant table. Prints one JSON line ``{"benchmark": "device_pruning", ...}``. Target (issue 16):
energy-aware >= 25% below uniform at <= 1 point metric loss.

``--families [NAME ...]``: every model family of the registry whose variant policy makes int8 models ("full":
every int8 variant of the catalogue its shipped config enables; "distilled": int8_ptq and the distilled int8_qat;
None: float32 only, skipped with its float_reason) is built from ``configs/<family>.yaml`` through the normal
pipeline, cut after ``convert_tflite`` (1 epoch, optimization stages 1 epoch, the config's own architecture), and
each int8 ``.tflite`` runs under :func:`micro_check`. Prints one JSON line ``{"benchmark": "device_families",
"families": {family: {variant: {...}}}, "runs_on_tflm": "k of n", "blocked": {family/variant: op or error}}``
(progress, one line per family, on stderr). Target (issue 16): every int8 variant of every quantizable family runs
on TFLite Micro with outputs equal to LiteRT's, or is listed with the op that prevents it.

Usage: python benchmarks/device.py [--epochs 2] [--examples 32] [--pruning [--sparsity 0.5] [--root DIR]]
       python benchmarks/device.py --families [NAME ...] [--examples 16] [--root DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import edgepipe  # noqa: E402,F401

CONFIGS = {"default": "configs/default.yaml", "cnn": "configs/cnn.yaml"}
# only what the int8_ptq variant needs: the optional fine-tuning stages off where the config has them
EXTRA = {"default": ["prune.enabled=false", "qat.enabled=false", "cluster.enabled=false"], "cnn": []}


def build_int8(config: str, root: str, epochs: int, extra: list[str]) -> bytes:
    """The int8_ptq ``.tflite`` of ``config`` trained ``epochs`` epochs in ``root`` (variants float32 + int8_ptq)."""
    from edgepipe.pipeline.config import load_config
    from edgepipe.pipeline.runner import LocalRunner
    from edgepipe.pipeline.templates import build_pipeline

    overrides = [f"pipeline.root={root}", f"training.epochs={epochs}", "convert.variants=[float32,int8_ptq]",
                 *extra]
    cfg = load_config(config, overrides)
    result = LocalRunner(root).run(build_pipeline(cfg), cfg.model_dump(mode="json"))
    found = sorted(glob.glob(os.path.join(root, "artifacts", "convert_tflite", "*", "tflite", "int8_ptq.tflite")))
    if not found:
        raise RuntimeError(f"{config}: no int8_ptq.tflite ({result.error!r})")
    return open(found[-1], "rb").read()


def measure(content: bytes, examples: int) -> dict:
    from edgepipe.components.export.micro import micro_check
    from edgepipe.components.optimization.cost import model_cost
    from edgepipe.runtime.litert import ModelRunner

    cost = model_cost(content)
    rng = np.random.default_rng(0)
    # quantized inputs: random over the whole int8 range; an integer input that is not quantized is an index (the
    # cGAN's class label, >= 2 classes by the family's contract): 0 and 1 alternating; a float input: zeros
    inputs = [rng.integers(np.iinfo(s.dtype).min, np.iinfo(s.dtype).max + 1, size=(examples, *s.shape[1:]))
              .astype(s.dtype) if s.quantized else
              np.broadcast_to((np.arange(examples) % 2).reshape(-1, *[1] * (len(s.shape) - 1)),
                              (examples, *s.shape[1:])).astype(s.dtype) if np.issubdtype(s.dtype, np.integer)
              else np.zeros((examples, *s.shape[1:]), s.dtype) for s in ModelRunner(content).inputs]
    check = micro_check(content, inputs)
    return {"model_bytes": len(content), "ops": cost["ops"], "macs": cost["macs"],
            "weight_bytes": cost["weight_bytes"], "activation_peak_bytes": cost["activation_peak_bytes"],
            "arena_estimate_bytes": cost["arena_bytes"], "arena_tflm_bytes": check.get("arena_bytes"),
            "arena_tflm_head_bytes": check.get("arena_head_bytes"),
            "arena_tflm_tail_bytes": check.get("arena_tail_bytes"),
            "arena_estimate_error": check.get("arena_estimate_error"), "energy_uj": cost["energy_uj"],
            "energy_uj_weights_in_sram": model_cost(content, memory={"weights": "sram"})["energy_uj"],
            "tflm_ok": check["ok"], "tflm_examples": check.get("examples"),
            "tflm_max_abs_diff_lsb": check.get("max_abs_diff_lsb"), "tflm_exact_fraction": check.get("exact"),
            "tflm_vs_litert_reference_lsb": check.get("reference_max_abs_diff_lsb"),
            "tflm_first_divergence": check.get("first_divergence"),
            "missing_ops": check["missing_ops"], **({"error": check["error"]} if "error" in check else {})}


def pruning_rows(config: str, root: str, epochs: int, overrides: list[str]) -> dict[str, dict]:
    """The evaluation's variant rows (pruned_int8 = energy-aware, pruned_uniform_int8) of one run."""
    from edgepipe.pipeline.config import load_config
    from edgepipe.pipeline.runner import LocalRunner
    from edgepipe.pipeline.templates import build_pipeline

    cfg = load_config(config, [f"pipeline.root={root}", f"training.epochs={epochs}", "prune.policy=energy",
                               "convert.variants=[float32,pruned_int8,pruned_uniform_int8]", *overrides])
    LocalRunner(root).run(build_pipeline(cfg), cfg.model_dump(mode="json"))
    found = sorted(glob.glob(os.path.join(root, "artifacts", "evaluate", "*", "evaluation", "variants.json")),
                   key=os.path.getmtime)
    if not found:
        raise RuntimeError(f"{config}: no evaluation")
    return {r["variant"]: r for r in json.load(open(found[-1]))}


def compare_pruning(config: str, epochs: int, sparsity: float, extra: list[str], keep: str | None = None) -> dict:
    out = {}
    with (contextlib.nullcontext(keep) if keep else tempfile.TemporaryDirectory()) as root, \
            contextlib.redirect_stdout(sys.stderr):
        for label, target in (("weights_dram", []), ("cortex_m4", ["target.profile=cortex_m4"])):
            rows = pruning_rows(config, root, epochs, [f"prune.target_sparsity={sparsity}", *extra, *target])
            energy, uniform = rows["pruned_int8"], rows["pruned_uniform_int8"]
            out[label] = {
                "metric_name": energy.get("metric_name"), "keras_metric": rows["keras"].get("metric"),
                "energy_aware": {k: energy.get(k) for k in ("energy_uj", "metric", "sparsity", "agreement")},
                "uniform": {k: uniform.get(k) for k in ("energy_uj", "metric", "sparsity", "agreement")},
                "energy_reduction_vs_uniform": round(1 - energy["energy_uj"] / uniform["energy_uj"], 4),
                "metric_loss_vs_uniform": None if energy.get("metric") is None or uniform.get("metric") is None
                else round(uniform["metric"] - energy["metric"], 4)}
    return out


def main_pruning(args) -> None:
    out: dict = {"benchmark": "device_pruning", "epochs": args.epochs, "sparsity": args.sparsity}
    for name in args.models:
        started = time.perf_counter()
        extra = EXTRA_PRUNING[name]
        keep = os.path.join(args.root, name) if args.root else None  # a kept root: reruns reuse training
        out[name] = {**compare_pruning(CONFIGS[name], args.epochs, args.sparsity, extra, keep),
                     "build_s": round(time.perf_counter() - started, 1)}
    # metric loss in points of a 0-1 metric (F1, accuracy)
    out["target_met"] = {f"{n}/{m}": out[n][m]["energy_reduction_vs_uniform"] >= 0.25
                         and (out[n][m]["metric_loss_vs_uniform"] or 0) <= 0.01
                         for n in args.models for m in ("weights_dram", "cortex_m4")}
    print(json.dumps(out))


EXTRA_PRUNING = {"default": ["qat.enabled=false", "cluster.enabled=false"], "cnn": []}

# --families: the cheapest run each config allows; a key is set only where the family's pipeline reads it
CHEAP = {"training.epochs": 1, "training.fine_tune_epochs": 0, "prune.epochs": 1, "qat.epochs": 1,
         "cluster.epochs": 1, "training.time_budget_s": 120}
# model.hparams that size a training loop rather than the model (the DQN's), set only where the config has them
CHEAP_HPARAMS = {"num_iterations": 300, "eval_interval": 150, "eval_episodes": 2, "epsilon_decay_steps": 150}


def int8_variants(policy: str | None, enabled: dict[str, bool]) -> list[str]:
    """The catalogue's int8 variants a family with variant ``policy`` can have under a config's ``enabled``."""
    from edgepipe.tasks.variants import DISTILLED, VARIANTS, active_variants

    if policy is None:
        return []
    names = [n for n, v in VARIANTS.items() if v.mode == "int8" and (policy == "full" or n in DISTILLED)]
    return [n for n in active_variants(names, enabled) if n != "float32"]


def family_config(name: str, root: str, overrides: list[str]):
    """``configs/<name>.yaml`` made cheap (CHEAP / CHEAP_HPARAMS where read) with ``overrides``; its int8 variants."""
    from edgepipe.models.registry import family
    from edgepipe.pipeline.config import load_config
    from edgepipe.pipeline.templates import uses

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", f"{name}.yaml")
    base = [f"pipeline.root={root}", *overrides]
    cfg = load_config(path, base)
    read = uses(cfg)
    cheap = [f"{k}={v}" for k, v in CHEAP.items() if k in read or f"{k.split('.')[0]}.*" in read]
    if "model.hparams" in read:
        cheap += [f"model.hparams.{k}={v}" for k, v in CHEAP_HPARAMS.items() if k in cfg.model.hparams]
    variants = int8_variants(family(name).variants, cfg.enabled())
    cfg = load_config(path, [*base, *cheap, f"convert.variants=[float32,{','.join(variants)}]"])
    return cfg, variants


def build_variants(name: str, root: str, overrides: list[str]) -> tuple[dict[str, bytes], list[str]]:
    """``{variant: .tflite bytes}`` of family ``name``'s int8 variants: its pipeline run up to convert_tflite."""
    from edgepipe.pipeline.dag import Pipeline
    from edgepipe.pipeline.runner import LocalRunner
    from edgepipe.pipeline.templates import build_pipeline

    cfg, variants = family_config(name, root, overrides)
    full = build_pipeline(cfg)
    cut = next(i for i, node in enumerate(full.nodes) if node.name.startswith("convert_tflite"))
    result = LocalRunner(root).run(Pipeline(full.name, full.nodes[:cut + 1]), cfg.model_dump(mode="json"))
    found = {}
    for variant in variants:
        paths = sorted(glob.glob(os.path.join(root, "artifacts", "convert_tflite", "*", "tflite", f"{variant}.tflite")),
                       key=os.path.getmtime)
        if paths:
            found[variant] = open(paths[-1], "rb").read()
    if not found:
        raise RuntimeError(f"{name}: no int8 .tflite ({getattr(result, 'error', None)!r})")
    return found, variants


def micro_row(content: bytes, examples: int) -> dict:
    """micro_check of one int8 variant on random int8 inputs (every model input), trimmed to the table's columns."""
    row = measure(content, examples)
    keys = ("model_bytes", "ops", "tflm_ok", "tflm_max_abs_diff_lsb", "tflm_vs_litert_reference_lsb",
            "arena_estimate_bytes", "arena_tflm_bytes", "arena_estimate_error", "missing_ops", "error",
            "tflm_first_divergence")
    return {k: row[k] for k in keys if row.get(k) is not None}


def blocked_by(row: dict) -> str:
    """Why a variant does not run on TFLM as LiteRT does: the missing op(s), the interpreter's error, or the first
    op whose output differs from LiteRT's reference kernels."""
    if row.get("missing_ops"):
        return f"missing {', '.join(row['missing_ops'])}"
    if row.get("error"):
        return row["error"]
    first = row.get("tflm_first_divergence") or {}
    return (f"{first.get('op', 'an op')} rounds differently (first divergence, {first.get('max_abs_diff_lsb')} LSB "
            f"there; {row.get('tflm_vs_litert_reference_lsb')} LSB at the output vs LiteRT's reference kernels)")


def main_families(args) -> None:
    from edgepipe.models.registry import families

    out: dict = {"benchmark": "device_families", "examples": args.examples, "families": {}, "skipped": {}}
    chosen = args.families or list(families())
    for name, fam in families().items():
        if name not in chosen:
            continue
        if fam.variants is None:
            out["skipped"][name] = f"float32 only: {fam.float_reason}"
            continue
        started = time.perf_counter()
        keep = os.path.join(args.root, name) if args.root else None
        try:
            with (contextlib.nullcontext(keep) if keep else tempfile.TemporaryDirectory()) as root, \
                    contextlib.redirect_stdout(sys.stderr):
                built, variants = build_variants(name, root, args.set)
            rows = {v: micro_row(built[v], args.examples) if v in built else {"tflm_ok": False,
                                                                             "error": "not converted"}
                    for v in variants}
        except Exception as err:  # noqa: BLE001 -- a family that fails to build is a row, not the end of the run
            rows = {"*": {"tflm_ok": False, "error": f"build: {type(err).__name__}: {str(err).splitlines()[0]}"}}
        out["families"][name] = {"policy": fam.variants, "build_s": round(time.perf_counter() - started, 1),
                                 "variants": rows}
        print(json.dumps({name: out["families"][name]}), file=sys.stderr, flush=True)
    cells = [(f, v, r) for f, fam in out["families"].items() for v, r in fam["variants"].items()]
    out["runs_on_tflm"] = f"{sum(r['tflm_ok'] for _, _, r in cells)} of {len(cells)}"
    out["blocked"] = {f"{f}/{v}": blocked_by(r) for f, v, r in cells if not r["tflm_ok"]}
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--models", nargs="+", default=list(CONFIGS))
    parser.add_argument("--pruning", action="store_true", help="energy-aware vs uniform pruning instead")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--root", help="--pruning/--families: keep the pipeline roots here (a rerun reuses them)")
    parser.add_argument("--families", nargs="*", help="every int8 variant of every quantizable family (or these)")
    parser.add_argument("--set", nargs="*", default=[], help="--families: extra config overrides for every family")
    args = parser.parse_args()
    if args.pruning:
        return main_pruning(args)
    if args.families is not None:
        return main_families(args)
    out: dict = {"benchmark": "device", "epochs": args.epochs}
    for name in args.models:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as root, contextlib.redirect_stdout(sys.stderr):  # Keras progress
            content = build_int8(CONFIGS[name], root, args.epochs, EXTRA[name])
        out[name] = {**measure(content, args.examples), "build_s": round(time.perf_counter() - started, 1)}
    errors = [out[n].get("arena_estimate_error") for n in args.models]
    out["arena_within_10pct"] = all(e is not None and abs(e) <= 0.10 for e in errors)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
