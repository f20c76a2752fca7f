"""`precision: auto`: fp8 for a trial only where measurements on this GPU show its GEMMs gain, bf16 otherwise.

The decision is a pure function of the spec, the tokens per step and the device name (no torch), so it is
testable anywhere and recorded with its reason. FP8 (torchao, dynamic tensorwise scaling) speeds up the GEMM
but adds casts and amax reductions that read and write every converted layer's input, weight and output
gradient: about M*K + K*N + M*N elements per layer (M tokens, K inputs, N outputs) against 6*M*K*N FLOPs of
forward and backward. So what decides is the GEMM FLOPs per cast element,

    intensity = sum(2*M*K*N) / sum(M*K + K*N + M*N)   over the layers FP8 would convert,

about d_model for square layers when M >> d_model: wide layers and many tokens a step gain, narrow ones do not
(the casts cost more than the faster GEMM saves). A trial gets fp8 only when a measured point that speaks for its
chip (`points_for`: the chip's own, the H100's gains on the H200, either Hopper's losses on the other) had a gain
beyond noise at an intensity no larger than the trial's (a larger intensity gains at least as much), and when no
such point without a gain had a larger intensity. A gain that a whole-step loss at its intensity or above
contradicts counts for nothing (two runs of one model disagreeing, e.g. compiled whole or layer by layer), and a
layers-alone loss counts only where no whole-step gain is measured at or below its intensity: see MEASURED.
Points do not say how the step was compiled beyond their label; the ones taken with the study default (layer by
layer) are few, so a loss under it overrules a gain measured otherwise.

MEASURED holds the points and where each comes from. `bench/bench_fp8_gemm.py` re-measures the per-layer
crossover (bf16 vs torchao float8 forward + backward for a spec's Linear shapes at a tokens-per-step) and prints
rows to add here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from archsearch.spec import ModelSpec

FP8_ALIGN = 16  # as archsearch.training.fp8: FP8 GEMMs need both matrix dimensions divisible by 16
ROUNDING = 0.05  # MEASURED's intensities carry one decimal: a model is compared with its own point within this
GAIN = 1.05  # an fp8/bf16 speedup below this (step or layers) is within the noise of our figures (+-2-6%, RESULTS.md)


@dataclass(frozen=True)
class Fp8Point:
    """One measured fp8-vs-bf16 comparison on one chip."""

    chip: str  # "h100", "h200": the chip word of torch.cuda.get_device_name()
    what: str  # the model / shape measured
    intensity: float  # GEMM FLOPs per cast element of its converted layers (see the module docstring)
    speedup: float  # fp8 / bf16 tokens per second (whole training step) or GEMM time (per shape)
    source: str  # where the figure is recorded
    spec: str | None = None  # whole-model points: the spec (example name or file) and tokens per forward measured,
    tokens: int | None = None  # from which tests recompute `intensity`
    layers_only: bool = False  # timed over the Linear layers alone, not a whole training step


# Intensities computed by `linear_intensity` for the spec and tokens per step named (tests check them).
# A point is a whole training step or its Linear layers alone (`layers_only`). A layers-alone figure can err either
# way: it leaves out the casts around the layers, and also the fusions that inductor makes of those casts with
# their neighbours in a compiled step (trial-d1024: layers alone 0.956x, whole step compiled whole 1.055x on the
# H100). So it never counts as a gain, and counts as a loss only where no whole-step gain stands at its intensity or
# below (one there means the whole step gains at its intensity too).
MEASURED: tuple[Fp8Point, ...] = (
    Fp8Point("h200", "trial-d768 (bench/specs), 32,768 tokens/step, compiled (whole model)", 1125.2, 1.025,
             "issue 15: compiled fp8 98.5 ms vs compiled bf16 100.9 ms a step on the H200 (torch 2.11, triton 3.6)",
             "bench/specs/trial-d768.yaml", 32768),
    Fp8Point("h100", "trial-d768 Linear layers alone, 32,768 tokens/forward, compiled", 1125.2, 0.855,
             "bench/bench_fp8_gemm.py, bench/RESULTS.md 'fp8 per Linear shape' (H100, 2026-12-06): 63.94 vs "
             "54.69 ms a forward + backward of the 41 converted layers", "bench/specs/trial-d768.yaml", 32768,
             layers_only=True),
    Fp8Point("h100", "nemotron-h-1b, 16,384 tokens/step, compiled (whole model)", 2803.2, 1.134,
             "bench/RESULTS.md, 'FP8 vs bf16, third session' (H100, 2026-11-24, commit 7b2f677): 77,807 vs "
             "68,603 tokens/s", "nemotron-h-1b", 16384),
    Fp8Point("h100", "nemotron-h-1b-wide, 16,384 tokens/step, compiled (whole model)", 5185.1, 1.289,
             "bench/RESULTS.md, 'FP8 vs bf16, third session': lowest of three runs (1.325x, 1.297x, 1.289x)",
             "nemotron-h-1b-wide", 16384),
    Fp8Point("h100", "trial-d1024 Linear layers alone, 32,768 tokens/forward, compiled", 1543.2, 0.956,
             "bench/bench_fp8_gemm.py, bench/RESULTS.md 'Session of 2026-12-06 (fourth)' (H100): fp8 89.44 vs bf16 "
             "85.50 ms a forward + backward of the 48 converted layers", "bench/specs/trial-d1024.yaml", 32768,
             layers_only=True),
    Fp8Point("h100", "trial-d1024 (bench/specs), 32,768 tokens/step, compiled (whole model)", 1543.2, 1.055,
             "bench/gpu/trial_speed.sh, bench/RESULTS.md 'Session of 2026-12-06 (fifth)' (H100): compiled fp8 "
             "122.4 ms vs compiled bf16 129.2 ms a step", "bench/specs/trial-d1024.yaml", 32768),
    Fp8Point("h200", "trial-d1024 (bench/specs), 32,768 tokens/step, compiled (whole model), 10 steps", 1543.2, 1.067,
             "bench/gpu/trial_speed.sh, bench/RESULTS.md 'Session of 2026-12-06 (seventh)' (H200): compiled fp8 "
             "108.7 ms vs compiled bf16 116.0 ms a step", "bench/specs/trial-d1024.yaml", 32768),
    Fp8Point("h200", "nemotron-h-1b, 16,384 tokens/step, compiled (whole model)", 2803.2, 1.142,
             "bench/profile_training.py, bench/RESULTS.md 'Session of 2026-12-06 (seventh)' (H200): 91,156 vs "
             "79,794 tokens/s", "nemotron-h-1b", 16384),
    Fp8Point("h100", "trial-d1024 (bench/specs), 32,768 tokens/step, compiled layer by layer (the study default then), "
             "10 steps", 1543.2, 1.005,
             "bench/gpu/trial_speed.sh, bench/RESULTS.md 'Session of 2026-12-07 (fourth)' (H100): compiled fp8 "
             "128.1 ms vs compiled bf16 128.7 ms a step", "bench/specs/trial-d1024.yaml", 32768),
    Fp8Point("h100", "trial-d1024 (bench/specs), 32,768 tokens/step, the study default since 2026-12-08 (compiled "
             "layer by layer, fused Mamba mixer, our gated norm, the step as one CUDA graph), 10 steps", 1543.2, 1.003,
             "bench/gpu/trial_speed.sh d1024_fused_graph, bench/RESULTS.md 'Session of 2026-12-08 (eleventh)' (H100): "
             "fp8 110.1 ms vs bf16 110.4 ms a step", "bench/specs/trial-d1024.yaml", 32768),
    Fp8Point("h100", "nemotron-h-1b Linear layers alone, 32,768 tokens/forward, compiled", 2928.5, 1.204,
             "bench/bench_fp8_gemm.py, bench/RESULTS.md 'Session of 2026-12-06 (fourth)' (H100): fp8 232.94 vs "
             "bf16 280.56 ms a forward + backward of the 64 converted layers", "nemotron-h-1b", 32768,
             layers_only=True),
)
# Hopper chips share tensor cores; the H200's faster memory only makes the casts cheaper, so a gain measured on
# the H100 holds on the H200, not the reverse. A loss counts on both: fp8's launch overhead (trial-d1024 layer by
# layer on the H100: kernels 4.6 ms faster, idle 8.5 ms longer) does not shrink with faster memory, and fp8 must not
# be taken where it may not pay. `points_for` applies this.
GAINS_HOLD_ON = {"h100": ("h200",)}  # a gain measured on the key's chip holds on these chips
LOSSES_HOLD_ON = {"h100": ("h200",), "h200": ("h100",)}  # a loss measured on the key's chip holds on these


def linear_shapes(spec: ModelSpec, min_dim: int) -> list[tuple[str, int, int]]:
    """(name, in, out) of each Linear layer FP8 would convert: as archsearch.training.fp8.skip_reason, both dims
    multiples of 16 and >= min_dim; the LM head never (it is not among these)."""
    shapes = [(f"layers.{layer.index}.mixer.{name}", k, o)  # the builder's module names
              for layer in spec.layers for name, k, o in layer.block.linears(spec.d_model)]
    return [(n, k, o) for n, k, o in shapes if k % FP8_ALIGN == 0 and o % FP8_ALIGN == 0 and min(k, o) >= min_dim]


def linear_intensity(spec: ModelSpec, tokens_per_step: int, min_dim: int = 512) -> float:
    """GEMM FLOPs per cast element over the layers FP8 would convert (0 when none would be)."""
    m = tokens_per_step
    shapes = linear_shapes(spec, min_dim)
    flops = sum(2 * m * k * n for _, k, n in shapes)
    casts = sum(m * k + k * n + m * n for _, k, n in shapes)
    return flops / casts if casts else 0.0


def chip_of(device_name: str) -> str | None:
    """The chip word of a CUDA device name ("NVIDIA H100 80GB HBM3" -> "h100"), None when it has none."""
    found = re.search(r"\b([a-z]{1,3}\d{2,4}[a-z]?)\b", device_name.lower())
    return found.group(1) if found else None


def points_for(chip: str, table: tuple[Fp8Point, ...] = MEASURED) -> list[Fp8Point]:
    """The points that speak for `chip`: its own, and the other chips' that carry over (GAINS_HOLD_ON,
    LOSSES_HOLD_ON)."""
    return [p for p in table if p.chip == chip
            or chip in (GAINS_HOLD_ON if p.speedup >= GAIN else LOSSES_HOLD_ON).get(p.chip, ())]


@dataclass(frozen=True)
class Fp8Decision:
    use_fp8: bool
    reason: str
    intensity: float

    def to_dict(self) -> dict:
        return {"use_fp8": self.use_fp8, "reason": self.reason, "intensity": round(self.intensity, 1)}


def decide_fp8(spec: ModelSpec, tokens_per_step: int, device_name: str, *, min_dim: int = 512,
               table: tuple[Fp8Point, ...] = MEASURED) -> Fp8Decision:
    """Whether `precision: auto` trains `spec` in fp8 on `device_name` at `tokens_per_step`, and why."""
    intensity = linear_intensity(spec, tokens_per_step, min_dim)
    where = f"GEMM intensity {intensity:.0f} FLOP/cast element at {tokens_per_step:,} tokens/step"
    if intensity == 0:
        return Fp8Decision(False, f"bf16: no Linear layer fp8 would convert (fp8_min_dim {min_dim})", 0.0)
    chip = chip_of(device_name)
    points = points_for(chip, table) if chip else []
    if not points:
        return Fp8Decision(False, f"bf16: no fp8 measurement for {device_name!r} (run bench/bench_fp8_gemm.py "
                                  "there and add its rows to archsearch/training/fp8_table.py)", intensity)
    step_losses = [p for p in points if p.speedup < GAIN and not p.layers_only]
    whole_step_gains = [p for p in points if p.speedup >= GAIN and not p.layers_only  # contradicted ones void
                        and not any(loss.intensity >= p.intensity - ROUNDING for loss in step_losses)]
    gains = [p for p in whole_step_gains if p.intensity <= intensity + ROUNDING]
    losses = [p for p in points if p.speedup < GAIN and p.intensity >= intensity - ROUNDING
              and not (p.layers_only and any(g.intensity <= p.intensity + ROUNDING for g in whole_step_gains))]
    if gains and not losses:
        best = max(gains, key=lambda p: (p.intensity, p.chip == chip))  # on a tie, this chip's own
        return Fp8Decision(True, f"fp8: {where} >= {best.intensity:.0f} of {best.what}, measured {best.speedup:.3f}x "
                                 f"bf16 on the {best.chip.upper()} ({best.source})", intensity)
    if losses:
        worst = min(losses, key=lambda p: (p.intensity, p.layers_only, p.chip != chip))  # a whole step's first
        return Fp8Decision(False, f"bf16: {where} <= {worst.intensity:.0f} of {worst.what}, where fp8 measured "
                                  f"{worst.speedup:.3f}x bf16 on the {worst.chip.upper()}, no gain "
                                  f"({worst.source})", intensity)
    smallest = min(whole_step_gains, key=lambda p: (p.intensity, p.chip != chip), default=None)
    if smallest is None:  # layers-alone gains only: they leave the casts around the layers out
        return Fp8Decision(False, f"bf16: {where}; no whole-step fp8 gain is measured for this chip", intensity)
    return Fp8Decision(False, f"bf16: {where} is below every measured fp8 gain for this chip; the smallest is at "
                              f"{smallest.intensity:.0f} ({smallest.what}, {smallest.chip.upper()})", intensity)
