"""``summary()``: TF 2.4's exact text for chains, Sequential and graphs, plus MACs."""
from __future__ import annotations

import numpy as np
import pytest

from fastconv import backend
from fastconv.layers import (Add, Concatenate, Conv2D, Dense, Flatten, Input, MaxPool2D,
                             MaxPooling2D)
from fastconv.models import Model, Sequential
from fastconv.summary import is_sequential_like


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


def lines_of(model, **kwargs):
    captured = []
    assert model.summary(print_fn=captured.append, **kwargs) is None
    return captured


SEQ_RULE = "_" * 65

# Notes section 1: the notes' exact TF 2.4 output (counters as in the seed).
NOTES_CHAIN = """\
Model: "model"
_________________________________________________________________
Layer (type)                 Output Shape              Param #   
=================================================================
input_4 (InputLayer)         [(None, 28, 28, 1)]       0         
_________________________________________________________________
conv2d_3 (Conv2D)            (None, 26, 26, 32)        320       
_________________________________________________________________
max_pooling2d_1 (MaxPooling2 (None, 13, 13, 32)        0         
_________________________________________________________________
conv2d_4 (Conv2D)            (None, 11, 11, 64)        18496     
_________________________________________________________________
max_pooling2d_2 (MaxPooling2 (None, 5, 5, 64)          0         
_________________________________________________________________
flatten (Flatten)            (None, 1600)              0         
_________________________________________________________________
dense (Dense)                (None, 10)                16010     
=================================================================
Total params: 34,826
Trainable params: 34,826
Non-trainable params: 0
_________________________________________________________________"""


def build_notes_chain():
    for _ in range(3):  # advance the counters the way the notes' session did
        Input((28, 28, 1))
    Conv2D(1, 3), Conv2D(1, 3), Conv2D(1, 3), MaxPooling2D()
    inputs = Input(shape=(28, 28, 1))
    x = Conv2D(32, 3, activation="relu")(inputs)
    x = MaxPooling2D(2)(x)
    x = Conv2D(64, 3, activation="relu")(x)
    x = MaxPool2D(2)(x)
    outputs = Dense(10, activation="softmax")(Flatten()(x))
    return Model(inputs=inputs, outputs=outputs)


def test_functional_chain_matches_notes_exactly():
    assert "\n".join(lines_of(build_notes_chain())) == NOTES_CHAIN


def test_rows_have_trailing_spaces_and_fixed_width():
    lines = lines_of(build_notes_chain())
    table = [line for line in lines[1:] if not line.startswith(("Total", "Trainable", "Non-"))]
    assert all(len(line) == 65 for line in table)
    assert lines[2].endswith("Param #   ")


def test_truncation_is_a_hard_cut():
    lines = lines_of(build_notes_chain())
    assert "max_pooling2d_1 (MaxPooling2 (None, 13, 13, 32)        0         " in lines
    assert not any("MaxPooling2D)" in line for line in lines)


def test_summary_string_and_print():
    model = build_notes_chain()
    assert model.summary_string() == NOTES_CHAIN


def test_summary_prints_to_stdout_by_default(capsys):
    build_notes_chain().summary()
    assert capsys.readouterr().out == NOTES_CHAIN + "\n"


def test_sequential_summary_omits_input_layer():
    model = Sequential([Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
                        MaxPooling2D(2), Flatten(), Dense(10, activation="softmax")])
    assert model.layers[0].name == "conv2d"
    assert lines_of(model) == [
        'Model: "sequential"',
        SEQ_RULE,
        "Layer (type)                 Output Shape              Param #   ",
        "=" * 65,
        "conv2d (Conv2D)              (None, 26, 26, 32)        320       ",
        SEQ_RULE,
        "max_pooling2d (MaxPooling2D) (None, 13, 13, 32)        0         ",
        SEQ_RULE,
        "flatten (Flatten)            (None, 5408)              0         ",
        SEQ_RULE,
        "dense (Dense)                (None, 10)                54090     ",
        "=" * 65,
        "Total params: 54,410",
        "Trainable params: 54,410",
        "Non-trainable params: 0",
        SEQ_RULE,
    ]


def test_unbuilt_sequential_summary_raises_keras_message():
    model = Sequential([Dense(3)])
    with pytest.raises(ValueError, match="This model has not yet been built. Build the model "
                                         "first by calling `build\\(\\)`"):
        model.summary()
    model.build((None, 4))
    assert lines_of(model)[4].startswith("dense (Dense)                (None, 3)")


BRANCH = """\
Model: "model"
__________________________________________________________________________________________________
Layer (type)                    Output Shape         Param #     Connected to                     
==================================================================================================
input_1 (InputLayer)            [(None, 4)]          0                                            
__________________________________________________________________________________________________
dense (Dense)                   (None, 4)            20          input_1[0][0]                    
__________________________________________________________________________________________________
dense_1 (Dense)                 (None, 4)            20          dense[0][0]                      
__________________________________________________________________________________________________
dense_2 (Dense)                 (None, 4)            20          dense[0][0]                      
__________________________________________________________________________________________________
concatenate (Concatenate)       (None, 8)            0           dense_1[0][0]                    
                                                                 dense_2[0][0]                    
==================================================================================================
Total params: 60
Trainable params: 60
Non-trainable params: 0
__________________________________________________________________________________________________"""


