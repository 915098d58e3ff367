"""Suite validation: every mistake is one line naming the field and what is allowed."""

from __future__ import annotations

import pytest

from harness.errors import UserError
from harness.suite.load import suite_names
from harness.suite.overrides import Override
from harness.tasks import load_suite

GOOD = """
title = "tiny"
task = "classify"
mirrors = "Table 0"
[train]
epochs = 2
[profiles.smoke]
"train.epochs" = 1
[profiles.full]
[[models]]
name = "m"
layers = [ { type = "flatten" }, { type = "dense", units = 10, activation = "softmax" } ]
"""


def write(tmp_path, text, name="tiny"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return str(path)


def error_of(path, profile="full", overrides=()):
    with pytest.raises(UserError) as caught:
        load_suite(path, profile, [Override.parse(o) for o in overrides])
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_every_shipped_suite_loads_in_both_profiles():
    for name in suite_names():
        for profile in ("smoke", "full"):
            assert load_suite(name, profile).profile == profile


def test_profile_and_overrides_apply_in_order(tmp_path):
    path = write(tmp_path, GOOD)
    assert load_suite(path).train.epochs == 2
    assert load_suite(path, "smoke").train.epochs == 1
    assert load_suite(path, "smoke", [Override.parse("train.epochs=5")]).train.epochs == 5


def test_unknown_key_in_file(tmp_path):
    path = write(tmp_path, GOOD.replace("epochs = 2", "epochs = 2\nepoch = 3"))
    assert error_of(path) == ("suite tiny: unknown key 'train.epoch'; allowed here: "
                              "epochs, batch_size, optimizer, learning_rate, loss, precision, fast, target_accuracy, "
                              "deterministic")


def test_unknown_override_key(tmp_path):
    message = error_of(write(tmp_path, GOOD), overrides=["train.epoch=3"])
    assert message.startswith("suite tiny: unknown key 'train.epoch'; allowed here: epochs,")


def test_wrong_type(tmp_path):
    message = error_of(write(tmp_path, GOOD), overrides=["train.epochs=abc"])
    assert message == "suite tiny: train.epochs: Input should be a valid integer, unable to parse string as an integer (got 'abc')"


def test_negative_epochs(tmp_path):
    message = error_of(write(tmp_path, GOOD.replace("epochs = 2", "epochs = -1")))
    assert message == "suite tiny: train.epochs: Input should be greater than 0 (got -1)"


def test_unknown_layer(tmp_path):
    message = error_of(write(tmp_path, GOOD.replace('type = "flatten"', 'type = "conv3d"')))
    assert message == ("suite tiny: models['m'].layers.0: unknown layer type 'conv3d'; "
                       "allowed: dense, conv2d, maxpool2d, flatten, dropout, activation")


def test_impossible_shape(tmp_path):
    text = GOOD.replace('{ type = "flatten" }', '{ type = "conv2d", filters = 4, kernel = 30 }, { type = "flatten" }')
    message = error_of(write(tmp_path, text))
    assert message == "suite tiny: models['m']: layer 1 (Conv(4,30,1)): kernel 30 is larger than its 28x28 input"


def test_unknown_suite():
    with pytest.raises(UserError, match=r"unknown suite 'nope'; suites: .*cnn_baseline.*mlp_baseline"):
        load_suite("nope")


def test_unknown_profile(tmp_path):
    assert error_of(write(tmp_path, GOOD), profile="huge") == "suite tiny: unknown profile 'huge'; profiles: smoke, full"


def test_bad_profile_is_found_at_load_even_when_not_chosen(tmp_path):
    message = error_of(write(tmp_path, GOOD.replace('"train.epochs" = 1', '"train.epochs" = 0')))
    assert message == "suite tiny (profile smoke): train.epochs: Input should be greater than 0 (got 0)"


def test_missing_profiles(tmp_path):
    text = GOOD.replace('[profiles.smoke]\n"train.epochs" = 1\n', "")
    assert error_of(write(tmp_path, text)) == "suite tiny: profiles: profiles smoke missing: every suite needs 'smoke' and 'full'"


def test_invalid_toml(tmp_path):
    assert error_of(write(tmp_path, "title = ")).startswith("suite file ")


def test_config_hash_ignores_the_matrix_but_not_the_settings(tmp_path):
    path = write(tmp_path, GOOD)
    base = load_suite(path).config_hash
    assert load_suite(path, overrides=[Override.parse("matrix.seeds=[1,2]")]).config_hash == base
    assert load_suite(path, overrides=[Override.parse("train.batch_size=10")]).config_hash != base


def test_a_runs_identity_is_its_whole_resolved_suite_matrix_included(tmp_path):
    from harness.suite.schema import settings_difference

    path = write(tmp_path, GOOD)
    base = load_suite(path)
    other_seed = load_suite(path, overrides=[Override.parse("matrix.seeds=[1]")])
    assert other_seed.identity != base.identity
    assert settings_difference(base.resolved(), other_seed.resolved()) == "matrix.seeds: [0] in that run, [1] now"
    assert settings_difference(base.resolved(), load_suite(path).resolved()) is None
    judged_otherwise = base.resolved() | {"description": "other words", "regression": {"alpha": 0.01}}
    assert settings_difference(base.resolved(), judged_otherwise) is None  # how results are judged is not what runs


def test_deterministic_runs_have_settings_of_their_own_and_the_default_keeps_older_hashes(tmp_path):
    path = write(tmp_path, GOOD)
    suite = load_suite(path)
    deterministic = load_suite(path, overrides=[Override.parse("train.deterministic=true")])
    assert suite.resolved()["train"]["deterministic"] is False and deterministic.train.deterministic is True
    # A deterministic run never resumes a non-deterministic one (nor the other way round) ...
    assert deterministic.config_hash != suite.config_hash
    # ... and at its default the field leaves the hash a run of this suite stored before the field was
    # added (its resolved settings lack the key), so unfinished runs still resume and baselines keep matching.
    from harness.suite.schema import run_settings, settings_hash

    before = suite.resolved()
    del before["train"]["deterministic"], before["train"]["precision"]
    settings = run_settings(before)
    settings.pop("matrix")
    assert suite.config_hash == settings_hash(settings)


def test_every_backend_a_suite_may_name_is_registered():
    from harness.backends import backend_names
    from harness.suite.schema import BACKEND_NAMES

    assert list(BACKEND_NAMES) == backend_names() == ["torch", "tensorflow"]


def timing_samples(suite) -> int:
    """Timing samples one row of a run gets: repeats of the timed work, else the epochs of one training
    (compare takes each epoch's seconds; a search's trials train for their own epochs)."""
    if suite.repeats > 1 or suite.task in ("pca", "perceptron"):
        return suite.repeats
    return min(suite.train.epochs, suite.options.get("trial_epochs", suite.train.epochs))


def test_every_suite_has_a_nightly_profile_with_five_timing_samples_a_row():
    names = suite_names()  # the study (report) is not among them
    assert len(names) == 11
    for name in names:
        suite = load_suite(name, "nightly")
        assert timing_samples(suite) >= 5, name


# Issue 22, item 11: values a cell would fail on are refused as the suite loads
@pytest.mark.parametrize("override, message", [
    ("train.learning_rate=inf", "suite tiny: train.learning_rate: Input should be a finite number (got 'inf')"),
    ("train.learning_rate=1e308", "suite tiny: train.learning_rate: Input should be less than or equal to 100 "
                                  "(got 1e+308)"),
    ("data.validation_split=0.9999", "suite tiny: data: validation_split 0.9999 holds out all 1,000 training "
                                     "samples, leaving none to train on; lower it or raise data.train_samples"),
    ("data.validation_split=0.0001", "suite tiny: data: validation_split 0.0001 holds out no sample of 1,000; "
                                     "raise it (or set 0 for no validation set)"),
])
def test_values_a_cell_would_fail_on_are_refused(tmp_path, override, message):
    path = write(tmp_path, GOOD)
    assert error_of(path, overrides=["data.train_samples=1000", override]) == message
    assert load_suite(path, overrides=[Override.parse("data.validation_split=0.999")]).data.validation_split == 0.999


# Issue 22, item 7: a suite or study file that is not UTF-8 is one line naming it, in run and in list
def test_a_file_that_is_not_utf8_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    from harness import cli
    from harness.suite.study import load_study

    path = tmp_path / "latin.toml"
    path.write_bytes('title = "café"\n'.encode("latin-1"))
    expected = f"suite file {path}: not UTF-8 text (byte 12: 0xe9); save it as UTF-8"
    assert error_of(str(path)) == expected
    with pytest.raises(UserError, match=r"^study file .*latin.toml: not UTF-8 text \(byte 12: 0xe9\)"):
        load_study(path)
    write(tmp_path, GOOD)
    monkeypatch.setenv("HARNESS_SUITES", str(tmp_path))
    assert load_suite("tiny").title == "tiny"  # the other suites of the folder still load
    for command in (["run", "suite=latin"], ["list"]):
        assert cli.main(command) == 2
        assert capsys.readouterr().err == f"harness: error: {expected}\n"


def test_the_suites_beside_the_package_are_found_from_any_folder(tmp_path, monkeypatch):
    from pathlib import Path

    from harness.suite.load import suites_dir

    monkeypatch.delenv("HARNESS_SUITES", raising=False)
    monkeypatch.chdir(tmp_path)
    assert suites_dir() == Path(__file__).resolve().parent.parent / "suites"
