"""The UI in a real browser: Selenium drives Debian's headless chromium (chromium + chromium-driver, installed by
``make test`` when root and apt-get allow) against ``edgepipe ui`` served by uvicorn on the fixture root.

Each test keeps a screenshot under its pytest tmp dir and checks that it is not blank (pixel variance), so a page
that renders nothing fails even when the elements exist. Skipped with the reason when the browser cannot run.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgepipe.ui.app import create_app
from tests.ui.conftest import live_run

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOTS = os.environ.get("EDGEPIPE_UI_SCREENSHOTS")  # also copy screenshots here (docs/ for the README)

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip("chromium and chromium-driver are not installed (make chromium, as root with apt-get)",
                allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(app):
    """``app`` served by uvicorn on a free loopback port, for the duration of the block."""
    import uvicorn

    port = free_port()
    instance = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert instance.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        instance.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def server(ui_fixture):
    with serving(create_app(ui_fixture.root, config_dirs=[ui_fixture.configs], workdir=ui_fixture.workdir)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except Exception as err:  # a browser that cannot start here (no /dev/shm, missing libraries ...)
        pytest.skip(f"chromium could not start: {str(err).splitlines()[0]}")
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def shot(driver, tmp_path: Path, name: str) -> Path:
    """Screenshot, kept as a test output, and asserted non-blank: a rendered page has text, tables and colours."""
    from PIL import Image

    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    assert pixels.std() > 10, f"{name}: screenshot is blank (pixel std {pixels.std():.1f})"
    assert (pixels < 128).mean() > 0.002, f"{name}: almost nothing dark drawn"
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(SCREENSHOTS) / path.name)
    return path


def wait(driver, seconds: float = 60):
    """Waits that survive the live page replacing the graph (its elements go stale on each redraw)."""
    return WebDriverWait(driver, seconds, poll_frequency=0.3, ignored_exceptions=[StaleElementReferenceException])


def test_runs_page_lists_the_fixture_runs(browser, server, ui_fixture, tmp_path):
    browser.get(server + "/")
    rows = browser.find_elements(By.CSS_SELECTOR, "#runs-table tr.run")
    ids = [row.get_attribute("data-run") for row in rows]
    assert ids.index(ui_fixture.second) < ids.index(ui_fixture.first)  # newest first
    browser.find_element(By.CSS_SELECTOR, 'a.sort[data-col="started"]').click()  # sort: oldest first
    wait(browser).until(EC.url_contains("desc=0"))
    ids = [r.get_attribute("data-run") for r in browser.find_elements(By.CSS_SELECTOR, "#runs-table tr.run")]
    assert ids.index(ui_fixture.first) < ids.index(ui_fixture.second)
    box = browser.find_element(By.ID, "filter-q")
    box.send_keys(ui_fixture.first[-6:])
    box.submit()
    wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#runs-table tr.run")) == 1)
    shot(browser, tmp_path, "runs")


def test_run_page_shows_the_dag_and_opens_a_node(browser, server, ui_fixture, tmp_path):
    browser.get(f"{server}/runs/{ui_fixture.second}")
    nodes = browser.find_elements(By.CSS_SELECTOR, "#dag svg g.node")
    assert len(nodes) == 9
    states = {n.get_attribute("data-node"): n.get_attribute("data-state") for n in nodes}
    assert states["ingest_timeseries"] == "cached" and states["train_autoencoder"] == "complete"
    detail = browser.find_element(By.ID, "detail-train_autoencoder")
    assert detail.get_attribute("open") is None
    browser.find_element(By.ID, "node-train_autoencoder").click()
    wait(browser, 10).until(lambda d: d.find_element(By.ID, "detail-train_autoencoder").get_attribute("open"))
    assert "epochs" in detail.text and "make_windows" in detail.text  # parameters and lineage
    assert "selected" in browser.find_element(By.ID, "node-train_autoencoder").get_attribute("class")
    assert browser.find_elements(By.CSS_SELECTOR, "svg.loss polyline.series")  # the recorded curves
    shot(browser, tmp_path, "run")


def test_launch_from_the_form_and_watch_it_complete_live(browser, server, ui_fixture, tmp_path):
    browser.get(f"{server}/new?config=tiny")
    epochs = browser.find_element(By.ID, "f-training.epochs")
    epochs.clear()
    epochs.send_keys("8")
    browser.find_element(By.ID, "launch-button").click()
    wait(browser).until(EC.url_contains("/jobs"))
    link = wait(browser, 300).until(lambda d: d.find_elements(By.CSS_SELECTOR, "a.job-run"))[0]
    run_id = link.text
    browser.get(f"{server}/runs/{run_id}")
    seen_running = browser.find_element(By.ID, "run-status").text == "running"
    longest_live_curve, deadline = 0, time.monotonic() + 600
    while time.monotonic() < deadline:  # while it runs, the stream draws the loss curve epoch by epoch
        try:
            if browser.find_element(By.ID, "run-status").text in ("complete", "failed", "interrupted", "abandoned"):
                break
            for line in browser.find_elements(By.CSS_SELECTOR, "#live-curves svg.live-loss polyline.series"):
                longest_live_curve = max(longest_live_curve, len(line.get_attribute("points").split()))
        except StaleElementReferenceException:  # redrawn under our feet
            pass
        time.sleep(0.3)
    assert browser.find_element(By.ID, "run-status").text == "complete"
    if seen_running:
        assert longest_live_curve == 8
    # at the end the page reloads with the final state: all nodes done, report, the recorded curve
    wait(browser, 30).until(lambda d: d.find_elements(By.ID, "report-link"))
    states = [n.get_attribute("data-state") for n in browser.find_elements(By.CSS_SELECTOR, "#dag g.node")]
    assert len(states) == 9 and set(states) <= {"complete", "cached"}
    static = browser.find_elements(By.CSS_SELECTOR, "svg.loss polyline.series")
    assert static and len(static[0].get_attribute("points").split()) == 8
    shot(browser, tmp_path, "launched")
    from edgepipe.pipeline.metadata import MetadataStore

    run = MetadataStore(ui_fixture.root / "metadata.sqlite").run(run_id)
    assert run["status"] == "complete" and '"epochs": 8' in run["config"]


def test_compare_two_runs(browser, server, ui_fixture, tmp_path):
    browser.get(server + "/")
    for run_id in (ui_fixture.first, ui_fixture.second):
        browser.find_element(By.CSS_SELECTOR, f'tr[data-run="{run_id}"] input.pick').click()
    browser.find_element(By.ID, "compare-button").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "config-diff")))
    diff = browser.find_element(By.ID, "config-diff").text
    assert "training.epochs" in diff
    assert len(browser.find_elements(By.CSS_SELECTOR, "#overlay polyline.series")) == 4
    shot(browser, tmp_path, "compare")


def test_upload_a_csv_to_a_bundle_and_see_the_plot(browser, server, ui_fixture, tmp_path):
    lines = (REPO / "data" / "default" / "sensors.csv").read_text().splitlines()
    upload = tmp_path / "sensors-part.csv"
    upload.write_text("\n".join(lines[:3001]) + "\n")
    browser.get(server + "/bundles")
    browser.find_element(By.CSS_SELECTOR, "a.bundle-link").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "upload")))
    assert browser.find_element(By.ID, "task").text == "anomaly_detection"
    browser.find_element(By.ID, "upload").send_keys(str(upload))
    browser.find_element(By.ID, "series-column").send_keys("machine")
    browser.find_element(By.ID, "predict-button").click()
    wait(browser, 120).until(EC.presence_of_element_located((By.ID, "result")))
    charts = browser.find_elements(By.CSS_SELECTOR, "#result svg.scores")
    assert charts and browser.find_elements(By.CSS_SELECTOR, "#result svg.scores line.hline")
    points = browser.find_element(By.CSS_SELECTOR, "#result svg.scores polyline.series").get_attribute("points")
    assert len(points.split()) > 100
    shot(browser, tmp_path, "bundle")


def test_the_family_select_keeps_the_edits(browser, server, tmp_path):
    """QA23 U12: choosing another family redraws the form for it without losing what was typed."""
    browser.get(f"{server}/new?config=tiny")
    source = browser.find_element(By.ID, "f-data.source")
    source.clear()
    source.send_keys("my-series.csv")
    epochs = browser.find_element(By.ID, "f-training.epochs")
    epochs.clear()
    epochs.send_keys("abc")
    Select(browser.find_element(By.ID, "f-model.family")).select_by_value("cnn")
    wait(browser, 30).until(lambda d: d.find_elements(By.ID, "f-model.hparams.dense_units"))
    assert browser.find_element(By.ID, "f-data.source").get_attribute("value") == "my-series.csv"
    assert browser.find_element(By.ID, "f-training.epochs").get_attribute("value") == "abc"
    browser.find_element(By.ID, "launch-button").click()  # U2/U11: refused in the CLI's words, edits kept
    error = wait(browser, 30).until(lambda d: d.find_elements(By.ID, "form-error"))[0].text
    assert error.startswith("--set training.epochs=abc: config key 'training.epochs': Input should be a valid")
    assert browser.find_element(By.ID, "f-data.source").get_attribute("value") == "my-series.csv"
    assert Select(browser.find_element(By.ID, "f-model.family")).first_selected_option.text == "cnn"
    shot(browser, tmp_path, "family")


def test_a_live_page_follows_nodes_started_after_it_loaded(browser, ui_fixture, tmp_path):
    """QA23 U8: a node that starts after the page loaded gets its panel, and the header's cache count and
    duration follow node events (the run's status does not change meanwhile)."""
    root, store, run_id, first = live_run(ui_fixture, tmp_path)
    with serving(create_app(root, start_worker=False)) as url:
        browser.get(f"{url}/runs/{run_id}")
        assert browser.find_element(By.ID, "run-status").text == "running"
        assert "0/1 cached" in browser.find_element(By.ID, "run-meta").text
        assert not browser.find_elements(By.ID, "detail-compute_statistics")
        store.complete_execution(first, {}, {}, {})
        source = next(e["id"] for e in store.executions(ui_fixture.first) if e["node"] == "compute_statistics")
        hit = store.start_execution(run_id, "compute_statistics", "compute_statistics", "v", "k2", {})
        store.complete_execution(hit, {}, {}, {}, cached_from=source)  # a cache hit: the header counts it
        store.start_execution(run_id, "normalize", "normalize", "v", "k3", {})
        wait(browser, 30).until(lambda d: d.find_elements(By.ID, "detail-normalize"))
        wait(browser, 10).until(lambda d: "1/3 cached" in d.find_element(By.ID, "run-meta").text)
        assert "running" in browser.find_element(By.ID, "detail-normalize").text
        assert browser.find_element(By.ID, "run-status").text == "running"
        browser.find_element(By.ID, "node-normalize").click()
        wait(browser, 10).until(lambda d: d.find_element(By.ID, "detail-normalize").get_attribute("open"))
        shot(browser, tmp_path, "live-nodes")
        store.end_run(run_id, "interrupted")
