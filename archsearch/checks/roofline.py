"""Roofline projection of serving throughput on a target device. A projection, not a measurement.

Decode: each step reads every weight once (shared by the batch) plus, per sequence, the KV cache at the current
context and the SSM/conv states (read and written back); the step takes max(bytes / bandwidth, FLOPs / peak).
Averaged over the output, a global attention layer reads the mean context input + (output - 1) / 2.
Prefill: FLOPs over the whole prompt against the peak, or the weights re-read once per chunk against the
bandwidth, whichever is slower. Real kernels reach a fraction of both ceilings; ratios between specs on the same
device are more trustworthy than the absolute figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..spec.accounting import count_parameters, forward_flops_per_token
from ..spec.dtypes import dtype_bytes
from ..spec.model import ModelSpec
from .devices import Device
from .memory import MemoryModel

LABEL = "roofline projection (upper bound from peak FLOP/s and bandwidth; not measured)"


class RequestRates:
    """Tokens/s of a request of `batch` sequences: `input_len` tokens prefilled, then `output_len` generated.
    Mixed into the projected and the measured results, which both carry these five fields."""

    batch: int
    input_len: int
    output_len: int
    prefill_seconds: float
    decode_seconds: float  # all output steps

    @property
    def prefill_tokens_per_s(self) -> float:
        return self.batch * self.input_len / self.prefill_seconds

    @property
    def decode_tokens_per_s(self) -> float:
        return self.batch * self.output_len / self.decode_seconds

    @property
    def output_tokens_per_s(self) -> float:
        """Generated tokens per second over the whole request (prefill included): the paper's throughput."""
        return self.batch * self.output_len / (self.prefill_seconds + self.decode_seconds)

    def rates(self) -> dict:
        return {"prefill_tokens_per_s": self.prefill_tokens_per_s, "decode_tokens_per_s": self.decode_tokens_per_s,
                "output_tokens_per_s": self.output_tokens_per_s}


@dataclass(frozen=True)
class RooflineProjection(RequestRates):
    device: str
    batch: int
    input_len: int
    output_len: int
    compute_dtype: str
    prefill_seconds: float
    prefill_bound: str  # "compute" or "memory"
    decode_seconds: float  # all output steps
    decode_bound: str
    decode_bytes_per_step: float  # mean over the output
    label: str = LABEL

    def to_dict(self) -> dict:
        return {**asdict(self), **self.rates()}


def _mean_kept(first: int, last: int, window: int | None) -> float:
    """Mean of min(c, window) over contexts c = first .. last."""
    if window is None or last <= window:
        return (first + last) / 2
    if first >= window:
        return float(window)
    below = window - first  # contexts first .. window-1
    ramp = below * (first + window - 1) / 2
    return (ramp + (last - window + 1) * window) / (last - first + 1)


def project(spec: ModelSpec, device: Device, model: MemoryModel, input_len: int, output_len: int, batch: int,
            compute_dtype: str = "bfloat16") -> RooflineProjection:
    peak, bandwidth = device.peak_flops(compute_dtype), device.bandwidth_bytes_per_s
    settings = model.settings
    # the embedding lookup reads `batch` rows, not the table; an untied table is not read per step
    params = count_parameters(spec)
    untied_table = 0 if spec.tie_embeddings else params.embedding * dtype_bytes(settings.param_dtype)
    weights_read = model.weight_bytes - untied_table

    first, last = input_len, input_len + output_len - 1
    kv_read = sum(t.count * t.kv_per_token * _mean_kept(first, last, t.window) for t in model.terms)
    states_rw = 2 * sum(t.count * (t.ssm_bytes + t.conv_bytes) for t in model.terms)
    step_bytes = weights_read + batch * (kv_read + states_rw)
    mean_context = round((first + last) / 2)
    step_flops = batch * forward_flops_per_token(spec, mean_context, decode=True)
    step_memory_s, step_compute_s = step_bytes / bandwidth, step_flops / peak
    decode_s = output_len * max(step_memory_s, step_compute_s)

    prefill_flops = batch * input_len * forward_flops_per_token(spec, input_len)
    chunks = -(-input_len // settings.prefill_chunk)
    prefill_memory_s = (chunks * weights_read + batch * model.per_sequence(input_len)) / bandwidth
    prefill_compute_s = prefill_flops / peak
    return RooflineProjection(
        device=device.key, batch=batch, input_len=input_len, output_len=output_len, compute_dtype=compute_dtype,
        prefill_seconds=max(prefill_memory_s, prefill_compute_s),
        prefill_bound="compute" if prefill_compute_s >= prefill_memory_s else "memory",
        decode_seconds=decode_s, decode_bound="compute" if step_compute_s > step_memory_s else "memory",
        decode_bytes_per_step=step_bytes)
