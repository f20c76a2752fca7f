"""Measured throughput: prefill and decode tokens/s at an input/output length and batch, on the GPU at hand.

Prefill: the whole prompt in chunks through the builder's prefill, timed after one untimed pass (Triton compiles
and autotunes on first use). Decode: a 16k-token output costs minutes of single steps, so the step time is
measured at a few positions spread over the output (the cache position is set there; skipped slots hold zeros,
and a step's time does not depend on the values) and integrated over the output with the trapezoid rule. Each
step is a CUDA-graph replay where capture works (the position is fixed inside a graph, which is what timing one
position needs), else an eager call; the result says which.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from ..spec.model import ModelSpec
from .measure import _device, _torch_dtype, run_chunked_prefill
from .roofline import RequestRates
from .settings import CheckSettings


@dataclass(frozen=True)
class ThroughputMeasurement(RequestRates):
    device: str
    batch: int
    input_len: int
    output_len: int
    prefill_seconds: float
    decode_points: list[dict]  # {position, step_ms, mode}
    decode_seconds: float  # integrated over the output
    backends: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**asdict(self), "kind": "measured", **self.rates()}


def _time_decode_step(model, cache, token_B1, position: int, steps: int, use_graph: bool) -> tuple[float, str]:
    import torch

    def step():
        cache.seq_len = position
        return model.decode_step(token_B1, cache)

    if use_graph:
        try:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):
                    step()
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step()
            graph.replay()
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(steps):
                graph.replay()
            torch.cuda.synchronize()
            seconds = (time.perf_counter() - start) / steps
            del graph
            return seconds, "cuda_graph"
        except Exception as err:  # capture refuses some ops (host syncs); eager timing is still a measurement
            mode = f"eager (graph capture failed: {type(err).__name__})"
            torch.cuda.synchronize()
    else:
        mode = "eager"
    step()
    if use_graph or torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps, mode


def measure_throughput(spec: ModelSpec, input_len: int, output_len: int, batch: int,
                       settings: CheckSettings | None = None, *, points: int = 3, steps_per_point: int = 20,
                       cuda_graphs: bool = True, device=None, seed: int = 0) -> ThroughputMeasurement:
    import torch

    from ..builder import build
    from ..kernels import recording

    settings = settings or CheckSettings()
    torch_device = _device(device)
    cuda = torch_device.type == "cuda"
    with recording() as used:  # this measurement's kernel backends only
        model = build(spec, device=torch_device, dtype=_torch_dtype(settings.param_dtype), seed=seed).eval()
        cache = model.allocate_cache(batch, input_len + output_len, dtype=_torch_dtype(settings.act_dtype))
        generator = torch.Generator(device="cpu").manual_seed(seed)
        ids_BT = torch.randint(0, spec.vocab_size, (batch, input_len), generator=generator).to(torch_device)

        def sync():
            if cuda:
                torch.cuda.synchronize(torch_device)

        run_chunked_prefill(model, cache, ids_BT, settings.prefill_chunk)  # compile / autotune, untimed
        cache.reset()
        sync()
        start = time.perf_counter()
        last_B1V = run_chunked_prefill(model, cache, ids_BT, settings.prefill_chunk)
        sync()
        prefill_s = time.perf_counter() - start
        token_B1 = last_B1V.argmax(-1)
        del last_B1V, ids_BT

        last = input_len + output_len - 1
        positions = sorted({round(input_len + i * (last - input_len) / max(1, points - 1)) for i in range(points)})
        measured = []
        for position in positions:
            seconds, mode = _time_decode_step(model, cache, token_B1, position, steps_per_point, cuda and cuda_graphs)
            measured.append({"position": position, "step_ms": seconds * 1e3, "mode": mode})
        # trapezoid over the output's positions input_len .. last
        decode_s = 0.0
        if len(measured) == 1:
            decode_s = measured[0]["step_ms"] / 1e3 * output_len
        for a, b in zip(measured, measured[1:]):
            span = b["position"] - a["position"]
            decode_s += (a["step_ms"] + b["step_ms"]) / 2e3 * span
        if len(measured) > 1:
            decode_s += measured[-1]["step_ms"] / 1e3  # the last position's own step
    name = torch.cuda.get_device_name(torch_device) if cuda else "cpu"
    result = ThroughputMeasurement(name, batch, input_len, output_len, prefill_s, measured, decode_s, dict(used))
    del model, cache
    if cuda:
        torch.cuda.empty_cache()
    return result
