"""``fastconv.regularizers`` and ``fastconv.constraints``: Keras 2.4's base
classes and their ``get``/``serialize``/``deserialize``."""
from __future__ import annotations

import numpy as np
import pytest

from fastconv import constraints, regularizers


class _Scaled(regularizers.Regularizer):
    def __init__(self, factor=1.0):
        self.factor = factor

    def __call__(self, x):
        return self.factor * float(np.sum(np.square(x)))

    def get_config(self):
        return {"factor": self.factor}


class _Clipped(constraints.Constraint):
    def __init__(self, limit=1.0):
        self.limit = limit

    def __call__(self, w):
        return np.clip(w, -self.limit, self.limit)

    def get_config(self):
        return {"limit": self.limit}


def test_the_base_classes_do_nothing():
    w = np.arange(4.0)
    assert regularizers.Regularizer()(w) == 0.0
    assert constraints.Constraint()(w) is w


def test_get_passes_none_and_callables_through():
    def penalty(x):
        return 0.5

    assert regularizers.get(None) is None and constraints.get(None) is None
    assert regularizers.get(penalty) is penalty
    assert constraints.get(np.abs) is np.abs


def test_get_by_class_name():
    assert type(regularizers.get("Regularizer")) is regularizers.Regularizer
    assert type(constraints.get("Constraint")) is constraints.Constraint


@pytest.mark.parametrize("module,what,name", [
    (regularizers, "regularizer", "l3"),
    (constraints, "constraint", "max_norms"),
])
def test_unknown_names(module, what, name):
    with pytest.raises(ValueError, match=f"Unknown {what}: {name}"):
        module.get(name)


@pytest.mark.parametrize("module,what", [(regularizers, "regularizer"),
                                         (constraints, "constraint")])
def test_other_identifiers_are_refused(module, what):
    with pytest.raises(ValueError, match=f"Could not interpret {what} identifier: 5"):
        module.get(5)
    with pytest.raises(ValueError, match="Improper config format"):
        module.get({"config": {}})


def test_serialize_and_deserialize_round_trip_with_custom_objects():
    config = regularizers.serialize(_Scaled(0.25))
    assert config == {"class_name": "_Scaled", "config": {"factor": 0.25}}
    restored = regularizers.deserialize(config, custom_objects={"_Scaled": _Scaled})
    assert isinstance(restored, _Scaled) and restored.factor == 0.25
    assert restored(np.ones(2)) == 0.5

    config = constraints.serialize(_Clipped(2.0))
    assert config == {"class_name": "_Clipped", "config": {"limit": 2.0}}
    restored = constraints.deserialize(config, custom_objects={"_Clipped": _Clipped})
    np.testing.assert_array_equal(restored(np.array([-3.0, 1.0, 3.0])), [-2.0, 1.0, 2.0])
    assert constraints.serialize(constraints.Constraint()) == {"class_name": "Constraint",
                                                               "config": {}}


def test_functions_serialize_to_their_name():
    assert regularizers.serialize(np.sum) == "sum"
    assert regularizers.deserialize("sum", custom_objects={"sum": np.sum}) is np.sum


def test_the_base_regularizer_has_no_config_as_in_keras():
    with pytest.raises(NotImplementedError, match="does not implement get_config"):
        regularizers.serialize(regularizers.Regularizer())
