"""edgepipe.data: the embedded default dataset and its generator.

The default pipeline reads ``default/sensors.csv`` through these helpers (paths from ``__file__``) so it works from
a source checkout and from an installed wheel alike (``package_data`` ships ``default/*``).
"""
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parent / "default"


def default_dataset_path() -> Path:
    """Path of the default multichannel sensor CSV (machine, timestamp, vibration, temperature, current, anomaly)."""
    return DEFAULT_DIR / "sensors.csv"


def default_anomalies_path() -> Path:
    """Path of the JSON list of injected anomalies ({machine, start, end, kind}, start/end inclusive)."""
    return DEFAULT_DIR / "anomalies.json"
