"""Times each archsearch.kernels op and backend on a CUDA GPU; prints a table, writes JSON.

Usage (GPU machine, after `source bench/gpu/setup.sh`): python3 bench/bench_kernels.py [--out DIR] [--quick]
(the tile sweep at the 100M trial's conv: --only conv1d_tiles --conv-shape 16,3584,2048 --conv-row 5144;
its scan per chunk size: --only ssd_chunks; our Triton scan against it, per tiling: --only ssd_ours)
Timing: triton.testing.do_bench median (device events, warm-up first); inputs are random, never zeros.
Rates are compared with ceilings measured in the same run (bf16 8192^3 matmul, device-to-device copy) and
with the project's recorded ones (686 TFLOP/s, 3.02 TB/s).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import traceback

import torch
import triton

import archsearch.kernels as K

RECORDED_TFLOPS, RECORDED_TBPS = 686.0, 3.02
ROWS: list[dict] = []
ROUNDS = int(os.environ.get("SSD_ROUNDS", "4"))  # alternating direct/dispatch rounds for the 5% comparison


def bench(fn, grad_to_none=None) -> float:
    return triton.testing.do_bench(fn, warmup=50, rep=200, grad_to_none=grad_to_none, return_mode="median")


def record(group, name, ms, flops=None, nbytes=None, note=""):
    row = dict(group=group, name=name, ms=round(ms, 4))
    if flops:
        row["tflops"] = round(flops / ms / 1e9, 1)
        row["pct_matmul"] = round(100 * row["tflops"] / RECORDED_TFLOPS, 1)
    if nbytes:
        row["tbps"] = round(nbytes / ms / 1e9, 3)
        row["pct_copy"] = round(100 * row["tbps"] / RECORDED_TBPS, 1)
    if note:
        row["note"] = note
    ROWS.append(row)
    rate = "".join(
        [f"  {row['tflops']:7.1f} TFLOP/s ({row['pct_matmul']:5.1f}% of mm)" if flops else "",
         f"  {row['tbps']:6.3f} TB/s ({row['pct_copy']:5.1f}% of copy)" if nbytes else ""])
    print(f"{group:<26} {name:<44} {ms:9.4f} ms{rate} {note}", flush=True)


def guarded(fn):
    def wrapper(*a, **kw):
        try:
            fn(*a, **kw)
        except Exception as e:  # one failing benchmark must not hide the others
            traceback.print_exc()
            ROWS.append(dict(group=fn.__name__, name="ERROR", error=f"{type(e).__name__}: {e}"[:500]))
        torch.cuda.empty_cache()

    return wrapper


def fwd_bwd(fn, inputs, outputs_grad=None):
    """A closure running fn forward and backward with a fixed random cotangent."""
    out = fn()
    out = out[0] if isinstance(out, tuple) else out
    dout = torch.randn_like(out)

    def step():
        o = fn()
        o = o[0] if isinstance(o, tuple) else o
        o.backward(dout)

    return step


@guarded
def ceilings():
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    record("ceiling", "bf16 matmul 8192^3", bench(lambda: a @ b), flops=2 * 8192**3)
    src = torch.randn(256 * 2**20, device="cuda")  # 1 GiB
    dst = torch.empty_like(src)
    record("ceiling", "device copy 1 GiB", bench(lambda: dst.copy_(src)), nbytes=2 * src.numel() * 4)


def ssd_flops(b, l, h, p, g, n, q):
    c = l // q
    per_chunk = g * q * q * n * 2 + h * (q * q * p * 2 + 2 * q * p * n * 2)
    return b * c * per_chunk


@guarded
def ssd(quick):
    b, l, h, p, g, n, q = 4, 4096, 32, 64, 1, 128, 256
    dt_ = torch.bfloat16
    x = torch.randn(b, l, h, p, device="cuda", dtype=dt_, requires_grad=True)
    dt = (torch.randn(b, l, h, device="cuda") * 0.5).to(dt_).requires_grad_(True)
    A = (-torch.empty(h, device="cuda").uniform_(1, 16)).requires_grad_(True)
    B = torch.randn(b, l, g, n, device="cuda", dtype=dt_, requires_grad=True)
    C = torch.randn(b, l, g, n, device="cuda", dtype=dt_, requires_grad=True)
    D = torch.randn(h, device="cuda", requires_grad=True)
    dt_bias = (torch.rand(h, device="cuda") - 4).requires_grad_(True)
    params = [x, dt, A, B, C, D, dt_bias]
    kw = dict(D=D, dt_bias=dt_bias, dt_softplus=True)
    flops = ssd_flops(b, l, h, p, g, n, q)
    nbytes = (2 * x.numel() + dt.numel() + 2 * B.numel()) * 2  # read x, dt, B, C; write y (bf16)
    shape = f"b{b} L{l} h{h} p{p} g{g} n{n} chunk{q} bf16"
    variants = {}
    ok, why = K.registry.get_backend("ssd_scan", "mamba_ssm").available()
    if ok:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

        variants["mamba_ssm direct"] = lambda: mamba_chunk_scan_combined(x, dt, A, B, C, q, **kw)

        def dispatch():
            return K.ssd_chunk_scan(x, dt, A, B, C, q, **kw)

        variants["archsearch dispatch (mamba_ssm)"] = dispatch
    else:
        print("mamba_ssm unavailable:", why)

    def chunked():
        with K.force_backend("ssd_scan", "torch_chunked"):
            return K.ssd_chunk_scan(x, dt, A, B, C, q, **kw)

    variants["torch_chunked (ours, eager)"] = chunked
    times = {}
    for name, fn in variants.items():
        with torch.no_grad():
            fn()
        ms = bench(lambda: fn())  # forward only (autograd graph built but not used: as in training fwd)
        with torch.no_grad():
            ms_ng = bench(lambda: fn())
        record("ssd fwd " + shape, name, ms, flops=flops, nbytes=nbytes)
        record("ssd fwd (no_grad) " + shape, name, ms_ng, flops=flops, nbytes=nbytes)
        ms_fb = bench(fwd_bwd(fn, params), grad_to_none=params)
        record("ssd fwd+bwd " + shape, name, ms_fb, flops=3 * flops)
        times[name] = (ms, ms_fb)
    if "mamba_ssm direct" in times:
        # Separate measurements above drift by more than 5% between runs: alternate the two, ROUNDS rounds each.
        direct, wrapped = variants["mamba_ssm direct"], variants["archsearch dispatch (mamba_ssm)"]
        for what, make in [("fwd", lambda f: f), ("fwd+bwd", lambda f: fwd_bwd(f, params))]:
            fd, fw = make(direct), make(wrapped)
            td, tw = [], []
            for _ in range(ROUNDS):
                td.append(bench(fd) if what == "fwd" else bench(fd, grad_to_none=params))
                tw.append(bench(fw) if what == "fwd" else bench(fw, grad_to_none=params))
            md, mw = sorted(td)[len(td) // 2], sorted(tw)[len(tw) // 2]
            ROWS.append(dict(group="ssd dispatch/direct " + shape, name=what, ratio=round(mw / md, 4),
                             direct_ms=[round(t, 4) for t in td], dispatch_ms=[round(t, 4) for t in tw]))
            print(f"ssd dispatch/direct {what}: {mw / md:.4f} (goal <= 1.05); direct {td} dispatch {tw}", flush=True)
    # CPU cost of one registry selection (cached) — what the dispatch adds per call on the host
    info = dict(device="cuda", dtype=dt_, headdim=p, dstate=n)
    t0 = time.perf_counter()
    for _ in range(10000):
        K.registry.select("ssd_scan", **info)
    record("registry", "select() per call, host", (time.perf_counter() - t0) / 10000 * 1e3, note="(ms, host time)")


@guarded
def conv1d(quick):
    b, d, l, k = 4, 4096 + 2 * 128, 4096, 4
    w = torch.randn(d, k, device="cuda", requires_grad=True)
    bias = torch.randn(d, device="cuda", requires_grad=True)
    io = b * d * l * 2
    # (b, d, l) contiguous, and channel-last as Mamba-2 hands it over (a transposed view of the projection)
    for layout, leaf in [("", torch.randn(b, d, l, device="cuda", dtype=torch.bfloat16, requires_grad=True)),
                         (" channel-last", torch.randn(b, l, d, device="cuda", dtype=torch.bfloat16,
                                                       requires_grad=True))]:
        shape = f"b{b} d{d} L{l} k{k} silu bf16{layout}"
        for backend in ["triton", "torch", "causal_conv1d"]:
            ok, why = K.registry.get_backend("causal_conv1d", backend).available()
            if not ok:
                print(f"conv1d {backend}: unavailable ({why})")
                continue

            def fn(backend=backend, leaf=leaf, layout=layout):
                x = leaf.transpose(1, 2) if layout else leaf
                with K.force_backend("causal_conv1d", backend):
                    return K.causal_conv1d(x, w, bias, activation="silu")

            with torch.no_grad():
                record("conv1d fwd " + shape, backend, bench(fn), nbytes=2 * io)
            record("conv1d fwd+bwd " + shape, backend, bench(fwd_bwd(fn, [leaf, w, bias]),
                                                              grad_to_none=[leaf, w, bias]),
                   nbytes=5 * io, note="(bytes: fwd x,y + bwd x,dy,dx)")


# conv1d_tiles's shape (--conv-shape B,D,L and --conv-row R): nemotron-h-1b's xBC by default (d_inner 4096 + 2 x 8
# groups x 128, dense); the 100M trial of issue 15 is 16,3584,2048 with rows of 5144, since there xBC is a slice of
# the input projection's output (z 1536, xBC 3584, dt 24)
CONV_TILES_SHAPE = {"b": 4, "d": 4096 + 2 * 1024, "l": 4096, "row": 0}


@guarded
def conv1d_tiles(quick):
    """Our Triton conv's tile shapes per kernel and layout: what `triton_conv1d._tiles` and `_walk` should choose.
    Each tiled row changes one kernel's tiles ("fwd", "dpre" or "dx") and keeps the chosen ones for the others, with
    the walk kernels off; dpre rows with a fourth number (l-blocks per program) are the looped kernel. Walk rows
    ("walk fwd", "walk bwd": block_d, chunk, warps; channel-last only) change one walk kernel's tiles. --quick: of
    the tiled kernels, only the tiles chosen today (the baseline the walk rows are read against)."""
    from archsearch.kernels import triton_conv1d

    b, d, l, k = CONV_TILES_SHAPE["b"], CONV_TILES_SHAPE["d"], CONV_TILES_SHAPE["l"], 4
    # channel-last rows of `row` elements, of which x is the first d (the slice's backward adds a zero-filled copy of
    # the rows that the byte counts leave out: rankings hold, absolute TB/s read low)
    row = max(CONV_TILES_SHAPE["row"], d)
    w = torch.randn(d, k, device="cuda", requires_grad=True)
    bias = torch.randn(d, device="cuda", requires_grad=True)
    io = b * d * l * 2
    chosen, chosen_walk = triton_conv1d._tiles, triton_conv1d._walk
    shapes = [(128, 16, 4), (128, 32, 4), (64, 64, 4), (32, 64, 4), (32, 128, 4), (16, 256, 4), (64, 32, 4),
              (256, 16, 8), (64, 64, 8)]
    dpre = shapes + triton_conv1d.DPRE_LOOPED_CANDIDATES  # 4 numbers: the looped kernel (k <= 4)
    try:
        for layout, leaf in [("channel-last", torch.randn(b, l, row, device="cuda", dtype=torch.bfloat16,
                                                          requires_grad=True)),
                             ("contiguous", torch.randn(b, d, l, device="cuda", dtype=torch.bfloat16,
                                                        requires_grad=True))]:
            def fn(leaf=leaf, layout=layout):
                x = leaf[..., :d].transpose(1, 2) if layout == "channel-last" else leaf
                with K.force_backend("causal_conv1d", "triton"):
                    return K.causal_conv1d(x, w, bias, activation="silu")

            rows = f" rows {row}" if layout == "channel-last" and row > d else ""

            def measure(kernel, tiles):
                shape = f"b{b} d{d} L{l} {layout}{rows} {kernel} tiles {tiles}"
                if kernel.endswith("fwd"):
                    with torch.no_grad():
                        record("conv1d fwd " + shape, "triton", bench(fn), nbytes=2 * io)
                else:
                    record("conv1d fwd+bwd " + shape, "triton", bench(fwd_bwd(fn, [leaf, w, bias]),
                                                                       grad_to_none=[leaf, w, bias]), nbytes=5 * io)

            triton_conv1d._walk = lambda kern, d_, l_: None
            for kernel in ("fwd", "dpre", "dx"):
                candidates = dpre if kernel == "dpre" else shapes
                if quick:  # today's tiles; one fwd+bwd row (a dx row would time the same configuration again)
                    candidates = [] if kernel == "dx" else [
                        tuple(chosen(kernel, 1 << 20, 1 << 20, layout == "channel-last"))]
                for tiles in candidates:
                    triton_conv1d._tiles = lambda kern, d_, l_, cl_, t=tiles, kernel=kernel: (
                        triton_conv1d.Tiles(*t) if kern == kernel else chosen(kern, d_, l_, cl_))
                    measure(kernel, tiles)
            triton_conv1d._tiles = chosen
            if layout == "channel-last":
                for kernel in ("fwd", "bwd"):
                    for tiles in triton_conv1d.WALK_CANDIDATES:
                        triton_conv1d._walk = lambda kern, d_, l_, t=tiles, kernel=kernel: (
                            triton_conv1d.Walk(*t) if kern == kernel else chosen_walk(kern, d_, l_))
                        measure("walk " + kernel, tiles)
    finally:
        triton_conv1d._tiles, triton_conv1d._walk = chosen, chosen_walk


TRIAL_SCAN = (16, 2048, 24, 64, 8, 128)  # the 100M trial's scan: b, l, h, p, g, n


def trial_scan_inputs():
    """Leaves laid out as Mamba2Mixer.forward passes them at the 100M trial: xBC, the conv's (b, l, 3584) output
    (x, B and C are views of it), the input projection's 5144-wide rows (dt a column slice), A, D and dt's bias."""
    b, l, h, p, g, n = TRIAL_SCAN
    xbc = torch.randn(b, l, h * p + 2 * g * n, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    zxbcdt = torch.randn(b, l, 5144, device="cuda", dtype=torch.bfloat16)
    dt_leaf = (zxbcdt * 0.5).requires_grad_(True)
    A = (-torch.empty(h, device="cuda").uniform_(1, 16)).requires_grad_(True)
    D = torch.randn(h, device="cuda", requires_grad=True)
    dt_bias = (torch.rand(h, device="cuda") - 4).requires_grad_(True)
    return xbc, dt_leaf, A, D, dt_bias


@guarded
def ssd_chunks(quick):
    """mamba-ssm's scan at the 100M trial's shape and layout for each chunk size (the output is the same up to
    rounding; the chunk size moves work between the within-chunk matrices (b c g Q Q, float32) and the chunk states
    (b c h p n, float32)): x, B and C are views of the conv's (b, l, 3584) output, dt a column slice of the input
    projection's 5144-wide rows, as Mamba2Mixer.forward passes them."""
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

    (b, l, h, p, g, n), (xbc, dt_leaf, A, D, dt_bias) = TRIAL_SCAN, trial_scan_inputs()
    params = [xbc, dt_leaf, A, D, dt_bias]
    for q in (64, 128, 256):
        def fn(q=q):
            x, B, C = xbc.split([h * p, g * n, g * n], dim=-1)
            return mamba_chunk_scan_combined(x.reshape(b, l, h, p), dt_leaf[..., -h:], A, B.reshape(b, l, g, n),
                                             C.reshape(b, l, g, n), q, D=D, dt_bias=dt_bias, dt_softplus=True)

        shape = f"b{b} L{l} h{h} p{p} g{g} n{n} trial layout chunk{q} bf16"
        flops = ssd_flops(b, l, h, p, g, n, q)
        with torch.no_grad():
            record("ssd fwd " + shape, "mamba_ssm", bench(fn), flops=flops)
        record("ssd fwd+bwd " + shape, "mamba_ssm", bench(fwd_bwd(fn, params), grad_to_none=params), flops=3 * flops)


