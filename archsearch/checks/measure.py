"""Measured check: build the spec with random weights, run chunked prefill + decode, read the peak memory.

Torch and the builder are imported inside the functions, so `archsearch.checks` stays torch-free.
On CUDA the peak is the caching allocator's `max_memory_allocated` over the whole run (weights included),
beside the analytic estimate at the same (context, batch) under the settings that match the kernels that ran.
On a CPU there is no allocator peak; the run still checks the builder's weights and caches byte for byte
against the estimate's weights and state components.
"""

from __future__ import annotations

import gc
from dataclasses import asdict, dataclass, field

from ..spec.dtypes import WEIGHT_DTYPES
from ..spec.model import ModelSpec
from .memory import MemoryModel
from .settings import CheckSettings


@dataclass(frozen=True)
class MemoryMeasurement:
    device: str
    context: int
    batch: int
    prefill_chunk: int
    decode_steps: int
    weight_bytes: int  # the built model's parameters and buffers
    cache_bytes: int  # the builder's preallocated caches
    peak_bytes: int | None  # allocator peak over the run (None on CPU)
    estimated_bytes: int
    estimated: dict  # the analytic breakdown under `settings`
    settings: dict
    backends: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # how kernels adapted calls (e.g. sub-batches)
    # per block symbol (and "lm_head"): the largest transient seen above the memory at the call's entry during
    # prefill, beside the estimate's workspace for it; only with per_layer=True on CUDA
    layer_peaks: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def error(self) -> float | None:
        """(estimated - measured) / measured: positive when the estimate is conservative."""
        if not self.peak_bytes:
            return None
        return (self.estimated_bytes - self.peak_bytes) / self.peak_bytes

    def to_dict(self) -> dict:
        out = asdict(self)
        out["error"] = self.error
        out["kind"] = "measured"
        return out


def _torch_dtype(name: str):
    import torch

    if name not in WEIGHT_DTYPES:
        from ..errors import UserError

        raise UserError(f"--measure: the builder holds weights and caches in {', '.join(WEIGHT_DTYPES)}, not {name}")
    return getattr(torch, name)


def kernels_profile(backends: dict[str, str], cuda: bool) -> str:
    """The workspace profile (settings.kernels) that matches what ran: the Mamba-2 scan's backend where there is
    one (or the fused Mamba-2 mixer's); otherwise the device, since only the CPU's SDPA path needs an element mask
    for a chunk that does not start at position 0 (a transformer on CUDA read 17% under an "eager" estimate, H100
    2026-11-24)."""
    if backends.get("mamba_mixer") == "fused" or backends.get("ssd_scan") == "mamba_ssm":
        return "fused"
    if "ssd_scan" in backends:
        return "eager"
    return "fused" if cuda else "eager"


def _device(device):
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run_chunked_prefill(model, cache, ids_BT, chunk: int, logits: str = "last"):
    """Feed ids chunk by chunk through the builder's prefill (one call per chunk, as a serving engine
    interleaves them); returns the last token's logits (b, 1, vocab). With logits="all" each chunk's logits are
    computed and dropped before the next chunk (nothing keeps a view of them)."""
    last_B1V = None
    for start in range(0, ids_BT.shape[1], chunk):
        del last_B1V  # the previous chunk's logits die before this chunk runs
        logits_BTV = model.prefill(ids_BT[:, start:start + chunk], cache, logits=logits)
        last_B1V = logits_BTV[:, -1:] if logits == "last" else logits_BTV[:, -1:].clone()
        del logits_BTV
    return last_B1V


class _LayerPeaks:
    """Forward hooks that find each layer's transient peak without losing the run's overall peak: before a
    layer the allocator's peak so far is folded into `overall` and reset, after it the new peak minus the
    memory at entry is that call's transient."""

    def __init__(self, torch, device):
        self.torch, self.device = torch, device
        self.overall = 0
        self.transient: dict[str, int] = {}
        self._entry = 0

    def _before(self, *_):
        cuda = self.torch.cuda
        self.overall = max(self.overall, cuda.max_memory_allocated(self.device))
        cuda.reset_peak_memory_stats(self.device)
        self._entry = cuda.memory_allocated(self.device)

    def _after(self, name: str):
        def hook(*_):
            peak = self.torch.cuda.max_memory_allocated(self.device)
            self.overall = max(self.overall, peak)
            self.transient[name] = max(self.transient.get(name, 0), peak - self._entry)
        return hook

    def attach(self, model, spec: ModelSpec) -> list:
        handles = []
        for layer, module in zip(spec.layers, model.layers):
            handles.append(module.register_forward_pre_hook(self._before))
            handles.append(module.register_forward_hook(self._after(layer.symbol)))
        handles.append(model.final_norm.register_forward_pre_hook(self._before))  # the head starts at its norm
        handles.append(model.lm_head.register_forward_hook(self._after("lm_head")))
        return handles

    def peak(self) -> int:
        return max(self.overall, self.torch.cuda.max_memory_allocated(self.device))


def _warm_up(model, spec: ModelSpec, context: int, settings: CheckSettings, device) -> None:
    """Two chunks and a decode step at batch 1, so that kernels compile and autotune (allocating as they do)
    before the peak is read: a server pays that once at start-up, not per request. Without it, the first point
    measured of each Mamba-2 family read 17-22% more transient in its Mamba-2 layers than batch-linear, and the
    warm-up removed that (H100, 2026-11-24: hybrid 4k x 8 from -6.6% to +0.2%)."""
    import torch

    tokens = min(context - 1, 2 * settings.prefill_chunk)
    cache = model.allocate_cache(1, context, dtype=_torch_dtype(settings.act_dtype))
    ids_BT = torch.zeros(1, tokens, dtype=torch.long, device=device)
    last_B1V = run_chunked_prefill(model, cache, ids_BT, settings.prefill_chunk, settings.logits)
    model.decode_step(last_B1V.argmax(-1), cache)
    del cache, ids_BT, last_B1V


