"""A look inside the network, for any Keras model: one layer's activations for a few inputs, drawn as heatmaps.

Why this layer by default: the last convolution (or, without one, the last weighted layer before the output) is
where a network's features are most specific and still spatial or per-unit, so it shows what the head decides
on. ``inspect_layer`` picks another; a name the model lacks is a one-line ConfigError listing the names it has.
Inputs are the evaluated examples (``predictions.npz``), else the ``examples`` input; a generator gets sampled
latents; a Q-network has no stored observations, so it gets a note instead.
"""
from __future__ import annotations

import numpy as np

from edgepipe.components.report import figures, html
from edgepipe.components.report.context import ReportContext
from edgepipe.components.report.sections import section
from edgepipe.pipeline.errors import ConfigError


def layer_names(net) -> list[str]:
    """Every top-level layer except the inputs: what ``inspect_layer`` may name."""
    return [layer.name for layer in net.layers if type(layer).__name__ != "InputLayer"]


def default_layer(net) -> str:
    """The last convolution that is not the head, else the last weighted layer before the head. The head is an
    output layer or one whose output already has the model's output shape (a generator's final convolution)."""
    outputs = set(getattr(net, "output_names", None) or [])
    shapes = {tuple(o.shape[1:]) for o in net.outputs}
    layers = [layer for layer in net.layers if type(layer).__name__ != "InputLayer"]
    inner = [layer for layer in layers if layer.name not in outputs and _shape(layer) not in shapes] or layers
    convs = [layer for layer in inner if "Conv" in type(layer).__name__]
    weighted = [layer for layer in inner if layer.weights]
    return (convs or weighted or inner)[-1].name


def _shape(layer) -> tuple | None:
    try:
        return tuple(layer.get_output_at(len(layer.inbound_nodes) - 1).shape[1:])
    except (AttributeError, RuntimeError, ValueError, IndexError):
        return None


def choose_layer(net, requested: str | None) -> str:
    if requested is None:
        return default_layer(net)
    names = layer_names(net)
    if requested not in names:
        raise ConfigError(f"report parameter 'inspect_layer': model '{net.name}' has no layer '{requested}' "
                          f"(allowed: {', '.join(names)})")
    return requested


def activation_model(net, name: str):
    """``inputs -> layer output``; the layer's last call (a nested base model's call inside ``net``)."""
    import tf_keras as keras

    layer = net.get_layer(name)
    return keras.Model(net.inputs, layer.get_output_at(len(layer.inbound_nodes) - 1))


def model_inputs(ctx: ReportContext, n: int):
    """``(inputs for net.predict, inputs to draw, source)``; ``(None, None, why)`` when there are none."""
    card = ctx.card
    if card.latent_dim:  # a generator: its inputs are latents (and a class for a cGAN)
        latent = int(card.latent_dim)
        noise = np.random.default_rng(0).normal(size=(n, latent)).astype(np.float32)
        if card.conditional:
            labels = (np.arange(n) % int(card.classes or 1)).reshape(-1, 1)
            return [noise, labels.astype(np.int32)], noise, "sampled latents (classes 0, 1, ...)"
        return noise, noise, "sampled latents"
    if card.env_name:  # a policy: observations come from episodes, none are stored
        return None, None, "a Q-network's observations are not stored by the evaluation"
    x, _, source = ctx.inputs(n)
    if x is None:
        return None, None, source
    return x, x, source


@section(order=70, name="network")
def network(ctx: ReportContext) -> str | None:
    if ctx.model is None:
        return None
    net = ctx.keras
    name = choose_layer(net, ctx.param("inspect_layer"))
    n = int(ctx.param("inspect_inputs", 4))
    feed, shown, source = model_inputs(ctx, n)
    layer = net.get_layer(name)
    kpis = html.kpis([("layers", len(layer_names(net))), ("parameters", int(net.count_params())),
                      ("inspected layer", name), ("layer type", type(layer).__name__)])
    if feed is None:
        note = (f'<p class="note">Activations not drawn: no inputs ({html.esc(source)}). Give the report the '
                "examples input to draw them.</p>")
        return html.section("Inside the network", kpis + note, "network")
    acts = np.asarray(activation_model(net, name).predict(feed, verbose=0))
    picture = figures.activations(np.asarray(shown), acts, name)
    note = (f"<p class=note>Activations of layer <b>{html.esc(name)}</b> (output {list(acts.shape[1:])}) for "
            f"{len(acts)} inputs ({html.esc(source)}); feature maps show the most active channels. Choose "
            "another layer with the <code>inspect_layer</code> parameter (allowed: "
            f"{html.esc(', '.join(layer_names(net)))}).</p>")
    return html.section("Inside the network", kpis + note + html.figure(picture, f"activations of {name}"),
                        "network")
