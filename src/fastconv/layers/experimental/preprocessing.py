"""Keras' ``tf.keras.layers.experimental.preprocessing`` (``Rescaling``,
``Normalization``, ``Resizing``, ``RandomFlip``, ...): the preprocessing
layers, none of which fastconv implements yet."""

__all__: list = []
