"""The training recipe: everything about a run except the model and the task. Frozen, JSON-serialisable, so study
files can embed it and a run folder records it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from archsearch import limits
from archsearch.errors import UserError

from .budget import parse_flops, parse_tokens

PositiveInt = Annotated[int, Field(ge=1)]
# Bounded counts (archsearch.limits, shared with the CLI's options): a typo such as batch_size 10**7 is refused
# before anything is allocated.
Steps = Annotated[int, Field(ge=1, le=limits.MAX_STEPS)]
Batch = Annotated[int, Field(ge=1, le=limits.MAX_BATCH)]
SeqLen = Annotated[int, Field(ge=1, le=limits.MAX_SEQ_LEN)]
GradAccum = Annotated[int, Field(ge=1, le=limits.MAX_GRAD_ACCUM)]
EvalBatches = Annotated[int, Field(ge=1, le=limits.MAX_EVAL_BATCHES)]
Fp8MinDim = Annotated[int, Field(ge=1, le=limits.MAX_FP8_MIN_DIM)]
Fraction = Annotated[float, Field(gt=0, lt=1)]  # of the resolved run's steps (archsearch.training.budget)
DEFAULT_STEPS = 200
COMPILE_SCOPES = ("model", "layers")
_BOOL = TypeAdapter(bool)
# what `compile: true` means: on the H200 the 100M trial's step is 91.9 ms layer by layer vs 91.0 ms whole, and a
# study's later trials start in 0.5 s since each distinct layer compiles once (bench/RESULTS.md, 2026-12-06)
DEFAULT_COMPILE_SCOPE = "layers"


class Distillation(BaseModel):
    """A teacher (a run folder holding spec.yaml and model.safetensors) whose logits supervise the student.

    loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * next-token loss, on the task's target positions.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    teacher: Annotated[str, Field(min_length=1)]
    temperature: Annotated[float, Field(gt=0, le=limits.MAX_TEMPERATURE)] = 1.0
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.5


