"""Feeding a :class:`Dataset` to Keras: one item's shape and ``tf.data`` pipelines over rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_labelquality.dataset import DataKind

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pytest_labelquality.dataset import Dataset


def keras_input_shape(data: Dataset) -> tuple[int, ...]:
    """One item's shape as a model sees it: 2-D images get a channel axis."""
    if data.kind is DataKind.IMAGE and len(data.input_shape) == 2:
        return (*data.input_shape, 1)
    return data.input_shape


#: Features up to this size feed Keras from in-graph tensors (fastest); larger ones stream
#: from the NumPy array through a generator, so TensorFlow never holds a copy of them.
TENSOR_PIPELINE_MAX_BYTES = 64 << 20


def batches(
    data: Dataset,
    index: npt.NDArray[np.int64],
    *,
    size: int,
    shuffle_seed: int | None = None,
    one_hot: bool = False,
    stream: bool | None = None,
) -> Any:
    """A ``tf.data`` pipeline over rows of ``data``, reshuffled each epoch when asked: images
    stay ``uint8`` in memory and each batch is converted to float32 on the fly.

    Small data becomes tensors; large data (or ``stream=True``) streams: a generator slices
    chunks of 32 batches out of the NumPy array, in a new order each epoch."""
    import numpy as np
    import tensorflow as tf

    shape = keras_input_shape(data)
    scale = 255.0 if data.features.dtype == np.uint8 else 1.0
    num_classes = len(data.class_names)

    def convert(x: Any, y: Any) -> tuple[Any, Any]:
        if x.dtype != tf.string:  # texts reach the model (its TextVectorization) as strings
            x = tf.reshape(tf.cast(x, tf.float32) / scale, (-1, *shape))
        return x, tf.one_hot(y, num_classes) if one_hot else y

    if stream is None:
        stream = data.features[:1].nbytes * len(index) > TENSOR_PIPELINE_MAX_BYTES
    if not stream:
        ds = tf.data.Dataset.from_tensor_slices((data.features[index], data.labels[index]))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(index), seed=shuffle_seed, reshuffle_each_iteration=True)
        ds = ds.batch(size)
    else:
        epochs = iter(range(1 << 30))

        def generate() -> Any:
            order = index
            if shuffle_seed is not None:
                order = np.random.default_rng([shuffle_seed, next(epochs)]).permutation(index)
            for start in range(0, len(order), size * 32):
                rows = order[start : start + size * 32]
                yield data.features[rows], data.labels[rows]

        signature = (
            tf.TensorSpec((None, *data.features.shape[1:]), tf.as_dtype(data.features.dtype)),
            tf.TensorSpec((None,), tf.int64),
        )
        ds = tf.data.Dataset.from_generator(generate, output_signature=signature).rebatch(size)
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-len(index) // size)))
    return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
