"""Everything before the first step: validate the inputs (each mistake a clear error before anything heavy runs),
build the task, the model (FP8-converted, compiled), the optimizer and the teacher, and restore a checkpoint."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager

import torch
from pydantic import ValidationError
from torch import nn

from archsearch.errors import UserError
from archsearch.outputs import check_output
from archsearch.spec import ModelSpec

from . import checkpoint
from .budget import Budget, resolve_budget
from .compile_session import compile_layers, compile_model, fp8_within, layer_program, program_of, signature
from .distill import Teacher, check_teacher, held_teacher, load_teacher
from .distributed import SINGLE, Parallel
from .fp8 import Fp8Converter, convert_model
from .precision import PrecisionPlan, plan_precision
from .recipe import Recipe
from .threads import apply_cpu_threads
from .tasks import Task, TaskSpec, make_task

# recipe fields a resumed run may change without leaving the original trajectory
RESUMABLE_CHANGES = {"steps", "tokens", "flops", "eval_every", "eval_batches", "checkpoint_every", "log_every",
                     "compile", "cuda_graph"}


@dataclass
class Prepared:
    spec: ModelSpec
    task_spec: TaskSpec
    recipe: Recipe
    task: Task
    device: torch.device
    precision: PrecisionPlan
    model: nn.Module  # the module whose weights are saved (never the compiled wrapper)
    forward: nn.Module  # what runs: `model` (DDP-wrapped when data-parallel), compiled whole or layer by layer
    optimizer: torch.optim.Optimizer
    converter: Fp8Converter | None
    fp8_layers: list[str]
    teacher: Teacher | None
    out_dir: Path | None
    state: dict[str, Any] = field(default_factory=dict)  # restored state.json (resume), else empty
    parallel: Parallel = SINGLE  # this process's rank in a data-parallel run
    budget: Budget | None = None  # the recipe's length resolved for this spec and seq_len
    compile_info: dict[str, Any] | None = None  # compile_session's record of the compile (compiled runs)
    setup_s: float = 0.0  # prepare()'s own time: build, conversion, restore (compiling happens at the first step)

    def autocast(self) -> ContextManager:
        if self.precision.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.precision.autocast_dtype)

    def fp8_context(self) -> ContextManager:
        return self.converter.forward_context() if self.converter is not None else contextlib.nullcontext()


def training_device(device: str | None) -> torch.device:
    """Where a training runs: cpu or an available cuda device; None picks cuda when there is one."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"device {device!r} is not a device; allowed: cpu, cuda, cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r}: CUDA is not available here; allowed: cpu")
    if resolved.type not in ("cpu", "cuda"):
        raise UserError(f"device {device!r}: training runs on cpu or cuda")
    return resolved


def check_fit(spec: ModelSpec, task: Task) -> None:
    if task.seq_len > spec.max_context:
        raise UserError(f"seq_len {task.seq_len} is above the spec's max_context {spec.max_context} "
                        f"({spec.name}); lower the recipe's seq_len or the task's seq_len option")
    if task.vocab_size > spec.vocab_size:
        raise UserError(f"task {task.name!r} needs {task.vocab_size} token ids but the spec's vocab_size is "
                        f"{spec.vocab_size}; raise vocab_size to >= {task.vocab_size} "
                        f"{task.vocab_advice(spec.vocab_size)}")


def resumed_definition(out: Path, spec: ModelSpec | None, task: TaskSpec | None,
                       recipe: Recipe | None) -> tuple[ModelSpec, TaskSpec, Recipe]:
    """The saved run's spec/task/recipe; given ones must match them (the recipe may change RESUMABLE_CHANGES)."""
    saved_spec, saved_recipe, saved_task = checkpoint.read_definition(out)
    try:  # before any comparison: a damaged task.json is named as such, not reported as a different task
        saved = TaskSpec.model_validate(saved_task)
    except ValidationError as err:
        raise UserError(f"resume: {str(out / 'task.json')!r} is not a task: {err}; the run folder is damaged: "
                        "restore the file, or start a new run in another folder") from None
    if spec is not None and spec.to_dict() != saved_spec.to_dict():
        raise UserError(f"resume: the spec differs from the one saved in {str(out)!r}")
    if task is not None and task.to_dict() != saved_task:
        raise UserError(f"resume: the task {task.to_dict()} differs from the saved {saved_task}")
    if recipe is None:
        try:
            recipe = Recipe.model_validate(saved_recipe)
        except ValidationError as err:
            raise UserError(f"resume: {str(out)!r}/recipe.json is invalid: {err}") from None
    changed = sorted(k for k, v in recipe.to_dict().items() if saved_recipe.get(k) != v and k not in RESUMABLE_CHANGES)
    if changed:
        raise UserError(f"resume: recipe field(s) {', '.join(changed)} differ from the saved run; only "
                        f"{', '.join(sorted(RESUMABLE_CHANGES))} may change")
    return saved_spec, saved, recipe


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices and embeddings; never norms, biases or Mamba's per-head A_log / D / dt_bias (all 1-D)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def load_start_weights(model: nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
    """`train(init_weights=...)`: every tensor of the model, by name and shape, or a UserError naming the misfits."""
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:  # missing, unexpected or misshapen tensors: torch lists them all
        raise UserError(f"init_weights do not fit the spec's model: {str(err)[:400]}") from None