@guarded
def ssd_ours(quick):
    """Our Triton scan (kernels/triton_ssd.py) against mamba-ssm's at the 100M trial's shape and layout (as
    ssd_chunks), forward and forward + backward through the op, with D, dt's bias and softplus; ours for each
    tiling candidate (rows a chunk and warps, forward / backward), mamba-ssm's at the spec's chunk (256)."""
    from archsearch.kernels import triton_ssd

    (b, l, h, p, g, n), (xbc, dt_leaf, A, D, dt_bias) = TRIAL_SCAN, trial_scan_inputs()
    params = [xbc, dt_leaf, A, D, dt_bias]

    def through(backend):
        def fn():
            x, B, C = xbc.split([h * p, g * n, g * n], dim=-1)
            with K.force_backend("ssd_scan", backend):
                return K.ssd_chunk_scan(x.reshape(b, l, h, p), dt_leaf[..., -h:], A, B.reshape(b, l, g, n),
                                        C.reshape(b, l, g, n), 256, D=D, dt_bias=dt_bias, dt_softplus=True)
        return fn

    shape = f"b{b} L{l} h{h} p{p} g{g} n{n} trial layout bf16"
    flops = ssd_flops(b, l, h, p, g, n, 256)
    runs = [("mamba_ssm", None)] + [("triton", t) for t in (triton_ssd.CANDIDATES[:1] if quick else triton_ssd.CANDIDATES)]
    chosen = triton_ssd.TILES
    try:
        for backend, tiles in runs:
            if tiles is not None:
                triton_ssd.TILES = tiles
            name = backend if tiles is None else f"triton {tiles.q_forward}/{tiles.warps_forward} " \
                                                 f"{tiles.q_backward}/{tiles.warps_backward} n{tiles.n_backward}"
            fn = through(backend)
            with torch.no_grad():
                record("ssd fwd " + shape, name, bench(fn), flops=flops)
            record("ssd fwd+bwd " + shape, name, bench(fwd_bwd(fn, params), grad_to_none=params), flops=3 * flops)
    finally:
        triton_ssd.TILES = chosen


