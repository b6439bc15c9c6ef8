"""GAN families: the generator step never changes the discriminator; fit works on images (and labels)."""
import numpy as np
import pytest

import edgepipe  # noqa: F401
from edgepipe.models import build
from edgepipe.models.spec import DataSpec

SPEC = DataSpec((8, 8, 1), "generation", num_classes=3)
HP = {"latent_dim": 4, "generator_filters": [8, 4], "discriminator_filters": [4]}


@pytest.mark.parametrize("name", ["dcgan", "cgan"])
def test_generator_step_freezes_the_discriminator(name):
    import tensorflow as tf

    gan = build(name, SPEC, **HP)
    labels = tf.constant([[0], [1], [2], [1]], tf.int32) if name == "cgan" else None
    images = tf.random.uniform((4, 8, 8, 1))
    gan.discriminator_step(images, labels)  # builds both optimizers' slots
    d_before = [w.numpy().copy() for w in gan.discriminator.weights]
    g_before = [w.numpy().copy() for w in gan.generator.trainable_weights]
    gan.generator_step(4, labels)
    for before, after in zip(d_before, gan.discriminator.weights):
        np.testing.assert_array_equal(before, after.numpy())
    assert any(not np.array_equal(b, a.numpy()) for b, a in zip(g_before, gan.generator.trainable_weights))
    g_mid = [w.numpy().copy() for w in gan.generator.trainable_weights]
    gan.discriminator_step(images, labels)
    assert any(not np.array_equal(b, a.numpy()) for b, a in zip(d_before, gan.discriminator.weights))
    for before, after in zip(g_mid, gan.generator.trainable_weights):  # (its BatchNorm statistics may move)
        np.testing.assert_array_equal(before, after.numpy())


def test_cgan_fit_and_generator_outputs_images_in_data_range():
    gan = build("cgan", SPEC, **HP)
    x = np.random.default_rng(0).uniform(size=(16, 8, 8, 1)).astype("float32")
    y = np.arange(16) % 3
    history = gan.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss"}
    out = gan.generator.predict([np.zeros((2, 4), "float32"), np.array([[0], [2]])], verbose=0)
    assert out.shape == (2, 8, 8, 1) and out.min() >= 0 and out.max() <= 1
    assert [t.name.split(":")[0] for t in gan.generator.inputs] == ["noise", "label"]
