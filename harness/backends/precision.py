"""What a run does when its training precision would be emulated slowly or is unsupported on its device.

One rule per case, the table of docs/backends.md ("Precision"): the run goes on with a one-line
warning where its numbers stay right and only its timings suffer, and is refused (exit 2) where the
framework would compute little of the step in that precision or a better precision exists on that
device. ``native`` says whether the device computes the precision in hardware (a CPU's flags,
:data:`harness.environment.NATIVE_PRECISION_FLAGS`; a GPU's generation).
"""

from __future__ import annotations

from harness.errors import UserError

#: Why fp16 is refused on a CPU, per framework.
FP16_ON_CPU = {
    "torch": "PyTorch's CPU autocast runs few operations in float16 and its CPU kernels for them are slow",
    "tensorflow": "Keras' mixed_float16 policy runs slower than float32 on a CPU (TensorFlow's own guide says so)",
}


def judge(precision: str, *, framework: str, device: str, native: bool) -> str | None:
    """None when ``precision`` runs as asked, a one-line warning when it runs emulated; UserError when refused."""
    if precision == "fp32":
        return None
    if precision == "fp16" and device == "cpu":
        reason = FP16_ON_CPU.get(framework, "fp16 is a GPU precision")
        raise UserError(f"train.precision=fp16 on a CPU is refused: {reason}; use train.precision=bf16 on a CPU")
    if precision == "bf16" and not native and device == "cpu":
        return (f"warning: this CPU has no native bf16 (neither amx_bf16 nor avx512_bf16): {framework} emulates it, "
                "so the run's numbers are right but its timings measure the emulation")
    if precision == "bf16" and not native:
        raise UserError("train.precision=bf16: this GPU has no bf16 arithmetic (it came with compute capability 8.0, "
                        "Ampere); use train.precision=fp16 on it")
    return None
