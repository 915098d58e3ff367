"""key=value parsing and application."""

from __future__ import annotations

import pytest

from harness.errors import UserError
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
