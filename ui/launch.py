"""New run and queue pages: pick a config from the allowed directories, adjust it in the generated form, launch
(the job queues), watch the queue, cancel (resumable) or resume. ``/api/jobs`` does the same for scripts.

A config is chosen by name only, from ``config_choices`` of the directories allowed at start: the browser never
sends a path, so no file outside them can be launched.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse

from edgepipe.pipeline.errors import ConfigError
from edgepipe.ui import forms
from edgepipe.ui.app import UIError, ui

router = APIRouter()


def _config_path(request: Request, name: str):
    choices = forms.config_choices(ui(request).config_dirs)
    if name not in choices:
        allowed = ", ".join(choices) or "none"
        raise UIError(400, f"config '{name}' is not one the UI may launch (allowed: {allowed})")
    return choices[name]


def _queue(request: Request, name: str, overrides: list[str]) -> dict[str, Any]:
    path = _config_path(request, name)
    for override in overrides:
        key = override.split("=", 1)[0].strip()
        if key in forms.HIDDEN:  # the job runs with the UI's --root whatever it says: refuse, not ignore
            raise UIError(400, f"override '{override}': {key} is set by the UI's --root ({ui(request).root}); "
                               "leave it out")
    forms.check(path, overrides)  # ConfigError: the line `edgepipe run` would print, before anything queues
    return ui(request).queue.submit(path, overrides, label=name)


@router.get("/new", response_class=HTMLResponse)
def new_page(request: Request, config: str = "", family: str = ""):
    state = ui(request)
    choices = forms.config_choices(state.config_dirs)
    if not choices:
        raise UIError(404, "no configs to launch in " + ", ".join(map(str, state.config_dirs)))
    name = config or ("default" if "default" in choices else next(iter(choices)))
    loaded = forms.check(_config_path(request, name), [])
    sections = forms.form_sections(loaded, family or None)
    return state.render(request, "new.html", choices=list(choices), config=name, sections=sections,
                        family=family or loaded.model.family, error=None)


@router.post("/new")
async def new_submit(request: Request):
    """Launch the submitted form; ``__refresh`` (the family select changed) redraws it for the chosen family
    instead. Either way a form that comes back shows what the user submitted, never the file's values again."""
    form = await request.form()
    values: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        values.setdefault(key, []).append(str(value))
    name = (values.get("__config") or [""])[-1]
    family = (values.get("model.family") or [""])[-1] or None
    path = _config_path(request, name)
    loaded = forms.check(path, [])
    drawn_for = (values.get("__family") or [""])[-1] or loaded.model.family
    error = None
    if not values.get("__refresh"):
        try:
            overrides = forms.overrides_from_form(loaded, values, family)
            _queue(request, name, overrides)
            return RedirectResponse("/jobs", status_code=303)
        except ConfigError as err:
            error = str(err)
    sections = forms.with_submitted(forms.form_sections(loaded, family), values,
                                    keep_hparams=(family or loaded.model.family) == drawn_for)
    return ui(request).render(request, "new.html", code=400 if error else 200, choices=list(
        forms.config_choices(ui(request).config_dirs)), config=name, sections=sections,
        family=family or loaded.model.family, error=error)


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request):
    return ui(request).render(request, "jobs.html", jobs=ui(request).queue.jobs())


@router.get("/api/jobs")
def jobs_api(request: Request):
    return {"jobs": ui(request).queue.jobs()}


@router.post("/api/jobs")
async def jobs_submit(request: Request):
    try:
        body = await request.json()
    except ValueError:
        raise UIError(400, "body is not JSON: expected {\"config\": NAME, \"overrides\": [\"key=value\", ...]}")
    if not isinstance(body, dict) or not isinstance(body.get("config"), str):
        raise UIError(400, "expected {\"config\": NAME, \"overrides\": [\"key=value\", ...]}")
    overrides = body.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise UIError(400, "overrides must be a list of \"key=value\" strings")
    return {"job": _queue(request, body["config"], overrides)}


def _job(request: Request, job_id: str) -> dict[str, Any]:
    job = ui(request).queue.get(job_id)
    if job is None:
        raise UIError(404, f"no job '{job_id}'")
    return job


@router.post("/jobs/{job_id}/cancel")
def cancel(request: Request, job_id: str):
    _job(request, job_id)
    done = ui(request).queue.cancel(job_id)
    if request.url.path.startswith("/api") or "application/json" in request.headers.get("accept", ""):
        return {"job": job_id, "result": done}
    return RedirectResponse("/jobs", status_code=303)


@router.post("/jobs/{job_id}/resume")
def resume(request: Request, job_id: str):
    """Queue the same config and overrides again: every component the stopped run completed is a cache hit."""
    job = _job(request, job_id)
    ui(request).queue.submit(job["config"], job["overrides"], label=job["label"])
    return RedirectResponse("/jobs", status_code=303)


@router.get("/jobs/{job_id}/log", response_class=PlainTextResponse)
def job_log(request: Request, job_id: str):
    _job(request, job_id)
    path = ui(request).queue.log_path(job_id)
    if not path.is_file():
        return PlainTextResponse("(not started)")
    return PlainTextResponse(path.read_text(encoding="utf-8", errors="replace")[-200_000:])
