"""What a result was measured on: the commit as tables and pages show it."""

from __future__ import annotations

from harness.environment import collect, commit_text, native_cpu_precisions


def test_commit_text_is_short_and_marks_uncommitted_changes():
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert commit_text({"git_commit": commit, "git_dirty": False}) == "0123456789"
    assert commit_text({"git_commit": commit, "git_dirty": True}) == "0123456789*"
    assert commit_text({}) == "–"
    assert commit_text({"git_commit": commit, "git_dirty": True}, length=12, missing="unknown",
                       dirty=" (uncommitted changes)") == "0123456789ab (uncommitted changes)"


def test_native_low_precisions_are_read_off_the_cpu_flags():
    amd = {"avx2", "avx512f", "avx512_bf16"}
    sapphire_rapids = amd | {"amx_bf16", "amx_tile", "avx512_fp16"}
    assert native_cpu_precisions(amd) == {"bf16": ["avx512_bf16"], "fp16": []}
    assert native_cpu_precisions(sapphire_rapids) == {"bf16": ["amx_bf16", "avx512_bf16"], "fp16": ["avx512_fp16"]}
    assert native_cpu_precisions(set()) == {"bf16": [], "fp16": []}
    info = collect()
    assert info["cpu_bf16"] == (" ".join(native_cpu_precisions()["bf16"]) or "none")
