"""Session fixtures shared by the model-side tests (built once, see tests/components/fixtures.py)."""
from tests.components.fixtures import (chain, evaluation, qat_model, tflite_models,  # noqa: F401
                                       trained_model, transform_params, windows_examples)
