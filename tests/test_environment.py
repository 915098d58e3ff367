"""What a result was measured on: the commit as tables and pages show it."""

from __future__ import annotations

from harness.environment import commit_text


def test_commit_text_is_short_and_marks_uncommitted_changes():
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert commit_text({"git_commit": commit, "git_dirty": False}) == "0123456789"
    assert commit_text({"git_commit": commit, "git_dirty": True}) == "0123456789*"
    assert commit_text({}) == "–"
    assert commit_text({"git_commit": commit, "git_dirty": True}, length=12, missing="unknown",
                       dirty=" (uncommitted changes)") == "0123456789ab (uncommitted changes)"