def compiled_forward(model: nn.Module, spec: ModelSpec, recipe: Recipe, plan: PrecisionPlan, fp8_layers: list[str],
                     seq_len: int, device: torch.device, parallel: Parallel,
                     teacher: bool) -> tuple[nn.Module, dict[str, Any] | None]:
    """What a step runs: the model (DDP-wrapped when data-parallel), compiled as the recipe says, and the compile
    record. Layers are compiled inside DDP's wrapper, the whole model outside it."""
    shapes = dict(rows=recipe.batch_size // parallel.world_size, seq_len=seq_len, precision=plan.name,
                  fp8_backend=plan.fp8_backend, fp8_recipe=recipe.fp8_recipe, device=str(device),
                  world_size=parallel.world_size)
    scope = recipe.compile_scope(device.type)
    if scope == "layers":
        programs = {symbol: layer_program(spec, symbol) for symbol in spec.blocks}
        keys = [signature(layer=programs[layer.symbol], fp8_layers=fp8_within(fp8_layers, layer.index), **shapes)
                for layer in spec.layers]
        forward, info = compile_layers(model, keys)
        return parallel.wrap(forward, device), info
    forward = parallel.wrap(model, device)
    if scope == "model":
        return compile_model(forward, signature(spec=program_of(spec), fp8_layers=fp8_layers, teacher=teacher,
                                                **shapes))
    return forward, None


def prepare(spec: ModelSpec | None, task: TaskSpec | str | None, recipe: Recipe | None, *, out_dir: Path | None,
            device: str | None, resume: bool, parallel: Parallel = SINGLE, teacher_model: nn.Module | None = None,
            init_weights: Mapping[str, torch.Tensor] | None = None) -> Prepared:
    """Everything before the first step. `teacher_model`: the model of `recipe.distill.teacher` already in memory
    (train()'s `teacher`); `init_weights`: a state dict the model starts from (train()'s `init_weights`)."""
    started = time.perf_counter()
    if init_weights is not None and resume:
        raise UserError("init_weights start a new run; a resumed run continues its own checkpoint")
    out = Path(out_dir).expanduser() if out_dir is not None else None
    task_spec = TaskSpec.coerce(task) if task is not None else None
    if resume:
        if out is None:
            raise UserError("resume needs out_dir (the run folder to continue)")
        spec, task_spec, recipe = resumed_definition(out, spec, task_spec, recipe)
    else:
        if spec is None or task_spec is None or recipe is None:
            raise UserError("train needs a spec, a task and a recipe (or resume=True with a run folder)")
        if out is not None:
            check_output(out, "out_dir", folder=True)
        if out is not None and checkpoint.has_checkpoint(out):
            raise UserError(f"out_dir {str(out)!r} already holds a run (or part of one); resume it or choose "
                            "another folder")
    if not isinstance(spec, ModelSpec):
        raise UserError(f"spec must be an archsearch ModelSpec (load one with load_spec), got {type(spec).__name__}")
    torch_device = training_device(device)
    apply_cpu_threads(torch_device, spec, recipe.cpu_threads)
    task_obj = make_task(task_spec, recipe.seq_len, recipe.seed)
    check_fit(spec, task_obj)
    budget = resolve_budget(recipe, spec, task_obj.seq_len)  # a length that buys no step fails before the build
    # the rows of one forward's GEMMs: one micro-batch of this rank (what precision auto's table is measured at)
    plan = plan_precision(recipe, torch_device, spec, recipe.batch_size // parallel.world_size * task_obj.seq_len)
    if init_weights is not None and recipe.init_from is not None:
        raise UserError("init_weights and recipe.init_from both give starting weights; pass one")
    if teacher_model is not None and recipe.distill is None:
        raise UserError("a teacher model was given but the recipe has no distill: section naming it")
    teacher_spec = check_teacher(recipe.distill, spec, task_obj) if recipe.distill is not None else None

    from archsearch.builder import build

    torch.manual_seed(recipe.seed)
    model = build(spec, torch_device, torch.float32, seed=recipe.seed)  # fp32 master weights
    if recipe.init_from is not None and not resume:  # a resumed finetuning continues its own checkpoint
        checkpoint.load_initial_weights(Path(recipe.init_from).expanduser(), model, torch_device)
    if init_weights is not None:
        load_start_weights(model, init_weights)
    converter, fp8_layers = None, []
    if plan.fp8_backend is not None:
        converter, fp8_layers = convert_model(model, plan.fp8_backend, recipe)
    optimizer = torch.optim.AdamW(parameter_groups(model, recipe.weight_decay), lr=recipe.lr, betas=recipe.betas,
                                  eps=recipe.eps, fused=torch_device.type == "cuda")
    state: dict[str, Any] = {}
    if resume:
        state = checkpoint.load_checkpoint(out, model, optimizer, torch_device)
        if parallel.writer:
            checkpoint.write_json(out / "recipe.json", recipe.to_dict())  # steps etc. may have changed
    elif out is not None and parallel.writer:
        checkpoint.write_definition(out, spec, recipe.to_dict(), task_spec.to_dict())
    teacher = None
    if teacher_model is not None:
        teacher = held_teacher(recipe.distill, teacher_spec, teacher_model, torch_device)
    elif teacher_spec is not None:
        teacher = load_teacher(recipe.distill, teacher_spec, torch_device)
    forward, compile_info = compiled_forward(model, spec, recipe, plan, fp8_layers, task_obj.seq_len, torch_device,
                                             parallel, teacher=teacher_spec is not None)
    return Prepared(spec, task_spec, recipe, task_obj, torch_device, plan, model, forward, optimizer, converter,
                    fp8_layers, teacher, out, state, parallel, budget, compile_info, time.perf_counter() - started)
