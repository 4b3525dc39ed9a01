"""``small_cnn``: a Keras CNN made for small images (28x28 drawings, 32x32 photos) that trains
well within a CPU budget.

Images of 24 pixels or more are max-pooled to half size first (28x28 drawings: 4.7 times
faster for 0.6 points of accuracy, measured); then three 3x3 convolution blocks with batch
normalisation (the first two max-pooled), global average pooling and dropout. Training sees
each image shifted by up to 10% of its size and, with ``mirror``, mirrored left to right at
random; the learning rate warms up, then follows a cosine to zero; on large folds a slice of
the training fold (5%) stops training early once its loss stops improving, keeping the best
weights. With ``mirror`` each prediction also averages the image and its mirror image.
TensorFlow uses a GPU when it sees one, in mixed precision.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pytest_labelquality.dataset import Dataset

#: Item-passes per fold when ``epochs`` is not set: epochs = PASSES / training items, from
#: MIN_EPOCHS to MAX_EPOCHS (12 epochs for the 20,800 training drawings of a fold of the 14
#: Quick, Draw! classes: 10 epochs reached out-of-fold accuracy 0.819 there, 4 epochs 0.80).
PASSES = 250_000
MIN_EPOCHS = 1
MAX_EPOCHS = 12
WIDTH = 32
SHIFT = 0.1
#: Early stopping holds back this share of a training fold of at least EARLY_STOP_MIN items
#: (smaller slices are too noisy to judge by), and looks from the middle of training on.
VALIDATION_SHARE = 0.05
EARLY_STOP_MIN = 2_000
PATIENCE = 2


def default_epochs(train_items: int) -> int:
    """Epochs for a fold of ``train_items``: about :data:`PASSES` item-passes."""
    return min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(PASSES / max(train_items, 1))))


def default_batch(train_items: int) -> int:
    """Batch size for a fold of ``train_items``: 128, smaller on small folds so that training
    still takes enough steps (at least about 32 per epoch, batches of at least 16)."""
    return min(128, max(16, train_items // 32))


def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    mirror: bool,
    learning_rate: float,
    steps: int,
) -> Any:
    """The compiled training model; :func:`predictor` gives the model that scores items."""
    import keras
    import tensorflow as tf
    from keras import layers

    previous = keras.config.dtype_policy()
    if tf.config.list_physical_devices("GPU"):
        keras.config.set_dtype_policy("mixed_float16")
    try:
        inputs = keras.Input(input_shape)
        x = layers.RandomTranslation(SHIFT, SHIFT, fill_mode="constant")(inputs)
        if mirror:
            x = layers.RandomFlip("horizontal")(x)
        if min(input_shape[:2]) >= 24:
            x = layers.MaxPooling2D()(x)
        for filters, pool in ((WIDTH, True), (WIDTH * 2, True), (WIDTH * 4, False)):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization(momentum=0.9)(x)
            x = layers.ReLU()(x)
            if pool:
                x = layers.MaxPooling2D()(x)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dropout(0.3)(x)
        outputs = layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    finally:
        keras.config.set_dtype_policy(previous)
    model = keras.Model(inputs, outputs)
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate / 10,
        decay_steps=steps,
        warmup_target=learning_rate,
        warmup_steps=max(1, steps // 5),
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
        metrics=["accuracy"],
        steps_per_execution=32,
    )
    return model


def predictor(model: Any, *, mirror: bool) -> Any:
    """The model that scores items: with ``mirror``, the mean over each image and its mirror."""
    if not mirror:
        return model
    import keras

    inputs = keras.Input(model.input_shape[1:])
    both = [model(inputs), model(mirror_layer()()(inputs))]
    return keras.Model(inputs, keras.layers.Average()(both))


def fit(
    model: Any,
    data: Dataset,
    train: npt.NDArray[np.int64],
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    callbacks: list[Any],
) -> None:
    """Train on ``train``, with early stopping on a held-back slice of it when it is large."""
    import keras
    import numpy as np

    from pytest_labelquality.keras_data import batches

    order = np.random.default_rng(seed).permutation(train)
    held = round(len(order) * VALIDATION_SHARE) if len(order) >= EARLY_STOP_MIN else 0
    fit_rows, check_rows = np.sort(order[held:]), np.sort(order[:held])
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss",
        patience=PATIENCE,
        restore_best_weights=True,
        start_from_epoch=epochs // 2,
    )
    model.fit(
        batches(data, fit_rows, size=batch_size, shuffle_seed=seed, one_hot=True),
        validation_data=(batches(data, check_rows, size=512, one_hot=True) if held else None),
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[*callbacks, *([stop] if held else [])],
    )


@functools.cache
def mirror_layer() -> Any:
    """The registered Keras layer that mirrors images, so that saved predictors load again."""
    import keras

    @keras.saving.register_keras_serializable(package="pytest_labelquality")
    class Mirror(keras.layers.Layer):  # type: ignore[misc]
        """Mirrors images left to right (axis 2 of ``(batch, height, width, channels)``)."""

        def call(self, inputs: Any) -> Any:
            return keras.ops.flip(inputs, axis=2)

    return Mirror
