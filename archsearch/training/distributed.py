"""Inside one rank of a data-parallel run: who this process is, its share of each batch, and the reductions that
make the run's numbers those of the whole global batch.

The recipe's `batch_size` is the global batch. Every rank draws the same global batch (batches are deterministic
in (seed, index), so no data moves between ranks) and keeps its own contiguous slice of rows. Each rank divides
its loss sum by (global target count / world size), so DDP's mean of the ranks' gradients is the gradient of the
global mean loss: N processes follow the trajectory of one process over the same batch, up to float rounding.

DDP rather than FSDP2: the models a study trains (up to ~1B parameters: fp32 weights, grads and AdamW state ~16 GB)
fit one GPU, so sharding the parameters would only add all-gathers; DDP overlaps its gradient all-reduce with the
backward pass and keeps the fp32 master weights, safetensors checkpoints and fp8 converters of one process as
they are.

With `world_size == 1` every method is the identity, so a single-process run does exactly what it did before.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, ContextManager

import torch
from torch import nn

from archsearch.errors import UserError

from .tasks import Batch

# NVLink multicast (NVLS) stays off in every launched process: it has hung and corrupted collectives on the
# machines this project uses, and plain ring/tree all-reduce is enough for DDP of models this size.
LAUNCH_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}


@dataclass(frozen=True)
class Parallel:
    rank: int = 0
    world_size: int = 1
    backend: str | None = None  # "nccl" | "gloo" while a process group is up

    @property
    def writer(self) -> bool:
        """Only rank 0 writes the run folder, checkpoints and the result."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    # ------------------------------------------------------------------------------------------ data
    def shard(self, batch: Batch) -> Batch:
        """This rank's contiguous rows of the global batch."""
        if not self.active:
            return batch
        rows = batch.input_ids_BT.shape[0]
        check_divisible(rows, self.world_size)
        share = rows // self.world_size
        rows_slice = slice(self.rank * share, (self.rank + 1) * share)
        return Batch(batch.input_ids_BT[rows_slice], batch.targets_BT[rows_slice])

    def normalizer(self, n: torch.Tensor) -> torch.Tensor:
        """What this rank divides its loss sum by: the global target count over the world size (at least 1 in all),
        so that the mean over ranks of the per-rank losses is the global batch's mean loss."""
        if not self.active:
            return n.clamp(min=1)
        total = n.detach().to(torch.float64).clone()
        torch.distributed.all_reduce(total)
        return (total.clamp(min=1) / self.world_size).to(torch.float32)

    def sync(self, model: nn.Module, last_micro_batch: bool) -> ContextManager:
        """DDP all-reduces gradients on the last micro-batch of a step only (the others accumulate locally)."""
        if self.active and not last_micro_batch and hasattr(model, "no_sync"):
            return model.no_sync()
        return contextlib.nullcontext()

    # ------------------------------------------------------------------------------------------ reductions
    def average(self, total: torch.Tensor, parts: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        """The step's loss (and its parts) over the global batch: the mean of the ranks' losses, one all-reduce."""
        if not self.active:
            return total, parts
        names = list(parts)
        stacked = torch.stack([total.float(), *(torch.as_tensor(parts[k], device=total.device).float()
                                                for k in names)])
        torch.distributed.all_reduce(stacked)
        stacked /= self.world_size
        return stacked[0], {k: stacked[i + 1] for i, k in enumerate(names)}

    def sum_floats(self, *values: float) -> tuple[float, ...]:
        """Sums over ranks of per-rank numbers (evaluation loss sums and counts), in float64."""
        if not self.active:
            return values
        return tuple(self._reduce(list(values), torch.distributed.ReduceOp.SUM))

    def reduce_measures(self, tokens_per_s: float | None, peak_flops: float | None, memory: int | None, *,
                        together: bool = True) -> tuple[float | None, float | None, int | None, list[dict[str, Any]]]:
        """(tokens/s summed over ranks, peak FLOP/s summed, peak memory max, per-rank values).

        A rank times the global batch's tokens per step but processes 1/world_size of them, so its own rate is
        tokens_per_s / world_size; the run's rate is the sum of the ranks' own rates. `together=False` (a rank
        failed, the others may be elsewhere): this rank's own numbers, no collective that could hang."""
        if not self.active:
            return tokens_per_s, peak_flops, memory, []
        own = tokens_per_s / self.world_size if tokens_per_s is not None else None
        if not together:
            return own, peak_flops, memory, [{"rank": self.rank, "tokens_per_s": own, "peak_memory_bytes": memory}]
        mine = {"rank": self.rank, "tokens_per_s": own, "peak_memory_bytes": memory}
        ranks: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(ranks, mine)
        speed_sum, flops_sum = self._reduce([own or 0.0, peak_flops or 0.0], torch.distributed.ReduceOp.SUM)
        (memory_max,) = self._reduce([memory or 0], torch.distributed.ReduceOp.MAX)
        return (speed_sum if own is not None else None, flops_sum if peak_flops else None,
                int(memory_max) if memory is not None else None, ranks)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (a Python object)."""
        if not self.active:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def _reduce(self, values: list[float], op) -> list[float]:
        device = torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(tensor, op=op)
        return tensor.tolist()

    # ------------------------------------------------------------------------------------------ model
    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """DDP around the model (gradient all-reduce overlapped with backward); the model itself when alone.
        Buffers are not broadcast each step: ours are constants every rank builds identically."""
        if not self.active:
            return model
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        # torch >= 2.13 renamed the option (the old name warns)
        new_name = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
        no_sync = {"forward_sync_buffers" if new_name else "broadcast_buffers": False}
        return DistributedDataParallel(model, device_ids=ids, **no_sync)


SINGLE = Parallel()


def check_divisible(batch_size: int, world_size: int) -> None:
    if batch_size % world_size:
        raise UserError(f"recipe batch_size {batch_size} is not divisible by nproc {world_size}: each process takes "
                        f"an equal share of the global batch; use a multiple of {world_size}")


def start_from_env(device: str | None) -> tuple[Parallel, str]:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR...): NCCL on CUDA,
    gloo on CPU. Returns this rank's Parallel and its device ("cuda:LOCAL_RANK" or "cpu")."""
    for key, value in LAUNCH_ENV.items():
        os.environ.setdefault(key, value)
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    cuda = device.startswith("cuda") if device else torch.cuda.is_available()
    if cuda:
        if local >= torch.cuda.device_count():
            raise UserError(f"rank {rank}: local rank {local} but only {torch.cuda.device_count()} GPU(s) visible")
        torch.cuda.set_device(local)
        here, backend = f"cuda:{local}", "nccl"
    else:
        here, backend = "cpu", "gloo"
    torch.distributed.init_process_group(backend, rank=rank, world_size=world,
                                         **({"device_id": torch.device(here)} if cuda else {}))
    return Parallel(rank, world, backend), here


def stop() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