class MeasurementDisturbed(RuntimeError):
    """The allocator peak fell below the built model's own weights and caches: memory that was alive at the
    baseline was freed during the run, so peak - baseline no longer measures this model."""


def checked_peak(peak_above_base: int, weight_bytes: int, cache_bytes: int) -> int:
    """The peak above the baseline, refused when it is below the floor every run must reach (its weights and
    caches are all alive at the end of prefill): a number below it is another process's or test's memory being
    freed, not an estimate error."""
    floor = weight_bytes + cache_bytes
    if peak_above_base < floor:
        raise MeasurementDisturbed(
            f"measured peak {peak_above_base:,} bytes is below the model's weights + caches ({floor:,} bytes): "
            "memory alive at the baseline was freed during the measurement; measure in a fresh process")
    return peak_above_base


def _collect_garbage() -> None:
    """Free unreachable objects (tensors held in reference cycles, e.g. by a caught exception's traceback) before
    the baseline: collected mid-run they would lower the peak measured above it (gemma2-tiny read 95% under its
    estimate after ~75 other GPU tests in one process, H100 2026-12-06). Garbage the run itself makes is the run's."""
    gc.collect()


def measure_memory(spec: ModelSpec, context: int, batch: int, settings: CheckSettings | None = None, *,
                   decode_steps: int = 8, device=None, seed: int = 0, per_layer: bool = False) -> MemoryMeasurement:
    """Prefill context - decode_steps tokens in chunks, then decode decode_steps tokens (the cache ends full).
    per_layer=True (CUDA) also records each block symbol's transient peak, to locate an estimate's error."""
    settings = settings or CheckSettings()
    if settings.kv_dtype != settings.act_dtype:
        from ..errors import UserError

        raise UserError(f"--kv-dtype: the builder keeps caches in the activation dtype ({settings.act_dtype}); "
                        f"measure with --kv-dtype {settings.act_dtype}")
    decode_steps = max(0, min(decode_steps, context - 1))
    torch_device = _device(device)
    cuda = torch_device.type == "cuda"
    if cuda:
        _collect_garbage()
    return _measure(spec, context, batch, settings, decode_steps, torch_device, seed, per_layer)


def _measure(spec: ModelSpec, context: int, batch: int, settings: CheckSettings, decode_steps: int, torch_device,
             seed: int, per_layer: bool) -> MemoryMeasurement:
    import torch

    from ..builder import build
    from ..kernels import recording

    cuda = torch_device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(torch_device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(torch_device)
        base = torch.cuda.memory_allocated(torch_device)
    with recording() as used:  # this measurement's kernel backends (and notes) only
        model = build(spec, device=torch_device, dtype=_torch_dtype(settings.param_dtype), seed=seed).eval()
        if cuda:
            _warm_up(model, spec, context, settings, torch_device)
            # the initialiser's and the warm-up's temporaries are not serving memory: count from the built model on
            torch.cuda.synchronize(torch_device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(torch_device)
        weight_bytes = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
        cache = model.allocate_cache(batch, context, dtype=_torch_dtype(settings.act_dtype))
        generator = torch.Generator(device="cpu").manual_seed(seed)
        ids_BT = torch.randint(0, spec.vocab_size, (batch, context - decode_steps), generator=generator)
        ids_BT = ids_BT.to(torch_device)
        probe = _LayerPeaks(torch, torch_device) if cuda and per_layer else None
        handles = probe.attach(model, spec) if probe else []
        last_B1V = run_chunked_prefill(model, cache, ids_BT, settings.prefill_chunk, settings.logits)
        for handle in handles:
            handle.remove()
        token_B1 = last_B1V.argmax(-1)
        for _ in range(decode_steps):
            token_B1 = model.decode_step(token_B1, cache)[:, -1:].argmax(-1)
        peak = None
        if cuda:
            torch.cuda.synchronize(torch_device)
            peak = (probe.peak() if probe else torch.cuda.max_memory_allocated(torch_device)) - base
            peak = checked_peak(peak, weight_bytes, cache.nbytes())
    backends = dict(used)
    matched = settings.with_(kernels=kernels_profile(backends, cuda))  # the workspace of the kernels that ran
    memory_model = MemoryModel(spec, matched)
    estimate = memory_model.breakdown(context, batch)
    layer_peaks = {}
    if probe:
        estimated = memory_model.workspace_by_symbol(context)
        layer_peaks = {name: {"measured": measured, "estimated": int(batch * estimated.get(name, 0))}
                       for name, measured in probe.transient.items()}
    name = torch.cuda.get_device_name(torch_device) if cuda else "cpu"
    result = MemoryMeasurement(
        device=name, context=context, batch=batch, prefill_chunk=settings.prefill_chunk, decode_steps=decode_steps,
        weight_bytes=weight_bytes, cache_bytes=cache.nbytes(), peak_bytes=peak, estimated_bytes=estimate.total,
        estimated=estimate.to_dict(), settings=matched.to_dict(), backends=backends, notes=used.notes,
        layer_peaks=layer_peaks)
    del model, cache, ids_BT, last_B1V, token_B1
    if cuda:
        torch.cuda.empty_cache()
    return result
