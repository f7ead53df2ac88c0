"""Keras' ``tf.keras.layers.experimental``: the preprocessing layers' namespace."""
from . import preprocessing

__all__ = ["preprocessing"]
