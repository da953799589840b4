from __future__ import annotations

import pytest

from app.services.labels import LabelError, normalize_labels


def test_numeric_labels_are_one_class_per_value_in_value_order() -> None:
    labels = normalize_labels(["1", "1.0", " 1", "+1", "01", "1e0", "0", "-0", "0.00", "10", "2"])
    assert labels.names == ["0", "1", "2", "10"]
    assert labels.of == {
        "1": "1", "1.0": "1", "+1": "1", "01": "1", "1e0": "1", "0": "0", "-0": "0",
        "0.00": "0", "10": "10", "2": "2",
    }  # fmt: skip
    assert labels.ids() == {
        "1": 1, "1.0": 1, "+1": 1, "01": 1, "1e0": 1, "0": 0, "-0": 0, "0.00": 0, "10": 3, "2": 2,
    }  # fmt: skip


def test_fractions_keep_their_shortest_form() -> None:
    assert normalize_labels(["0.50", ".5", "-1.25", "2"]).names == ["-1.25", "0.5", "2"]


def test_text_labels_are_stripped_and_sorted_as_text() -> None:
    labels = normalize_labels(["pos ", " neg", "neg", "10", "2"])
    assert labels.names == ["10", "2", "neg", "pos"]
    assert labels.of["pos"] == "pos"


@pytest.mark.parametrize("odd", ["nan", "inf", "1_000", "0x10", "1e99999", "1" * 41, "\u0661"])
def test_things_that_are_not_plain_decimals_are_text(odd: str) -> None:
    assert normalize_labels([odd, "1"]).names == sorted([odd, "1"])


def test_two_spellings_of_a_number_among_text_labels_are_refused_by_name() -> None:
    with pytest.raises(LabelError) as info:
        normalize_labels(["1", "neg", "1.0", " 1", "2", "2.0"])
    message = info.value.message
    assert "'1' and '1.0' are the same number written differently" in message
    assert "(and 1 more such group(s))" in message
    assert info.value.values == ("1", "1.0")


def test_an_empty_label_is_refused() -> None:
    with pytest.raises(LabelError, match="an empty label"):
        normalize_labels(["a", "  "])
