"""key=value parsing and application."""

from __future__ import annotations

import pytest

from harness.errors import UserError, echo
from harness.suite.overrides import Override, apply_overrides, parse_value


@pytest.mark.parametrize("text, value", [("2", 2), ("0.5", 0.5), ("[0, 1]", [0, 1]), ("true", True),
                                         ("torch", "torch"), ("'a b'", "a b"), ("none", None)])
def test_values_are_literals_or_strings(text, value):
    assert parse_value(text) == value


def test_dotted_keys_and_list_indexes():
    raw = {"train": {"epochs": 10}, "models": [{"name": "a"}, {"name": "b"}]}
    out = apply_overrides(raw, [Override.parse("train.epochs=2"), Override.parse("models.1.epochs=4"),
                                Override.parse("data.train_samples=100")], "s")
    assert out == {"train": {"epochs": 2}, "models": [{"name": "a"}, {"name": "b", "epochs": 4}],
                   "data": {"train_samples": 100}}
    assert raw["train"]["epochs"] == 10  # the input is not modified


def test_bad_index_and_bad_syntax():
    with pytest.raises(UserError, match=r"override 'models.5.epochs': '5' is not an index 0..0"):
        apply_overrides({"models": [{}]}, [Override.parse("models.5.epochs=1")], "s")
    with pytest.raises(UserError, match="bad argument 'epochs': expected key=value"):
        Override.parse("epochs")


def test_profile_tables_flatten_to_dotted_keys():
    assert Override.from_mapping({"train": {"epochs": 1}, "data.test_samples": 5}, "p") == [
        Override("train.epochs", 1, "p"), Override("data.test_samples", 5, "p")]


def test_values_too_long_or_too_deep_for_the_parser_are_one_line_errors():
    with pytest.raises(UserError, match=r"command line train.epochs=: value '-----.*\[\.\.\.\].*-1' \(5,003 characters\) "
                                        r"is nested too deeply to read"):
        Override.parse("train.epochs=" + "-" * 5000 + "1")
    with pytest.raises(UserError, match=r"value 'xxx.*\(100,002 characters\) is too long: at most 10,000 characters$"):
        Override.parse("train.epochs=" + "x" * 100_000)
    # Short enough to read: not a literal, so a string, which the suite's validation then rejects by type.
    assert Override.parse("train.epochs=" + "-" * 20 + "1").value == "-" * 20 + "1"


def test_error_messages_echo_a_value_cut_to_80_characters():
    assert echo("short") == "'short'"
    assert echo("a" * 1000 + "z") == "'" + "a" * 36 + "[...]" + "a" * 35 + "z' (1,003 characters)"
    assert len(str(UserError("x" * 100_000))) < 1100
