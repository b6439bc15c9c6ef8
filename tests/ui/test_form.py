"""The new-run form as a user meets it: a refused form comes back as they left it (QA23 U11), choosing another
family keeps their edits (U12), and a bad number field is refused in the CLI's words, naming what they typed (U2)."""
from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

from edgepipe.ui.app import create_app


@pytest.fixture(scope="module")
def client(ui_fixture):
    with TestClient(create_app(ui_fixture.root, config_dirs=[ui_fixture.configs], start_worker=False)) as c:
        yield c


def field(page: str, key: str) -> str:
    found = re.search(rf'<input type="text"[^>]*name="{re.escape(key)}" id="f-{re.escape(key)}" value="([^"]*)"',
                      page)
    assert found, key
    return html.unescape(found.group(1))


def error(page: str) -> str:
    return html.unescape(re.search(r'id="form-error">([^<]*)<', page).group(1))


def test_a_refused_form_comes_back_with_what_was_submitted(client):
    sent = {"__config": "tiny", "training.epochs": "3", "window.stride": "-1", "data.source": "my.csv",
            "model.family": "autoencoder", "training.batch_size": "16"}
    before = len(client.get("/api/jobs").json()["jobs"])
    page = client.post("/new", data=sent)
    assert page.status_code == 400
    assert "window.stride" in error(page.text) and "greater than 0" in error(page.text)
    for key in ("training.epochs", "window.stride", "data.source", "training.batch_size"):
        assert field(page.text, key) == sent[key]
    assert len(client.get("/api/jobs").json()["jobs"]) == before  # nothing queued


def test_another_family_keeps_the_users_edits(client):
    sent = {"__config": "tiny", "__family": "autoencoder", "__refresh": "1", "model.family": "cnn",
            "data.source": "elsewhere.csv", "training.epochs": "3", "model.hparams.filters": "[32, 16]"}
    before = len(client.get("/api/jobs").json()["jobs"])
    page = client.post("/new", data=sent)
    assert page.status_code == 200 and 'id="form-error"' not in page.text
    assert re.search(r'<select name="model.family"[^>]*>.*?<option value="cnn" selected>', page.text, re.S)
    assert field(page.text, "data.source") == "elsewhere.csv" and field(page.text, "training.epochs") == "3"
    assert 'name="model.hparams.dense_units"' in page.text  # the new family's hyperparameters, its defaults
    assert field(page.text, "model.hparams.filters") == "[32, 64]"  # not the autoencoder's [32, 16]
    assert 'name="__family" value="cnn"' in page.text
    assert len(client.get("/api/jobs").json()["jobs"]) == before  # redrawn, not launched
    # the family select submits the form with __refresh (no navigation that would drop the edits)
    assert "__refresh" in client.get("/new", params={"config": "tiny"}).text


@pytest.mark.parametrize("key, typed, words", [
    ("training.epochs", "1e999", "Input should be a valid integer"),
    ("training.epochs", "abc", "Input should be a valid integer"),
    ("training.learning_rate", "abc", "Input should be a valid number"),
    ("window.size", "2.5", "fractional part"),
])
def test_a_bad_number_is_refused_in_the_clis_words_with_what_was_typed(client, key, typed, words):
    page = client.post("/new", data={"__config": "tiny", key: typed})
    assert page.status_code == 400
    message = error(page.text)
    assert message.startswith(f"--set {key}={typed}: config key '{key}': ") and words in message
    assert repr(typed) in message or typed in message
    assert "invalid literal" not in message and "could not convert" not in message
    assert field(page.text, key) == typed


def test_a_hparams_edit_survives_a_refusal(client):
    page = client.post("/new", data={"__config": "tiny", "__family": "autoencoder", "model.family": "autoencoder",
                                     "model.hparams.kernel_size": "5", "training.epochs": "0"})
    assert page.status_code == 400 and field(page.text, "model.hparams.kernel_size") == "5"


@pytest.mark.parametrize("key, needed", [("training.epochs", "a whole number"),
                                         ("training.learning_rate", "a number")])
def test_an_empty_number_field_is_said_to_be_empty(client, key, needed):
    page = client.post("/new", data={"__config": "tiny", key: ""})
    assert page.status_code == 400
    assert error(page.text) == f"config key '{key}' is empty: {needed} is needed"
