"""How "try a bundle" draws the answers of the families the fixture root has no bundle for, from the runtime's own
result types: class probabilities as bars, a mask over the image, generated samples as images, Q-values."""
from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

from edgepipe.runtime.tasks.families import GenerationResult, PolicyResult, SegmentationResult
from edgepipe.runtime.tasks.vector import ClassificationResult
from edgepipe.ui.drawings import draw


def png(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def test_classification_bars_highlight_the_chosen_class():
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]])
    out = draw(ClassificationResult("m.tflite", ["cat", "dog", "emu"], probs), "x", probs, "features")
    assert [i["title"] for i in out["items"]] == ["x #0: dog (0.700)", "x #1: cat (0.500)"]
    widths = [float(w) for w in re.findall(r'class="bar" x="120" y="\d+" width="([\d.]+)"', out["items"][0]["svg"])]
    assert widths[1] == max(widths) and abs(widths[1] / widths[0] - 7) < 1e-6
    assert out["items"][0]["svg"].count("#d62728") == 1  # one highlighted bar


def test_segmentation_mask_is_drawn_over_the_image():
    image = np.full((1, 8, 8, 1), 200.0)
    probs = np.zeros((1, 8, 8, 2))
    probs[0, :, :4, 0] = 1
    probs[0, :, 4:, 1] = 1  # right half is class 1
    out = draw(SegmentationResult("m.tflite", ["bg", "thing"], probs), "img", image, "image")
    assert "bg 32" in out["items"][0]["title"] and "thing 32" in out["items"][0]["title"]
    pixels = png(out["items"][0]["image"])
    left, right = pixels[:, : pixels.shape[1] // 2], pixels[:, pixels.shape[1] // 2:]
    assert (left == 200).all()  # background: the image itself
    assert (right[..., 0] > right[..., 2]).all()  # class 1 tinted red


def test_generated_samples_become_images_and_policies_show_actions():
    samples = np.linspace(0, 1, 2 * 4 * 4).reshape(2, 4, 4)
    out = draw(GenerationResult("g.tflite", np.zeros((2, 3)), np.array([3, 5]), samples), "samples", None, "latent")
    assert [i["title"] for i in out["items"]] == ["sample 0 (label 3)", "sample 1 (label 5)"]
    assert png(out["items"][1]["image"]).max() == 255
    q = np.array([[0.1, 0.9], [2.0, -1.0]])
    out = draw(PolicyResult("p.tflite", q), "obs", q, "features")
    assert [i["title"] for i in out["items"]] == ["obs #0: action 1", "obs #1: action 0"]


def test_a_result_type_is_drawn_by_its_registered_drawer_or_as_records():
    """Dispatch is by result type through the registry: a subclass gets its base's drawer, a type without one
    (regression) its records as text, and a newly registered drawer takes over without touching the route."""
    from edgepipe.runtime.tasks.vector import RegressionResult
    from edgepipe.ui import drawings

    class Calibrated(ClassificationResult):
        pass

    probs = np.array([[0.2, 0.8]])
    assert draw(Calibrated("m.tflite", ["no", "yes"], probs), "x", probs, "features")["items"][0]["title"] == \
        "x #0: yes (0.800)"
    result = RegressionResult("r.tflite", ["tips"], np.array([[1.5], [2.25]]))
    out = draw(result, "rows", None, "features")
    assert out["summary"] == "2 predictions" and out["items"][1]["title"] == "{'tips': 2.25}"
    drawings.draws(RegressionResult)(lambda r, name, values, kind: {"name": name, "summary": "drawn", "items": []})
    try:
        assert draw(result, "rows", None, "features")["summary"] == "drawn"
    finally:
        drawings.DRAWERS.pop(RegressionResult)


def test_a_long_series_plot_is_labelled_in_its_own_steps():
    """QA23 U4: a 7,267-step upload max-pooled to fit the plot was labelled "step / 4 (0..1816)", the reduced
    indices; the axis states the series' steps and the reduction, and an alert survives the pooling."""
    from edgepipe.runtime.tasks.anomaly import AnomalyResult

    steps = 7267
    flags = np.zeros(steps, dtype=bool)
    flags[5000] = True
    result = AnomalyResult(model="m", threshold=1.0, window_size=4, window_start=np.arange(steps - 3),
                           window_score=np.zeros(steps - 3), window_anomaly=np.zeros(steps - 3, dtype=bool),
                           step_score=np.where(flags, 2.0, 0.0), step_anomaly=flags)
    chart = draw(result, "series", None, "series")["items"][0]["svg"]
    assert re.search(r"step \(max of every \d+\) \(0\.\.7266\)", chart), chart[-400:]
    assert chart.count('class="alert"') == 1
