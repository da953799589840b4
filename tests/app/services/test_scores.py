from __future__ import annotations

import pytest

from app.services.scores import ScoreError, check_range, parse_score


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("3", 3.0),
        ("3.800", 3.8),
        (" 1.53333333333333\t", 1.53333333333333),
        ("-0.5", -0.5),
        ("+2", 2.0),
        (".25", 0.25),
        ("5.", 5.0),
        ("1e-3", 0.001),
        ("2.5E+1", 25.0),
        ("1e+20", 1e20),  # how tabular writes a JSON number 1e20
    ],
)
def test_parse_score_reads_plain_decimals(raw: str, value: float) -> None:
    assert parse_score(raw) == value


@pytest.mark.parametrize(
    "raw",
    ["nan", "NaN", "inf", "-Infinity", "0x10", "1_000", "\u0661", "true", "3,5", "1e", "--1"],
)
def test_parse_score_refuses_what_is_not_a_plain_number(raw: str) -> None:
    with pytest.raises(ScoreError) as e:
        parse_score(raw)
    assert e.value.message == f"score {raw!r} is not a number"


@pytest.mark.parametrize("raw", ["", "   ", "\t"])
def test_parse_score_refuses_an_empty_cell(raw: str) -> None:
    with pytest.raises(ScoreError, match="an empty score"):
        parse_score(raw)


def test_parse_score_refuses_an_overflowing_number() -> None:
    with pytest.raises(ScoreError, match="too large for a float"):
        parse_score("1e999")


def test_a_long_value_is_cut_in_the_message() -> None:
    with pytest.raises(ScoreError) as e:
        parse_score("x" * 500)
    assert e.value.message == f"score {'x' * 64 + '...'!r} is not a number"
    assert isinstance(e.value, ValueError)


def test_check_range_includes_both_ends() -> None:
    for value in (0.0, 2.5, 5.0):
        check_range(value, 0.0, 5.0)
    for value in (-0.001, 5.2):
        with pytest.raises(ScoreError) as e:
            check_range(value, 0.0, 5.0)
        assert e.value.message == f"score {value:g} is outside the range [0, 5]"
