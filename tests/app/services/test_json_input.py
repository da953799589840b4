import pytest

from app.services.json_input import JsonInputError, loads


def test_plain_json_parses():
    assert loads(b'{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}


def test_deep_nesting_is_refused_without_recursion():
    with pytest.raises(JsonInputError, match="nested deeper than 64"):
        loads("[" * 1_000_000 + "]" * 1_000_000)


def test_brackets_inside_strings_do_not_count():
    assert loads('{"k": "' + "[" * 500 + '"}') == {"k": "[" * 500}
    assert loads('{"k": "a\\"[[["}') == {"k": 'a"[[['}


def test_long_integers_are_refused():
    with pytest.raises(JsonInputError, match="more than 20 digits"):
        loads('{"n": ' + "9" * 5000 + "}")
    assert loads('{"n": -18446744073709551615}') == {"n": -18446744073709551615}


def test_nan_and_invalid_json_are_clear_errors():
    with pytest.raises(JsonInputError, match="NaN is not a JSON number"):
        loads('{"x": NaN}')
    with pytest.raises(JsonInputError, match=r"line 1, column 6"):
        loads('{"x" 1}')
    with pytest.raises(JsonInputError, match="UTF-8"):
        loads(b'{"x": "\xff"}')


def test_deep_nesting_between_the_bound_and_the_recursion_limit_is_refused():
    with pytest.raises(JsonInputError, match="nested deeper than 64"):
        loads("[" * 65 + "]" * 65)
    assert loads("[" * 64 + "]" * 64) is not None


def test_brackets_inside_strings_cost_no_python_loop():
    """A hostile line of brackets inside a string (which a character loop would walk) parses
    within a small multiple of json.loads itself."""
    import json
    import time

    line = '{"k": "' + "[{" * 500_000 + '"}'
    t0 = time.process_time()
    for _ in range(5):
        json.loads(line)
    plain = time.process_time() - t0
    t0 = time.process_time()
    for _ in range(5):
        assert loads(line) == {"k": "[{" * 500_000}
    ours = time.process_time() - t0
    assert ours < 10 * plain + 0.05, (ours, plain)


def test_many_shallow_containers_cost_a_small_multiple_of_the_parse():
    import json
    import time

    line = "[" + ",".join(["[]"] * 200_000) + "]"
    t0 = time.process_time()
    json.loads(line)
    plain = time.process_time() - t0
    t0 = time.process_time()
    assert len(loads(line)) == 200_000
    ours = time.process_time() - t0
    assert ours < 6 * plain + 0.05, (ours, plain)