def attn_flops(b, h, t, s, d, window):
    # visible (query, key) pairs, causal aligned to the end, with an optional window
    pairs = sum(min(window or s, s - t + i + 1) for i in range(t)) if t <= 8192 else None
    return 4 * b * h * pairs * d


@guarded
def attention(quick):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    b, hq, hkv, d = 2, 32, 8, 128
    for L in ([4096] if quick else [4096, 8192]):
        q = torch.randn(b, hq, L, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        k = torch.randn(b, hkv, L, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        v = torch.randn(b, hkv, L, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        params = [q, k, v]
        cases = [("global", None, None), ("window4096", 4096, None), ("softcap50", None, 50.0)]
        for label, window, softcap in cases:
            flops = attn_flops(b, hq, L, L, d, window)
            group = f"attn b{b} hq{hq} hkv{hkv} d{d} L{L} {label}"
            for backend in ["sdpa", "flex", "flash_attn", "naive", None]:
                name = backend or "default (registry choice)"
                if backend == "naive" and (L > 4096 or window or softcap):
                    continue  # materialises (b, hq, L, L) float32 logits: memory, not speed
                if backend:
                    be = K.registry.get_backend("attention", backend)
                    ok, why = be.available()
                    refusal = be.accepts(device="cuda", dtype=torch.bfloat16, head_dim=d, t=L, s=L, causal=True,
                                         window=window, softcap=softcap, requires_grad=True) if ok else None
                    if not ok or refusal:
                        print(f"{group} {backend}: {'unavailable: ' + why if not ok else 'refuses: ' + refusal}")
                        continue

                def fn(backend=backend, window=window, softcap=softcap):
                    if backend is None:
                        return K.attention(q, k, v, window=window, softcap=softcap)
                    with K.force_backend("attention", backend):
                        return K.attention(q, k, v, window=window, softcap=softcap)

                K.reset_backends_used()
                with torch.no_grad():
                    ms = bench(fn)
                used = K.backends_used().get("attention")
                note = f"(ran {used})" if backend is None else ""
                record(group + " fwd", name, ms, flops=flops, note=note)
                if backend != "naive":
                    record(group + " fwd+bwd", name, bench(fwd_bwd(fn, params), grad_to_none=params),
                           flops=3.5 * flops, note=note)
            if label == "global":
                for sdpb in ["CUDNN_ATTENTION", "FLASH_ATTENTION"]:
                    def raw(sdpb=sdpb):
                        with sdpa_kernel(getattr(SDPBackend, sdpb)):
                            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                                     enable_gqa=True)
                    try:
                        with torch.no_grad():
                            record(group + " fwd", f"torch SDPA forced {sdpb}", bench(raw), flops=flops)
                        record(group + " fwd+bwd", f"torch SDPA forced {sdpb}",
                               bench(fwd_bwd(raw, params), grad_to_none=params), flops=3.5 * flops)
                    except Exception as e:
                        print(f"{group} SDPA {sdpb}: {type(e).__name__}: {str(e)[:200]}")
        del q, k, v, params
        torch.cuda.empty_cache()


@guarded
def gated_norm(quick):
    b, l, dinner, ngroups = 4, 4096, 4096, 8
    x = torch.randn(b, l, dinner, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    z = torch.randn_like(x, requires_grad=True)
    w = torch.randn(dinner, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    shape = f"b{b} L{l} d{dinner} group{dinner // ngroups} bf16"
    for backend in ["mamba_ssm", "torch"]:
        ok, why = K.registry.get_backend("gated_rmsnorm", backend).available()
        if not ok:
            print(f"gated_rmsnorm {backend}: unavailable ({why})")
            continue

        def fn(backend=backend):
            with K.force_backend("gated_rmsnorm", backend):
                return K.gated_rms_norm(x, w, z, group_size=dinner // ngroups)

        with torch.no_grad():
            record("gated_rmsnorm fwd " + shape, backend, bench(fn), nbytes=3 * x.numel() * 2)
        record("gated_rmsnorm fwd+bwd " + shape, backend, bench(fwd_bwd(fn, [x, z, w]), grad_to_none=[x, z, w]),
               nbytes=8 * x.numel() * 2, note="(bytes: fwd x,z,y + bwd x,z,dy,dx,dz)")


@guarded
def decode(quick):
    b, h, p, n, g = 16, 32, 64, 128, 1
    state = torch.randn(b, h, p, n, device="cuda")
    x = torch.randn(b, h, p, device="cuda", dtype=torch.bfloat16)
    dt = torch.randn(b, h, device="cuda", dtype=torch.bfloat16)
    A = -torch.rand(h, device="cuda") - 1
    Bm = torch.randn(b, g, n, device="cuda", dtype=torch.bfloat16)
    Cm = torch.randn(b, g, n, device="cuda", dtype=torch.bfloat16)
    D = torch.randn(h, device="cuda")
    dt_bias = torch.randn(h, device="cuda")
    shape = f"b{b} h{h} p{p} n{n} state fp32"
    for backend in ["mamba_ssm", "torch"]:
        ok, why = K.registry.get_backend("ssm_state_update", backend).available()
        if not ok:
            print(f"ssm_state_update {backend}: unavailable ({why})")
            continue

        def fn(backend=backend):
            with K.force_backend("ssm_state_update", backend):
                return K.ssm_state_update(state, x, dt, A, Bm, Cm, D=D, dt_bias=dt_bias, dt_softplus=True)

        record("ssm_state_update " + shape, backend, bench(fn), nbytes=2 * state.numel() * 4)
    dconv, k = 4352, 4
    xs = torch.randn(b, dconv, device="cuda", dtype=torch.bfloat16)
    cstate = torch.randn(b, dconv, k - 1, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(dconv, k, device="cuda")
    for backend in ["causal_conv1d", "torch"]:
        ok, why = K.registry.get_backend("conv_state_update", backend).available()
        if not ok:
            print(f"conv_state_update {backend}: unavailable ({why})")
            continue

        def fn2(backend=backend):
            with K.force_backend("conv_state_update", backend):
                return K.conv_state_update(xs, cstate, w, None, "silu")

        record(f"conv_state_update b{b} d{dconv} k{k}", backend, bench(fn2), nbytes=2 * cstate.numel() * 2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--conv-shape", default=None,
                        help="conv1d_tiles: B,D,L (default nemotron-h-1b's 4,6144,4096)")
    parser.add_argument("--conv-row", type=int, default=0,
                        help="conv1d_tiles: channel-last row length >= D (a slice)")
    args = parser.parse_args()
    if args.conv_shape:
        try:
            b, d, l = (int(v) for v in args.conv_shape.split(","))
        except ValueError:
            parser.error(f"--conv-shape {args.conv_shape!r}: allowed: three integers B,D,L, e.g. 16,3584,2048")
        CONV_TILES_SHAPE.update(b=b, d=d, l=l)
    if args.conv_row and args.conv_row < CONV_TILES_SHAPE["d"]:
        parser.error(f"--conv-row {args.conv_row}: allowed: 0 (dense) or >= D ({CONV_TILES_SHAPE['d']})")
    CONV_TILES_SHAPE["row"] = args.conv_row
    torch.manual_seed(0)
    env = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__,
               cuda=torch.version.cuda)
    try:
        K.registry.get_backend("ssd_scan", "mamba_ssm").available()  # installs the extension placeholder
        import mamba_ssm

        env["mamba_ssm"] = mamba_ssm.__version__
    except Exception as e:
        env["mamba_ssm"] = f"not importable: {e}"
    print(env, flush=True)
    print(K.format_report(), flush=True)
    benches = dict(ceilings=ceilings, conv1d=conv1d, conv1d_tiles=conv1d_tiles,
                   ssd=ssd, ssd_chunks=ssd_chunks, ssd_ours=ssd_ours, gated_norm=gated_norm, decode=decode,
                   attention=attention)
    for name, fn in benches.items():
        sweep = name in ("conv1d_tiles", "ssd_chunks", "ssd_ours")  # run only on request
        if (args.only and name not in args.only) or (not args.only and sweep):
            continue
        t0 = time.time()
        fn(args.quick) if name != "ceilings" else fn()
        print(f"-- {name} done in {time.time() - t0:.0f} s", flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench_kernels.json"), "w") as f:
        json.dump(dict(env=env, rows=ROWS), f, indent=1)
    print("\nSUMMARY")
    for r in ROWS:
        if "error" in r:
            print(f"{r['group']}: ERROR {r['error'][:200]}")
        elif "ratio" in r:
            print(f"{r['group']} | {r['name']} | ratio {r['ratio']}")
        else:
            extra = " ".join(f"{k}={r[k]}" for k in ("tflops", "pct_matmul", "tbps", "pct_copy", "note") if k in r)
            print(f"{r['group']} | {r['name']} | {r['ms']} ms {extra}")


if __name__ == "__main__":
    main()
