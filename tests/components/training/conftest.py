"""Session fixtures shared by the model-side tests (built once, see tests/components/fixtures.py), and the real taxi
sample's head as Examples for the tests of what training refuses."""
from pathlib import Path

import pytest

from edgepipe.components.data import ingest_csv
from tests.components.data.conftest import run_component
from tests.components.fixtures import (chain, evaluation, qat_model, tflite_models,  # noqa: F401
                                       trained_model, transform_params, windows_examples)

TAXI = Path(__file__).resolve().parents[3] / ".." / "shared" / "datasets" / "taxi" / "data.csv"


def taxi_head_examples(tmp: Path, rows: int = 300, **ingest) -> object:
    """The first ``rows`` trips of ../shared/datasets/taxi/data.csv through ingest_csv (skipped without the shared
    datasets folder)."""
    if not TAXI.is_file():
        pytest.skip(f"taxi data not found at {TAXI} (shared datasets folder absent)")
    with TAXI.open() as f:
        head = [next(f) for _ in range(rows + 1)]
    (tmp / "taxi.csv").write_text("".join(head))
    _, out = run_component(ingest_csv, tmp / "ing", source=str(tmp / "taxi.csv"), **ingest)
    return out["examples"]
