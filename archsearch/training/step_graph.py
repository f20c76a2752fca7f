"""A training step as one CUDA graph (recipe `cuda_graph: true`), replayed at every step after a few plain ones.

Why: a compiled step of the 100M trial launches well over a thousand kernels, each one a host call (the Python
wrappers of inductor's and mamba-ssm's Triton kernels, autograd's engine), and its GPU waits between them: on the
H100 the step took 97.1 ms for 81.2 ms of kernels (bench/RESULTS.md, 2026-12-07). Inductor's own CUDA graphs, one
per compiled layer, won back only 2% of that: a layer's forward graph is replayed while the backward of the one
before is pending, which sends its graph trees down their slow path. Replaying the whole step (forward and
backward of every micro-batch, clipping, the optimizer) is one host call.

How (PyTorch's "whole-network capture"): the first WARMUP_STEPS steps of a process run as usual, on a side stream:
compiling, autotuning and the optimizer's first state all happen there, and none of them may happen inside a
capture. The next step is captured with its batches in static input buffers, the learning rate as a device tensor
that the fused, capturable AdamW reads, and the gradients in the graph's own memory; from then on a step copies
its batches into those buffers, sets the learning rate and replays. The kernels and their inputs are the plain
step's, so are the numbers.

Where it does not apply (a CPU, a data-parallel run, a teacher's distillation loss, which selects positions by a
mask of data-dependent size, or a capture that fails), steps run as before, and the run's record says which and
why (result.extra["cuda_graph"]). Memory: the graph keeps its step's activations allocated between steps, and an
evaluation allocates beside them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from .tasks import Batch

WARMUP_STEPS = 2  # plain steps first: the first compiles and autotunes, the second runs what the capture will see
StepOutputs = tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]  # loss, gradient norm, loss parts
StepBody = Callable[[list[Batch]], StepOutputs]  # micro-batches on the device -> outputs, the optimizer stepped


def unsupported(device: torch.device, data_parallel: bool, teacher: bool) -> str | None:
    """Why a run's step cannot be one CUDA graph, or None."""
    if device.type != "cuda":
        return f"needs a CUDA device (this run is on {device.type})"
    if data_parallel:
        return "a data-parallel run is not captured (DDP's gradient hooks)"
    if teacher:
        return ("the distillation loss selects target positions by a mask of data-dependent size, which a graph "
                "cannot capture")
    return None


class CudaRuntime:
    """The CUDA side of StepGraph (tests put a CPU stand-in here)."""
    capturable = True  # the optimizer's flag: its step count and learning rate stay on the device

    def __init__(self, device: torch.device):
        self.device = device
        self.stream = torch.cuda.Stream(device)

    @contextlib.contextmanager
    def side_stream(self) -> Iterator[None]:
        """Work here runs on the capture's stream, ordered after and before the current stream's."""
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            yield
        current.wait_stream(self.stream)

    def capture(self, body: Callable[[], StepOutputs]) -> tuple[Callable[[], None], StepOutputs]:
        """(replay, the outputs' static tensors). Nothing runs: the first replay does the captured step."""
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream):
            outputs = body()
        return graph.replay, outputs


class StepGraph:
    """Runs a run's steps: plain ones first, then one captured step replayed (module docstring)."""

    def __init__(self, optimizer: torch.optim.Optimizer, body: StepBody, device: torch.device,
                 runtime: Any = None, warmup_steps: int = WARMUP_STEPS):
        self.optimizer, self.body, self.device = optimizer, body, device
        self.runtime = runtime if runtime is not None else CudaRuntime(device)
        self.lr = torch.zeros((), dtype=torch.float32, device=device)  # what the captured optimizer reads
        self.warmup_left = warmup_steps
        self.inputs: list[Batch] | None = None  # the static micro-batches the graph reads
        self.replay: Callable[[], None] | None = None
        self.outputs: StepOutputs | None = None
        self.captured_at: int | None = None  # the step (1-based, as Trainer.step counts) that was captured
        self.failed: str | None = None  # why the capture failed: later steps run plain
        self.plain_steps = 0  # steps after the capture that ran plain: their batches had another shape

    def step(self, batches: list[Batch], lr: float, step: int) -> StepOutputs:
        """One optimizer step on these micro-batches (on the host or the device), queued on the device."""
        if self.replay is None and self.failed is None:
            if self.warmup_left > 0:
                self.warmup_left -= 1
                with self.runtime.side_stream():
                    return self.plain(batches, lr)
            self._capture(batches, lr, step)
        if self.replay is None:
            return self.plain(batches, lr)
        if not self._load(batches, lr):
            self.plain_steps += 1
            outputs = self.plain(batches, lr)
            for group in self.optimizer.param_groups:  # what the captured optimizer reads, for the next replay
                group["lr"] = self.lr
            return outputs
        self.replay()
        loss, grad_norm, parts = self.outputs
        # the next replay overwrites the static outputs before this step's are read (Trainer reads one behind)
        return loss.clone(), grad_norm.clone(), {k: v.clone() for k, v in parts.items()}

    def plain(self, batches: list[Batch], lr: float) -> StepOutputs:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        return self.body([batch.to(self.device) for batch in batches])

    def describe(self) -> str:
        """What the run's steps did, for its record."""
        if self.failed is not None:
            return f"off: {self.failed}"
        if self.captured_at is None:
            return f"on, not captured: the run ended within its {WARMUP_STEPS} plain warm-up steps"
        extra = f"; {self.plain_steps} step(s) with batches of another shape ran plain" if self.plain_steps else ""
        return f"on: captured at step {self.captured_at}, replayed after{extra}"

    def _load(self, batches: list[Batch], lr: float) -> bool:
        """Copies the batches into the static inputs (False: their shapes differ, so the graph cannot run them)."""
        if len(batches) != len(self.inputs) or any(
                b.input_ids_BT.shape != s.input_ids_BT.shape or b.targets_BT.shape != s.targets_BT.shape
                for b, s in zip(batches, self.inputs)):
            return False
        for batch, static in zip(batches, self.inputs):
            for source, target in ((batch.input_ids_BT, static.input_ids_BT), (batch.targets_BT, static.targets_BT)):
                if source.device.type == "cpu" and target.device.type == "cuda":
                    source = source.pin_memory()  # queued behind the running step instead of waiting for it
                target.copy_(source, non_blocking=True)
        self.lr.fill_(lr)
        return True

    def _capture(self, batches: list[Batch], lr: float, step: int) -> None:
        self.inputs = [Batch(torch.empty(b.input_ids_BT.shape, dtype=b.input_ids_BT.dtype, device=self.device),
                             torch.empty(b.targets_BT.shape, dtype=b.targets_BT.dtype, device=self.device))
                       for b in batches]
        self._load(batches, lr)
        groups = self.optimizer.param_groups
        before = [(group.get("capturable", False), group["lr"]) for group in groups]
        for group in groups:
            group["capturable"], group["lr"] = self.runtime.capturable, self.lr
        self.optimizer.zero_grad(set_to_none=True)  # the captured backward allocates them in the graph's memory
        try:
            self.replay, self.outputs = self.runtime.capture(lambda: self.body(self.inputs))
            self.captured_at = step + 1
        except Exception as err:  # e.g. an op that waits for the host: the run goes on with plain steps
            for group, (capturable, group_lr) in zip(groups, before):
                group["capturable"], group["lr"] = capturable, group_lr
            self.optimizer.zero_grad(set_to_none=True)
            self.inputs, self.replay, self.outputs = None, None, None
            self.failed = f"the capture at step {step + 1} failed ({type(err).__name__}: {str(err)[:300]})"