class Recipe(BaseModel):
    """How to train. `precision` None means fp32 on CPU and bf16 autocast on CUDA; "auto" (the default of study
    trials) the same, except that on a GPU fp8 is chosen where measurements show this spec's GEMMs gain from it
    (archsearch.training.fp8_table, the decision and its reason recorded in the run's result).

    The run's length is exactly one of `steps`, `tokens` (4096, 512k, 5M: k / M as spec sizes, x1024) or `flops`
    (training FLOPs: 3e15, 3P); none given means 200 steps. Tokens and FLOPs become steps per spec
    (archsearch.training.budget.resolve_budget), so under one FLOPs budget a smaller model trains more steps.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    steps: Steps | None = None
    tokens: PositiveInt | None = None
    flops: Annotated[float, Field(gt=0)] | None = None
    batch_size: Batch = 16
    seq_len: SeqLen = 256
    grad_accum: GradAccum = 1
    lr: Annotated[float, Field(gt=0, le=limits.MAX_LR)] = 3e-3
    min_lr: Annotated[float, Field(ge=0)] = 3e-4
    warmup: Annotated[int, Field(ge=0, le=limits.MAX_STEPS)] | Fraction = 20  # steps, or a fraction of the run
    schedule: Literal["cosine", "wsd", "constant"] = "cosine"
    decay_fraction: Annotated[float, Field(gt=0, le=1)] = 0.2  # wsd: the last fraction of steps decays to min_lr
    weight_decay: Annotated[float, Field(ge=0)] = 0.1
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.9, 0.95)
    eps: Annotated[float, Field(gt=0)] = 1e-8
    grad_clip: Annotated[float, Field(ge=0)] = 1.0  # 0: no clipping
    precision: Literal["bf16", "fp8", "fp32", "auto"] | None = None
    require_fp8: bool = False
    fp8_recipe: Literal["tensorwise", "rowwise"] = "tensorwise"
    fp8_emulate: bool = False  # torchao's emulation (fp32 math with fp8 rounding): lets CPUs run the fp8 path
    fp8_min_dim: Fp8MinDim = 512  # Linear layers with a smaller in or out dimension stay in bf16 (too small to gain)
    # torch.compile: "layers" (= true: each residual layer on its own, one program per distinct layer serves every
    # pattern; training/compile_session.py), "model" (the whole forward as one program), or "auto" (the default
    # of study trials): layers on a GPU, eager on a CPU, where inductor's compile outweighs a short trial's steps
    compile: bool | Literal["model", "layers", "auto"] = False
    # the whole step (every micro-batch's forward and backward, clipping, the optimizer) as one CUDA graph after
    # two plain steps: one host call a step instead of one a kernel (training/step_graph.py); a run where it cannot
    # apply (CPU, data-parallel, a failed capture) steps as usual and records why. "auto": the same, and a
    # distillation step (which true refuses) steps as usual too
    cuda_graph: bool | Literal["auto"] = False
    # CPU intra-op threads; None: one for models under 5M parameters, torch's default otherwise (training/threads.py)
    cpu_threads: Annotated[int, Field(ge=1, le=1024)] | None = None
    eval_every: Steps | Fraction = 50  # steps, or a fraction of the run
    eval_batches: EvalBatches = 4
    log_every: Steps = 10  # training points of the recorded curve (the first and last step always)
    checkpoint_every: Steps | None = None  # None: only at the end (and when a callback stops the run)
    seed: Annotated[int, Field(ge=0, le=limits.MAX_SEED)] = 0
    distill: Distillation | None = None
    # finetuning: start from this run folder's model.safetensors (same tensor names and shapes) instead of a fresh
    # initialisation; the rest of the recipe (optimizer, schedule, length) starts anew
    init_from: Annotated[str, Field(min_length=1)] | None = None

    @field_validator("tokens", "flops", mode="before")
    @classmethod
    def _budget(cls, value, info: ValidationInfo):
        parse = parse_tokens if info.field_name == "tokens" else parse_flops
        try:
            return None if value is None else parse(value, info.field_name)
        except UserError as err:
            raise ValueError(str(err)) from None

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_scope(cls, value):
        # the union's own error names only its bool branch ("unable to interpret 'layer'")
        if isinstance(value, str) and (value in COMPILE_SCOPES or value == "auto"):
            return value
        try:
            return _BOOL.validate_python(value)  # true, "yes", 0, ... as a plain bool field takes them
        except ValidationError:
            pass
        raise ValueError(f"compile {value!r} is not allowed; allowed: true (= {DEFAULT_COMPILE_SCOPE!r}), false, "
                         f"{', '.join(repr(s) for s in COMPILE_SCOPES)}, 'auto' ({DEFAULT_COMPILE_SCOPE!r} on a GPU, "
                         f"false on a CPU)")

    @field_validator("cuda_graph", mode="before")
    @classmethod
    def _cuda_graph(cls, value):
        if value == "auto":
            return value
        try:
            return _BOOL.validate_python(value)
        except ValidationError:
            pass
        raise ValueError(f"cuda_graph {value!r} is not allowed; allowed: true, false, 'auto' (true where the step can "
                         f"be captured, distillation included as plain steps)")

    @field_validator("warmup", "eval_every", mode="before")
    @classmethod
    def _steps_or_fraction(cls, value, info: ValidationInfo):
        # 1.0 would otherwise pass as the integer 1: "the whole run" read as "every step"
        if isinstance(value, str) and not value.strip().isdigit():
            try:
                value = float(value)  # "1.0" as text is the same question as 1.0
            except ValueError:
                pass  # the field's own error names it
        if isinstance(value, float) and value >= 1:
            raise ValueError(f"{info.field_name} {value!r} is neither: a fraction of the run is below 1 (e.g. 0.25), "
                             f"steps are an integer (e.g. {int(value)})")
        return value

    @model_validator(mode="after")
    def _check(self) -> "Recipe":
        given = [k for k in ("steps", "tokens", "flops") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give the run's length once: {' and '.join(given)} are both set; allowed: exactly one "
                             f"of steps, tokens, flops")
        if not given:  # the default length (frozen model: set through __dict__, as pydantic does)
            self.__dict__["steps"] = DEFAULT_STEPS
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must be <= lr ({self.lr})")
        if self.cuda_graph is True and self.distill is not None:
            raise ValueError("cuda_graph: true cannot capture a distillation step (its loss selects target positions "
                             "by a mask of data-dependent size); allowed: cuda_graph false or 'auto' (plain steps "
                             "when distilling) with distill, or no distill")
        if self.require_fp8 and self.precision != "fp8":
            raise ValueError(f"require_fp8 needs precision: fp8 (got {self.precision})")
        return self

    @property
    def budget_kind(self) -> str:
        """How the length is given: "steps", "tokens" or "flops"."""
        return "tokens" if self.tokens is not None else "flops" if self.flops is not None else "steps"

    def compile_scope(self, device_type: str) -> str | None:
        """None (eager), "model" or "layers" for a run on `device_type` ("cuda", "cpu")."""
        if self.compile is False or (self.compile == "auto" and device_type != "cuda"):
            return None
        return DEFAULT_COMPILE_SCOPE if self.compile in (True, "auto") else self.compile

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.seq_len

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")
