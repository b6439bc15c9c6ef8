"""The catalogue of deployable variants: which Keras model each is converted from, and how.

It sits beside the task registry, not in components/optimization, because the config validates against it and
the families declare their variant policy by it: neither may import the components.

One table instead of ad-hoc names in every component: the config lists variant names, the template builds only the
optimization nodes those variants need, ``convert_tflite`` converts each from its source model, and evaluation,
export and reports all speak the same names. No TensorFlow here (config validation imports it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from edgepipe.pipeline.contracts import VariantRow
from edgepipe.pipeline.errors import ConfigError


@dataclass(frozen=True)
class Variant:
    name: str
    source: str  # which model input of convert_tflite: float | qat | pruned | pqat | clustered | cqat
    mode: str  # tflite.convert mode
    description: str

    @property
    def calibrated(self) -> bool:
        """Needs int8 calibration inputs: full-integer conversion fixes activation ranges from representative
        inputs (and a distilled int8_qat trains on them); float32, float16 and dynamic (activations quantized at
        run time) need none, so a conversion of only those gathers none."""
        return self.mode == "int8"


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("float32", "float", "float32", "the Keras float model, converted as is"),
    Variant("float16", "float", "float16", "float16 weights, float compute"),
    Variant("dynamic", "float", "dynamic", "int8 weights, activations quantized at run time"),
    Variant("int8_ptq", "float", "int8", "full-integer, post-training quantized (calibrated)"),
    Variant("int8_qat", "qat", "int8", "full-integer from quantization-aware training"),
    Variant("pruned_int8", "pruned", "int8", "magnitude-pruned, post-training quantized"),
    Variant("pqat", "pqat", "int8", "pruned, then pruning-preserving QAT"),
    Variant("clustered", "clustered", "int8", "weight-clustered, post-training quantized"),
    Variant("cqat", "cqat", "int8", "weight-clustered, then cluster-preserving QAT"),
    # prune.policy: energy makes "pruned" energy-aware; this is the uniform baseline at the same global sparsity
    Variant("pruned_uniform_int8", "pruned_uniform", "int8", "uniformly magnitude-pruned, post-training quantized "
            "(the baseline energy-aware pruning is compared with)"),
)}
DEFAULT_VARIANTS = ["float32", "float16", "dynamic", "int8_ptq", "int8_qat", "pruned_int8", "pqat", "clustered",
                    "pruned_uniform_int8"]
# What each source needs enabled in the config (prune / qat / cluster sections).
NEEDS = {"float": (), "qat": ("qat",), "pruned": ("prune",), "pqat": ("prune", "qat"), "clustered": ("cluster",),
         "cqat": ("cluster", "qat"),
         "pruned_uniform": ("prune", "prune_energy")}  # prune_energy: prune.policy is energy
# The variants of a family with the "distilled" policy (models.registry): no training loss to prune, cluster or
# fine-tune on, so PTQ on the inputs the model really sees and QAT distilled from the float model's outputs.
DISTILLED = ("float32", "int8_ptq", "int8_qat")
# Preference when convert.primary is "auto": the most optimized int8 model the config produces.
AUTO_PRIMARY = ("pqat", "int8_qat", "pruned_int8", "int8_ptq")
# ... then every other int8 variant, in catalogue order: a list of only clustered/cqat ships one of them
AUTO_ORDER = AUTO_PRIMARY + tuple(n for n, v in VARIANTS.items() if v.mode == "int8" and n not in AUTO_PRIMARY)
STAGE_KEYS = {"prune": "prune.enabled", "qat": "qat.enabled", "cluster": "cluster.enabled",
              "prune_energy": "prune.policy: energy"}


def check_names(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown variant(s) {', '.join(unknown)} (allowed: {', '.join(VARIANTS)})")
    return names


def active_variants(names: list[str], enabled: dict[str, bool]) -> list[str]:
    """The requested variants whose optimizations are enabled (``float32`` always: it is the bundle's fallback)."""
    check_names(names)
    chosen = [n for n in names if all(enabled.get(section, False) for section in NEEDS[VARIANTS[n].source])]
    return chosen if "float32" in chosen else ["float32", *chosen]


def dropped_variants(names: list[str], enabled: dict[str, bool]) -> dict[str, str]:
    """``{variant: the config keys it needs that are off}`` for each listed variant ``active_variants`` leaves out
    because a stage (prune, qat, cluster) is disabled. Not pruned_uniform_int8 under ``prune.policy: uniform``: it
    is the energy policy's baseline, listed by default and made only under that policy by design."""
    out = {}
    for n in check_names(names):
        off = [s for s in NEEDS[VARIANTS[n].source] if not enabled.get(s, False)]
        if off and not (off == ["prune_energy"] and enabled.get("prune", False)):
            out[n] = " and ".join(STAGE_KEYS[s] for s in off)
    return out


def gated_primary(primary: str, rows: Sequence[VariantRow | Mapping[str, Any]]) -> tuple[str, str | None]:
    """The variant shipped as ``model.tflite`` once the export gate has judged every row, and why, if it is not the
    first choice. A named ``primary`` is kept as it is (the gate then refuses it if it fails). ``auto`` means "the
    smallest int8 variant that is verified": the first of AUTO_PRIMARY that passes the bounds, so a pruned
    variant whose decisions move away from the float model's is replaced by one that agrees, and the bundle
    says so (the ranking shown lists only the variants this run built); no bound is relaxed, and with none passing
    the first choice is returned for the gate to refuse, naming every one (``components/export/gate.py``).
    ``rows``: :class:`VariantRow` s (JSON objects as read are typed first)."""
    rows = [VariantRow.of(r) for r in rows]
    if any(r.fits is not None for r in rows):
        return _fitting_primary(primary, rows)
    if primary != "auto":
        return primary, None
    produced = [r.variant for r in rows]
    candidates = [n for n in AUTO_ORDER if n in produced]
    if not candidates:
        raise ConfigError(f"no int8 variant to ship as model.tflite (add one of {', '.join(AUTO_ORDER)})")
    by_name = {r.variant: r for r in rows}
    for name in candidates:
        if by_name[name].exported:
            failed = [f"'{c}' ({by_name[c].reason})" for c in candidates[:candidates.index(name)]]
            return name, (f"{', '.join(failed)} failed the export bounds; '{name}' is the first int8 variant "
                          f"(auto: {' > '.join(candidates)}) that passes") if failed else None
    return candidates[0], None


def _fitting_primary(primary: str, rows: list[VariantRow]) -> tuple[str, str | None]:
    """With a device target (rows carry ``fits``): a named primary must fit; ``auto`` ships the best-metric int8
    variant that fits and passes the bounds (ties: AUTO_PRIMARY order, then the catalogue's). No int8 variant
    fitting is a VerificationError (exit 4) with every variant's numbers."""
    from edgepipe.pipeline.errors import VerificationError

    int8 = [r for r in rows if r.variant in VARIANTS and VARIANTS[r.variant].mode == "int8"]
    fitting = [r for r in int8 if r.fits]
    why = "; ".join(f"{r.variant}: {', '.join(r.fit_reasons or [])}" for r in rows if r.fits is False)
    target = next((r.target for r in rows if r.target), "the target")
    if primary != "auto":
        row = next((r for r in int8 if r.variant == primary), None)
        if row is not None and row.fits is False:
            raise VerificationError(f"primary variant '{primary}' does not fit {target} "
                                    f"({', '.join(row.fit_reasons or [])}); nothing exported")
        return primary, None
    if not fitting:
        raise VerificationError(f"no int8 variant fits {target}: {why}; nothing exported")
    order = list(AUTO_PRIMARY) + [n for n in VARIANTS if n not in AUTO_PRIMARY]
    passing = [r for r in fitting if r.exported]
    best = sorted(passing or fitting, key=lambda r: (r.metric_drop if r.metric_drop is not None else float("inf"),
                                                     order.index(r.variant)))[0]
    return best.variant, (f"device target {target}: '{best.variant}' is the best-metric int8 variant that "
                          f"fits and passes the bounds" + (f" (not fitting: {why})" if why else "")
                          if passing else None)


def primary_variant(primary: str, active: list[str], dropped: dict[str, str] | None = None) -> str:
    """The variant shipped as ``model.tflite``: ``primary`` itself, or for ``auto`` the first of AUTO_ORDER.
    ``dropped``: :func:`dropped_variants`, named when nothing int8 is left because of them."""
    if primary == "auto":
        for name in AUTO_ORDER:
            if name in active:
                return name
        off = "; ".join(f"{n} is not built: {keys} is off" for n, keys in (dropped or {}).items()
                        if VARIANTS[n].mode == "int8")
        raise ConfigError("convert.variants has no int8 variant to ship as model.tflite "
                          + (f"({off})" if off else f"(add one of {', '.join(AUTO_ORDER)})"))
    check_names([primary])
    if VARIANTS[primary].mode != "int8":
        raise ConfigError(f"convert.primary '{primary}' is not a full-integer variant")
    if primary not in active:
        raise ConfigError(f"convert.primary '{primary}' is not produced (variants: {', '.join(active)}; "
                          f"it needs {' and '.join(NEEDS[VARIANTS[primary].source]) or 'nothing'} enabled)")
    return primary