def build_branch():
    inputs = Input((4,))
    hidden = Dense(4, activation="relu")(inputs)
    left, right = Dense(4)(hidden), Dense(4)(hidden)
    return Model(inputs, Concatenate()([left, right]))


def test_branching_model_uses_graph_layout():
    model = build_branch()
    assert not is_sequential_like(model)
    lines = lines_of(model)
    assert "\n".join(lines) == BRANCH
    # The row the notes show for this layout.
    assert ("concatenate (Concatenate)       (None, 8)            0           dense_1[0][0]"
            "                    ") in lines


def test_shared_layer_forces_graph_layout_and_lists_both_calls():
    inputs = Input((4,))
    shared = Dense(4)
    model = Model(inputs, shared(shared(inputs)))
    assert not is_sequential_like(model)
    lines = lines_of(model)
    row = lines.index("dense (Dense)                   (None, 4)            20          "
                      "input_1[0][0]                    ")
    assert lines[row + 1] == " " * 65 + "dense[0][0]".ljust(33)
    assert lines[-4] == "Total params: 20"


def test_shared_layer_with_different_shapes_shows_multiple():
    shared = Flatten()
    a, b = Input((2, 3)), Input((4, 3))
    model = Model([a, b], Concatenate()([shared(a), shared(b)]))
    assert any(line.startswith("flatten (Flatten)               multiple") for line in
               lines_of(model))


def test_add_of_two_inputs_rows_in_keras_layer_order():
    a, b = Input((3,), name="a"), Input((3,), name="b")
    model = Model([a, b], Dense(1)(Add()([a, b])))
    names = [layer.name for layer in model.layers]
    assert names == ["a", "b", "add", "dense"]
    assert any(line.startswith("add (Add)") and line.rstrip().endswith("a[0][0]")
               for line in lines_of(model))


def test_line_length_and_positions():
    model = build_notes_chain()
    wide = lines_of(model, line_length=80)
    assert wide[1] == "_" * 80
    assert "max_pooling2d_1 (MaxPooling2D)  " in wide[8]  # no cut at 80 * .45 = 36
    absolute = lines_of(model, positions=[40, 70, 80])
    assert absolute[8].startswith("max_pooling2d_1 (MaxPooling2D)          (None, 13, 13, 32)")
    assert len(absolute[8]) == 80
    with pytest.raises(ValueError, match="positions"):
        model.summary(positions=[.5, 1.], print_fn=lambda line: None)


def test_macs_column_and_total():
    model = build_notes_chain()
    lines = lines_of(model, show_macs=True)
    assert lines[2] == ("Layer (type)                 Output Shape              Param #   "
                        "MACs           ")
    assert all(len(line) == 80 for line in lines[1:4])
    conv_row = next(line for line in lines if line.startswith("conv2d_4"))
    assert conv_row == ("conv2d_4 (Conv2D)            (None, 11, 11, 64)        18496     "
                        "2,230,272      ")
    assert 11 * 11 * 64 * 3 * 3 * 32 == 2_230_272
    conv1 = 26 * 26 * 32 * 9
    conv2 = 2_230_272
    dense = 1600 * 10
    total = conv1 + conv2 + dense
    assert f"Total MACs per sample: {total:,} ({2 * total:,} FLOPs)" in lines
    assert model.count_macs() == total
    # The plain summary is unchanged by the option's existence.
    assert "\n".join(lines_of(model)) == NOTES_CHAIN


def test_macs_column_in_graph_mode_and_unknown_sizes():
    lines = lines_of(build_branch(), show_macs=True)
    assert lines[2].startswith("Layer (type)                    Output Shape         Param #     "
                               "MACs           Connected to")
    assert "Total MACs per sample: 48 (96 FLOPs)" in lines
    backend.clear_session()
    inputs = Input((None, None, 3))
    model = Model(inputs, Conv2D(2, 3)(inputs))
    lines = lines_of(model, show_macs=True)
    assert any(line.startswith("conv2d (Conv2D)") and " ?  " in line for line in lines)
    assert any(line.startswith("Total MACs per sample: at least 0") for line in lines)
    assert model.count_macs() is None


def test_shared_layer_macs_count_every_call():
    inputs = Input((4,))
    shared = Dense(4)
    model = Model(inputs, shared(shared(inputs)))
    assert model.count_macs() == 32
    assert "Total MACs per sample: 32 (64 FLOPs)" in lines_of(model, show_macs=True)


def test_large_counts_get_thousands_separators():
    inputs = Input((28, 28, 1))
    x = Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = Conv2D(64, 3, activation="relu")(x)
    x = Flatten()(MaxPooling2D(2)(x))
    model = Model(inputs, Dense(10)(Dense(100, activation="relu")(x)))
    lines = lines_of(model)
    assert lines[-4:-1] == ["Total params: 1,101,526", "Trainable params: 1,101,526",
                            "Non-trainable params: 0"]
    assert any("1081700" in line for line in lines)  # Param # has no separators


def test_frozen_layer_counts_as_non_trainable():
    inputs = Input((4,))
    frozen = Dense(3, trainable=False)
    model = Model(inputs, Dense(2)(frozen(inputs)))
    assert lines_of(model)[-4:-1] == ["Total params: 23", "Trainable params: 8",
                                      "Non-trainable params: 15"]
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2
    assert np.array_equal(model.get_weights()[0], frozen.get_weights()[0])
