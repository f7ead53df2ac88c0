"""Keras' ``tf.keras.preprocessing.image`` (``ImageDataGenerator``,
``load_img``, ``img_to_array``, ...): not implemented in fastconv yet.

Reading image files will import Pillow lazily, inside the function that
needs it, so that ``import fastconv`` keeps importing only NumPy.
"""

__all__: list = []
