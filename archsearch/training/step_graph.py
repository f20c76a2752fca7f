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
that the fused AdamW reads in its capturable form, and the gradients in the graph's own memory; from then on a step
copies its batches into those buffers, sets the learning rate and replays. The kernels and the data are the plain
step's; only the optimizer takes its capturable path.

Where it does not apply (a CPU, a data-parallel run, Transformer Engine's fp8, a capture that fails), steps run as
before, and the run's record says which and why (result.extra["cuda_graph"]); with a teacher, a recipe refuses
`cuda_graph: true` and "auto" steps plain.
Memory: the graph keeps its step's activations allocated between steps, and an evaluation allocates beside them.
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


def unsupported(device: torch.device, data_parallel: bool, fp8_backend: str | None,
                distilling: bool = False) -> str | None:
    """Why a run's step cannot be one CUDA graph, or None."""
    if distilling:  # recipe cuda_graph "auto" with a teacher (true is refused by the recipe)
        return "a distillation step is not captured (its loss selects positions by a mask of data-dependent size)"
    if device.type != "cuda":
        return f"needs a CUDA device (this run is on {device.type})"
    if data_parallel:
        return "a data-parallel run is not captured (DDP's gradient hooks)"
    if fp8_backend == "transformer_engine":
        return "Transformer Engine's fp8 keeps its scaling state on the host (it graphs through its own API)"
    return None


def plain_step(optimizer: torch.optim.Optimizer, device: torch.device, body: StepBody, batches: list[Batch],
               lr: float, keep_gradients: bool = False) -> StepOutputs:
    """One uncaptured step: the learning rate set, the gradients cleared (or zeroed in place: a graph's own buffers),
    the micro-batches moved to the device and the body run."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=not keep_gradients)
    return body([batch.to(device) for batch in batches])


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
        """(replay, the outputs' static tensors). Nothing runs: the first replay does the captured step.

        Not torch.cuda.graph: when a capture fails (an op that waits for the host invalidates it), its exit raises
        from capture_end before it restores the current stream or tells the caching allocator that the capture is
        over, which breaks every later allocation and capture of the process (a study's next trial). Here the
        stream is restored whatever happens, the allocator is told, the graph's memory pool released, and the
        error raised is the body's, not the invalidated capture's."""
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()  # the plain steps' cached blocks, which the graph's own pool cannot use
        pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.stream(self.stream):
            graph.capture_begin(pool=pool)
            try:
                outputs = body()
            except BaseException:
                self._abandon(graph, pool)
                raise
            try:
                graph.capture_end()
            except BaseException:
                self._release(pool)
                raise
        return graph.replay, outputs

    def free_cached(self) -> None:
        """Gives the caching allocator's free blocks back to the device (a released graph's pool among them)."""
        torch.cuda.empty_cache()

    def _abandon(self, graph: torch.cuda.CUDAGraph, pool: Any) -> None:
        try:
            graph.capture_end()  # ends the stream's capture; raises when the capture was invalidated
        except RuntimeError:
            self._release(pool)
        else:
            graph.reset()  # frees the graph and its pool

    def _release(self, pool: Any) -> None:
        """Undo what a capture whose capture_end failed left behind: the allocator still routing to the graph's
        pool (then the pool given back: its blocks are freed once the tensors allocated in it are), and the device's
        random generator still in capture mode. Each step may already be done where a newer torch does it itself
        (it then raises, and the body's error stays the one reported)."""
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        with contextlib.suppress(RuntimeError):
            torch._C._cuda_endAllocateToPool(index, pool)
        with contextlib.suppress(RuntimeError):
            torch._C._cuda_releasePool(index, pool)
        with contextlib.suppress(RuntimeError):
            self._settle_generator()

    def _settle_generator(self) -> None:
        """capture_end takes the device's random generator out of capture mode only when it succeeds (torch 2.11);
        left in it, every later random draw on the device raises ("Offset increment outside graph capture"), such
        as the next trial's weight initialisation. A capture that ends normally takes it out."""
        scratch = torch.zeros(1, device=self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.stream(self.stream):
            graph.capture_begin()
            scratch.add_(1)
            graph.capture_end()
        graph.reset()


class StepGraph:
    """Runs a run's steps: plain ones first, then one captured step replayed (module docstring)."""

    def __init__(self, optimizer: torch.optim.Optimizer, device: torch.device, runtime: Any = None,
                 warmup_steps: int = WARMUP_STEPS):
        self.optimizer, self.device = optimizer, device
        self.runtime = runtime if runtime is not None else CudaRuntime(device)
        self.lr = torch.zeros((), dtype=torch.float32, device=device)  # what the captured optimizer reads
        self.warmup_steps = self.warmup_left = warmup_steps
        self.inputs: list[Batch] | None = None  # the static micro-batches the graph reads
        self.replay: Callable[[], None] | None = None
        self.outputs: StepOutputs | None = None
        self.tried_at: int | None = None  # the step (1-based, as Trainer.step counts) whose capture was tried
        self.captured_at: int | None = None  # the same step if the capture succeeded
        self.failed: str | None = None  # why the capture failed: later steps run plain
        self.plain_steps = 0  # steps after the capture that ran plain: their batches had another shape

    def step(self, body: StepBody, batches: list[Batch], lr: float, step: int) -> StepOutputs:
        """One optimizer step on these micro-batches (on the host or the device), queued on the device. After the
        capture the outputs are the graph's static tensors: read (copy) them before the next step overwrites them.
        The body is passed in, not kept, so the graph holds no reference to its trainer (and to its run's memory)."""
        if self.replay is None and self.failed is None:
            if self.warmup_left > 0:
                self.warmup_left -= 1
                with self.runtime.side_stream():
                    return plain_step(self.optimizer, self.device, body, batches, lr)
            self._capture(body, batches, lr, step)
        if self.replay is None:
            return plain_step(self.optimizer, self.device, body, batches, lr)
        if not self._load(batches, lr):
            self.plain_steps += 1
            # into the graph's own gradient buffers (p.grad still holds them), so none are allocated beside them
            outputs = plain_step(self.optimizer, self.device, body, batches, lr, keep_gradients=True)
            for group in self.optimizer.param_groups:  # what the captured optimizer reads, for the next replay
                group["lr"] = self.lr
            return outputs
        self.replay()
        return self.outputs

    def release(self) -> None:
        """Gives the graph and its memory pool back once the run's steps are over: the pool keeps the step's
        activations' blocks, which the final scoring (an evaluation, a recall probe, an fp32 copy of an fp8 model)
        and the process's next trial could not use otherwise. A later step would capture anew."""
        if self.replay is None:
            return
        self.inputs = self.replay = self.outputs = None  # the graph goes with its replay
        for group in self.optimizer.param_groups:
            group["lr"] = float(self.lr)
        self.optimizer.zero_grad(set_to_none=True)  # the gradients were allocated in the graph's pool
        self.runtime.free_cached()

    def describe(self) -> str:
        """What the run's steps did, for its record."""
        if self.failed is not None:
            return f"off: {self.failed}"
        if self.captured_at is None:
            return f"on, not captured: the run ended within its {self.warmup_steps} plain warm-up steps"
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

    def _capture(self, body: StepBody, batches: list[Batch], lr: float, step: int) -> None:
        self.inputs = [Batch(torch.empty(b.input_ids_BT.shape, dtype=b.input_ids_BT.dtype, device=self.device),
                             torch.empty(b.targets_BT.shape, dtype=b.targets_BT.dtype, device=self.device))
                       for b in batches]
        self._load(batches, lr)
        groups = self.optimizer.param_groups
        before = [(group.get("capturable", False), group["lr"]) for group in groups]
        for group in groups:
            group["capturable"], group["lr"] = self.runtime.capturable, self.lr
        self.optimizer.zero_grad(set_to_none=True)  # the captured backward allocates them in the graph's memory
        inputs = self.inputs
        self.tried_at = step + 1
        try:
            self.replay, self.outputs = self.runtime.capture(lambda: body(inputs))
            self.captured_at = step + 1
        except Exception as err:  # e.g. an op that waits for the host: the run goes on with plain steps
            self.failed = f"the capture at step {step + 1} failed ({type(err).__name__}: {str(err)[:300]})"
        if self.failed is not None:  # outside the except block, so the traceback's tensors are gone first
            for group, (capturable, group_lr) in zip(groups, before):
                group["capturable"], group["lr"] = capturable, group_lr
            self.optimizer.zero_grad(set_to_none=True)
            self.inputs = self.replay = self.outputs = None
