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


def test_cgan_critic_projects_the_label_and_the_dcgan_critic_sees_batch_spread(tmp_path):
    import tf_keras as keras

    from edgepipe.models.custom_objects import custom_object_scope

    cgan = build("cgan", SPEC, **HP)
    names = {layer.name for layer in cgan.discriminator.layers}
    assert {"class_vector", "projection", "batch_stddev"} <= names
    assert "projection" not in {layer.name for layer in build("cgan", SPEC, projection=False, **HP).discriminator.layers}
    # the projection term alone makes the logit depend on the label: same image, different classes
    images = np.random.default_rng(0).uniform(size=(3, 8, 8, 1)).astype("float32")
    for layer in cgan.discriminator.layers:
        if layer.name == "class_vector":
            layer.set_weights([np.random.default_rng(1).normal(size=w.shape) for w in layer.get_weights()])
    logits = [cgan.discriminator([images, np.full((3, 1), c)], training=False).numpy() for c in range(3)]
    assert not np.allclose(logits[0], logits[1])
    # the batch-spread feature: a batch of identical images gives a different feature than a varied one
    dcgan = build("dcgan", SPEC, **HP)
    same = np.repeat(images[:1], 3, axis=0)
    assert not np.allclose(dcgan.discriminator(same).numpy()[0], dcgan.discriminator(images).numpy()[0])
    path = tmp_path / "d.h5"
    dcgan.discriminator.save(str(path), include_optimizer=False)
    with custom_object_scope():
        loaded = keras.models.load_model(str(path), compile=False)
    np.testing.assert_allclose(loaded(images).numpy(), dcgan.discriminator(images).numpy(), rtol=1e-5)


def test_exported_generator_is_the_moving_average_of_the_trained_one():
    gan = build("dcgan", SPEC, ema_decay=0.5, **HP)
    assert gan.export_generator is gan.ema_generator and gan.ema_generator is not gan.generator
    x = np.random.default_rng(0).uniform(size=(8, 8, 8, 1)).astype("float32")
    before = [w.numpy().copy() for w in gan.ema_generator.weights]
    gan.fit(x, batch_size=8, epochs=1, verbose=0)  # one step: ema = 0.5 * before + 0.5 * trained
    for old, ema, new in zip(before, gan.ema_generator.weights, gan.generator.weights):
        np.testing.assert_allclose(ema.numpy(), 0.5 * old + 0.5 * new.numpy(), rtol=1e-5, atol=1e-6)
    assert build("cgan", SPEC, **HP).export_generator is not None
    assert build("dcgan", SPEC, ema_decay=0.0, **HP).ema_generator is None
