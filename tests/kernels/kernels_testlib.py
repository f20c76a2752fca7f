"""Helpers shared by tests/kernels: tolerances keyed by dtype, a norm-relative comparison, gradients of a call, the
graphs torch.compile makes of one."""

from __future__ import annotations

from typing import Callable

import torch

# ||actual - expected|| / ||expected||, keyed by the dtype the fast path computed in. fp32 math lands far under
# 1e-4; TF32 matmuls (Triton's default for a float32 dot) near 3e-4; bf16 operands between 1e-3 and 1e-2.
REL_TOL = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 2e-2}
REL_TOL_GPU_FP32 = 2e-3  # fused GPU kernels may use TF32 for float32 dots

requires_cuda = torch.cuda.is_available


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    a, e = actual.detach().double(), expected.detach().double()
    return ((a - e).norm() / e.norm().clamp_min(1e-30)).item()


def assert_close(actual, expected, dtype, name: str, tol: float | None = None) -> None:
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.isfinite(actual).all(), f"{name}: non-finite values"
    tol = REL_TOL[dtype] if tol is None else tol
    err = rel_err(actual, expected)
    assert err <= tol, f"{name}: relative error {err:.2e} > {tol:.0e}"


def run_with_grads(fn: Callable, inputs: dict, upcast: bool = False, seed: int = 1234):
    """Call fn(**inputs) on fresh leaf copies; backprop fixed random cotangents through every output.

    Returns (outputs tuple, {input name: grad}). With upcast=True the leaves are float32 copies (the reference
    then sees exactly the values the fast path saw, and returns float32 gradients)."""
    leaves = {}
    for name, v in inputs.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            v = v.detach().clone().float() if upcast else v.detach().clone()
            leaves[name] = v.requires_grad_(True)
        else:
            leaves[name] = v
    outs = fn(**leaves)
    outs = outs if isinstance(outs, tuple) else (outs,)
    gen = torch.Generator().manual_seed(seed)
    loss = sum((o.float() * torch.randn(o.shape, generator=gen).to(o.device)).sum() for o in outs)
    params = {k: v for k, v in leaves.items() if isinstance(v, torch.Tensor) and v.requires_grad}
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return tuple(o.detach() for o in outs), {k: g for k, g in zip(params, grads)}


def assert_same_call(actual, expected, dtype, tol: float | None = None, grad_tol: float | None = None):
    """Compare the (outputs, grads) pairs of run_with_grads."""
    (outs_a, grads_a), (outs_e, grads_e) = actual, expected
    for i, (a, e) in enumerate(zip(outs_a, outs_e)):
        assert_close(a, e, dtype, f"output {i}", tol)
    assert grads_a.keys() == grads_e.keys()
    for name in grads_e:
        ga, ge = grads_a[name], grads_e[name]
        assert ga is not None and ge is not None, f"grad of {name} missing"
        assert_close(ga, ge, dtype, f"grad of {name}", grad_tol if grad_tol is not None else tol)


def shape_id(**dims) -> str:
    """Readable test ids such as B2-L64-H4."""
    return "-".join(f"{k}{v}" for k, v in dims.items())


def compiled_call_targets(fn: Callable, **inputs) -> list[list[str]]:
    """Run torch.compile(fn, fullgraph=True) (a graph break raises) on inputs; the call targets of each graph it made."""
    torch._dynamo.reset()
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch.compile(fn, backend=backend, fullgraph=True)(**inputs)
    return [[str(node.target) for node in gm.graph.nodes if node.op == "call_function"] for gm in graphs]


def sm90_source(kernel, constexprs: dict, pointers: set[str], fp32: frozenset[str] = frozenset(),
                multiples_of_16: frozenset[str] = frozenset()):
    """(ASTSource, target) of a Triton kernel for an H100 (sm_90), made on the CPU: no GPU needed. Pointer
    arguments are bf16 but those named in fp32; the other arguments int32, and those in multiples_of_16 marked as
    Triton marks such a value when launched with it (pointers are taken as 16-byte aligned, as torch allocates)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    names = kernel.arg_names
    signature = {n: "constexpr" if n in constexprs else ("*fp32" if n in fp32 else "*bf16") if n in pointers else "i32"
                 for n in names}
    attrs = {(i,): [["tt.divisibility", 16]] for i, n in enumerate(names) if n in pointers or n in multiples_of_16}
    source = ASTSource(kernel, signature, constexprs={(names.index(n),): v for n, v in constexprs.items()},
                       attrs=attrs)
    return source, GPUTarget("cuda", 90, 32)


def sm90_ptx(kernel, constexprs: dict, pointers: set[str], num_warps: int = 4, **kinds) -> str:
    """The PTX Triton makes of the kernel for an H100 (Triton ships its own ptxas, so this runs on the CPU)."""
    import triton

    source, target = sm90_source(kernel, constexprs, pointers, **kinds)
    return triton.compile(source, target=target, options=dict(num_warps=num_warps)).asm["ptx"]
