"""Device targets: named profiles of what a device offers, and whether each variant fits one.

A profile is data, not code: flash and RAM for the model, whether the device computes in int8 only, which op set
its interpreter registers (TFLite Micro's, or every LiteRT builtin), a sustained int8 MAC rate for a latency
estimate, the memory the weights are read from and an energy table for the cost model (``cost.py``), and optional
budgets (latency, energy per inference). The config's ``target`` section names a profile and/or overrides any of
its numbers (``flash_kb``, ``ram_kb``, ``latency_ms``, ``energy_uj`` ...): a custom device is a profile with all
numbers given. Add a profile by adding an entry to :data:`PROFILES`.

:func:`fit` judges one variant (``convert_tflite``'s ``variants.json`` entry with its cost under the target's
table and memory): flash = the ``.tflite`` size (TFLM reads the flatbuffer in place from flash), RAM = the arena
(``arena_bytes``: the planned activations + TFLM's bookkeeping), int8 only = a full-integer variant with no op left
in float, op set = every op registered (and, for TFLite Micro, none of the inputs its kernels refuse:
:func:`tflm_limits`), latency = dense MACs and elementwise ops / MAC rate (TFLite kernels do not
skip zero weights), energy = the cost model's estimate. Each failed check is one reason with its numbers.

Numbers are class figures from vendor datasheets, not a specific board: Cortex-M4 (STM32F407: 1 MB flash, 192 KB
SRAM, 168 MHz; CMSIS-NN int8 ~0.6 MAC/cycle), Cortex-M7 (STM32H743: 2 MB flash, 1 MB SRAM, 480 MHz with an FPU;
~1 MAC/cycle), a Linux arm64 board (Raspberry Pi 4 class: 4x Cortex-A72 1.5 GHz, XNNPACK NEON, weights in DRAM).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edgepipe.pipeline.errors import ConfigError


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    flash_kb: float | None  # model storage (None: no limit)
    ram_kb: float | None  # RAM for the tensor arena (None: no limit)
    int8_only: bool  # no float compute (an MCU without an FPU, or the int8 kernels only)
    op_set: str  # "tflm": TFLite Micro's op resolver; "litert": every LiteRT builtin
    macs_per_second: float  # sustained int8 MACs per second, for the latency estimate
    memory: dict[str, str] = field(default_factory=lambda: {"weights": "sram", "activations": "sram"})
    energy_table: dict[str, float] = field(default_factory=dict)  # overrides of cost.ENERGY_45NM, pJ
    latency_ms: float | None = None  # budgets per inference (None: not checked)
    energy_uj: float | None = None


PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("cortex_m4", "Cortex-M4F MCU class (STM32F407: 1 MB flash, 192 KB SRAM, 168 MHz), TFLite Micro, int8",
            flash_kb=1024, ram_kb=192, int8_only=True, op_set="tflm", macs_per_second=100e6),
    Profile("cortex_m7", "Cortex-M7 MCU class (STM32H743: 2 MB flash, 1 MB SRAM, 480 MHz, FPU), TFLite Micro",
            flash_kb=2048, ram_kb=1024, int8_only=False, op_set="tflm", macs_per_second=480e6),
    Profile("linux_arm64", "Linux arm64 board (Raspberry Pi 4 class: 4x Cortex-A72, 1 GB+), LiteRT + XNNPACK",
            flash_kb=None, ram_kb=512 * 1024, int8_only=False, op_set="litert", macs_per_second=10e9,
            memory={"weights": "dram", "activations": "sram"}),
)}
OVERRIDES = ("flash_kb", "ram_kb", "int8_only", "op_set", "macs_per_second", "memory", "energy_table", "latency_ms",
             "energy_uj")
OP_SETS = ("tflm", "litert")


def resolve(profile: str | None = None, **overrides: Any) -> dict[str, Any] | None:
    """The target as plain data (what ``convert_tflite`` receives): the named profile with ``overrides`` (None
    values ignored) applied, or a custom target from the numbers alone; None when neither is given."""
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(OVERRIDES))
    if unknown:
        raise ConfigError(f"target: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(OVERRIDES)})")
    if profile is None and not given:
        return None
    if profile is not None and profile not in PROFILES:
        raise ConfigError(f"target.profile '{profile}' is not a known device (known: {', '.join(PROFILES)})")
    base = asdict(PROFILES[profile]) if profile else {
        "name": "custom", "description": "custom device numbers", "flash_kb": None, "ram_kb": None,
        "int8_only": False, "op_set": "litert", "macs_per_second": 100e6, "memory": {"weights": "sram",
                                                                                     "activations": "sram"},
        "energy_table": {}, "latency_ms": None, "energy_uj": None}
    if given and profile:
        base["name"] = f"{profile} (custom)"
    for key in ("memory", "energy_table"):
        base[key] = {**base[key], **given.pop(key, {})}
    base.update(given)
    from edgepipe.components.optimization.cost import ENERGY_45NM

    table = {**ENERGY_45NM, **base["energy_table"]}
    bad = sorted(k for k in base["energy_table"] if k not in ENERGY_45NM and not k.endswith("_read_32bit"))
    if bad:
        raise ConfigError(f"target.energy_table: unknown key(s) {', '.join(bad)} (allowed: {', '.join(ENERGY_45NM)}"
                          ", or <memory>_read_32bit)")
    for key, price in base["energy_table"].items():
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not price > 0:
            raise ConfigError(f"target.energy_table.{key}: {price!r} is not a price in pJ > 0")
    unpriced = sorted({m for m in base["memory"].values() if f"{m}_read_32bit" not in table})
    if unpriced:
        raise ConfigError(f"target.memory names {', '.join(unpriced)} but target.energy_table has no "
                          f"{', '.join(m + '_read_32bit' for m in unpriced)}")
    if base["op_set"] not in OP_SETS:
        raise ConfigError(f"target.op_set '{base['op_set']}' is not one of {', '.join(OP_SETS)}")
    return base


def _kb(n: float) -> str:
    return f"{n / 1024:.1f} KB"


def tflm_limits(content: bytes) -> list[str]:
    """What TFLite Micro's kernels refuse in a graph whose ops it all registers (each a reason, empty when none):
    float16 weights (the converter's float16 mode stores them as float16 and DEQUANTIZEs them at run time; TFLM's
    DEQUANTIZE takes int8/int16/uint8 only) and hybrid ops (dynamic-range mode: float activations with int8 weights;
    TFLM's kernels: "Hybrid models are not supported on TFLite Micro"). Both fail when TFLM allocates tensors,
    so such a variant cannot run on the device at all. Dynamic shapes are not a limit: the micro export freezes
    them at batch 1 (``cost.freeze_shapes``)."""
    from edgepipe.components.optimization.cost import Graph

    g = Graph(content)
    weights = ("INT8", "UINT8", "INT4")
    f16 = any(name == "DEQUANTIZE" and any(g.dtypes[t] == "FLOAT16" for t in ins) for name, ins, _ in g.ops)
    hybrid = sorted({name for name, ins, _ in g.ops if name not in ("DEQUANTIZE", "QUANTIZE")
                     and any(not g.const[t] and g.dtypes[t] == "FLOAT32" for t in ins)
                     and any(g.const[t] and g.dtypes[t] in weights for t in ins)})
    reasons = ["TFLite Micro cannot dequantize float16 weights (DEQUANTIZE takes int8/int16/uint8)"] if f16 else []
    if hybrid:
        reasons.append(f"TFLite Micro has no hybrid (float activations x int8 weights) kernels: {', '.join(hybrid)}")
    return reasons


def fit(entry: dict[str, Any], target: dict[str, Any], content: bytes | None = None) -> dict[str, Any]:
    """Whether one variant (a ``variants.json`` entry with ``cost``; ``content``: its ``.tflite``, for the checks
    that read the graph) fits ``target``: ``{"target", "fits", "reasons", "flash_bytes", "ram_bytes", "latency_ms",
    "energy_uj"}``; a cost that could not be computed is a reason (unknown fit is not a fit)."""
    cost = entry.get("cost") or {}
    reasons = []
    flash, ram = entry.get("size_bytes"), cost.get("arena_bytes")
    macs = (cost.get("macs") or 0) + (cost.get("elementwise_ops") or 0)
    latency = round(1000.0 * macs / target["macs_per_second"], 6) if "macs" in cost else None
    energy = cost.get("energy_uj")
    if "error" in cost or not cost:
        reasons.append(f"no cost estimate ({cost.get('error', 'not computed')})")
    if target.get("flash_kb") is not None and flash is not None and flash > target["flash_kb"] * 1024:
        reasons.append(f"flash: model {_kb(flash)} > {target['flash_kb']:g} KB")
    if target.get("ram_kb") is not None and ram is not None and ram > target["ram_kb"] * 1024:
        reasons.append(f"RAM: arena {_kb(ram)} > {target['ram_kb']:g} KB")
    if target.get("int8_only") and (entry.get("mode") != "int8" or entry.get("float_ops")):
        left = ", ".join(entry.get("float_ops") or []) or f"{entry.get('mode')} model"
        reasons.append(f"int8 only: float compute ({left})")
    if target.get("op_set") == "tflm":
        from edgepipe.components.export.micro import MICRO_OPS

        missing = sorted(set(entry.get("ops") or []) - MICRO_OPS)
        if missing:
            reasons.append(f"TFLite Micro lacks op(s) {', '.join(missing)}")
        if content is not None:
            reasons.extend(tflm_limits(content))
    if target.get("latency_ms") is not None and latency is not None and latency > target["latency_ms"]:
        reasons.append(f"latency: ~{latency:.3g} ms > {target['latency_ms']:g} ms")
    if target.get("energy_uj") is not None and energy is not None and energy > target["energy_uj"]:
        reasons.append(f"energy: {energy:.3g} uJ > {target['energy_uj']:g} uJ")
    return {"target": target["name"], "fits": not reasons, "reasons": reasons, "flash_bytes": flash,
            "ram_bytes": ram, "latency_ms": latency, "energy_uj": energy}


def summary(rows: list[dict[str, Any]]) -> str:
    """One line per variant that does not fit, for an error message (exit 4) or a report."""
    return "; ".join(f"{r['variant']}: {', '.join(r.get('fit_reasons') or [])}" for r in rows
                     if r.get("fits") is False)
