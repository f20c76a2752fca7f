"""FP8: which layers convert, the torchao conversion (emulated on CPU) trains, and the precision plan's fallbacks."""

import pytest
import torch
from torch import nn

from archsearch.builder import build
from archsearch.errors import UserError
from archsearch.training import Recipe, TaskSpec, train
from archsearch.training import precision
from archsearch.training.fp8 import convert_model, eligible_linears, skip_reason
from archsearch.training.precision import plan_precision

pytest.importorskip("torchao")
CPU = torch.device("cpu")


class Stack(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.Linear(64, 60))
        self.lm_head = nn.Linear(64, 64)

    def forward(self, x):
        return self.lm_head(self.body[:3](x)), self.body(x)


def test_small_misaligned_and_head_layers_stay_high_precision():
    model = Stack()
    assert skip_reason("body.3", model.body[3], 16) == "dims (64, 60) not multiples of 16"
    assert "below fp8_min_dim 512" in skip_reason("body.0", model.body[0], 512)
    assert "LM head" in skip_reason("lm_head", model.lm_head, 16)
    assert eligible_linears(model, 16) == ["body.0", "body.2"]
    assert eligible_linears(model, 512) == []


# the 16-aligned projections of conftest's tiny hybrid (Mamba in_proj is 2*64+2*16+2 = 162 wide: not aligned)
TINY_FP8_LAYERS = ["layers.0.mixer.out_proj", "layers.1.mixer.k_proj", "layers.1.mixer.o_proj",
                   "layers.1.mixer.q_proj", "layers.1.mixer.v_proj", "layers.2.mixer.down_proj",
                   "layers.2.mixer.up_proj"]
EMULATED = Recipe(precision="fp8", fp8_emulate=True, fp8_min_dim=16)


def test_the_built_models_head_is_kept_by_the_head_rule(spec):
    """Our LMHead is not an nn.Linear: it must be kept because it is the head, not by luck of its class."""
    model = build(spec)
    assert skip_reason("lm_head", model.lm_head, 16).startswith("LM head kept")
    assert sorted(eligible_linears(model, 16)) == TINY_FP8_LAYERS


@pytest.mark.parametrize("name,tied", [("lm_head", True), ("lm_head", False), ("readout", True)],
                         ids=["tied-linear-head", "untied-linear-head", "tied-linear-elsewhere"])
def test_a_linear_head_of_a_built_model_is_never_converted(spec, name, tied):
    """The built tiny hybrid (vocab 64 = d_model 64: the head is 16-aligned and above fp8_min_dim) with an
    nn.Linear head, as Hugging Face models have: neither the head nor a layer tied to the embedding converts."""
    from torchao.float8.float8_linear import Float8Linear

    model = build(spec)
    head = nn.Linear(spec.d_model, spec.vocab_size, bias=False)
    if tied:
        head.weight = model.embedding.weight
    setattr(model, name, head)
    assert sorted(eligible_linears(model, 16)) == TINY_FP8_LAYERS
    _, layers = convert_model(model, "torchao", EMULATED)
    assert sorted(layers) == TINY_FP8_LAYERS
    assert type(getattr(model, name)) is nn.Linear
    assert all(isinstance(model.get_submodule(fqn), Float8Linear) for fqn in layers)
    if tied:
        assert getattr(model, name).weight is model.embedding.weight
    logits = model(torch.randint(0, spec.vocab_size, (2, 16)))
    assert logits.shape == (2, 16, spec.vocab_size) and torch.isfinite(logits).all()


def _fp8_gpu(monkeypatch, installed: set[str]):
    """An FP8-capable GPU as plan_precision sees it, with `installed` the packages present."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(precision, "installed", lambda module: module in installed)
    return torch.device("cuda")


def test_torchao_is_the_fp8_backend_even_with_transformer_engine_installed(monkeypatch):
    monkeypatch.delenv(precision.FP8_BACKEND_ENV, raising=False)
    gpu = _fp8_gpu(monkeypatch, {"torchao", "transformer_engine"})
    plan = plan_precision(Recipe(precision="fp8"), gpu)
    assert (plan.name, plan.fp8_backend) == ("fp8", "torchao")
    # transformer-engine alone does not make FP8 available: it is never chosen unasked
    gpu = _fp8_gpu(monkeypatch, {"transformer_engine"})
    plan = plan_precision(Recipe(precision="fp8"), gpu)
    assert (plan.name, plan.fp8_backend) == ("bf16", None)
    assert plan.reason == "fp8 unavailable: torchao is not installed (pip install torchao)"


def test_transformer_engine_only_when_asked_for(monkeypatch):
    monkeypatch.setenv(precision.FP8_BACKEND_ENV, "transformer_engine")
    plan = plan_precision(Recipe(precision="fp8"), _fp8_gpu(monkeypatch, {"torchao", "transformer_engine"}))
    assert (plan.name, plan.fp8_backend) == ("fp8", "transformer_engine") and "unverified" in plan.reason
    plan = plan_precision(Recipe(precision="fp8"), _fp8_gpu(monkeypatch, {"torchao"}))
    assert plan.reason == "fp8 unavailable: transformer-engine is not installed (pip install transformer-engine)"
    # emulation is torchao's own, whatever the variable says
    assert plan_precision(Recipe(precision="fp8", fp8_emulate=True), CPU).fp8_backend == "torchao"


@pytest.mark.parametrize("fp8_capable", [False, True], ids=["cpu", "fp8-capable-cuda"])
def test_an_unknown_fp8_backend_is_a_clear_error(monkeypatch, fp8_capable):
    monkeypatch.setenv(precision.FP8_BACKEND_ENV, "te")
    device = _fp8_gpu(monkeypatch, {"torchao"}) if fp8_capable else CPU
    with pytest.raises(UserError, match="ARCHSEARCH_FP8_BACKEND='te': not an FP8 backend; use one of torchao, "
                                        "transformer_engine"):
        plan_precision(Recipe(precision="fp8"), device)
    assert plan_precision(Recipe(precision="bf16"), CPU).name == "bf16"  # read only when fp8 is asked for


@pytest.mark.parametrize("fp8_recipe", ["tensorwise", "rowwise"])
def test_emulated_float8_conversion_trains(fp8_recipe):
    from torchao.float8.float8_linear import Float8Linear

    torch.manual_seed(0)
    reference = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64))
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64))
    model.load_state_dict(reference.state_dict())
    recipe = Recipe(precision="fp8", fp8_emulate=True, fp8_min_dim=16, fp8_recipe=fp8_recipe)
    _, layers = convert_model(model, "torchao", recipe)
    assert layers == ["0", "2"] and all(isinstance(model[i], Float8Linear) for i in (0, 2))
    x = torch.randn(256, 64)
    y = 0.5 * x.flip(-1)  # a function the stack can learn
    out, exact = model(x), reference(x)
    relative = (out - exact).norm() / exact.norm()
    assert 0 < relative < 0.1  # fp8 rounding happened, and stayed small
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert losses[-1] < 0.5 * losses[0]


def test_precision_plan_on_cpu():
    assert plan_precision(Recipe(), CPU).label == "fp32 (default on CPU)"
    bf16 = plan_precision(Recipe(precision="bf16"), CPU)
    assert bf16.autocast_dtype == torch.bfloat16
    fallback = plan_precision(Recipe(precision="fp8"), CPU)
    assert (fallback.name, fallback.fp8_backend, fallback.reason) == ("fp32", None, "fp8 unavailable: CPU")
    emulated = plan_precision(Recipe(precision="fp8", fp8_emulate=True), CPU)
    assert (emulated.name, emulated.fp8_backend) == ("fp8", "torchao")
    with pytest.raises(UserError, match="require_fp8 is set but FP8 is unavailable here: CPU"):
        plan_precision(Recipe(precision="fp8", require_fp8=True), CPU)


def test_require_fp8_fails_before_training(spec, tmp_path):
    with pytest.raises(UserError, match="require_fp8"):
        train(spec, TaskSpec(name="mqar", options={"vocab": 32}), Recipe(steps=1, precision="fp8", require_fp8=True,
              seq_len=32), out_dir=tmp_path / "r", progress=False, device="cpu")
    assert not (tmp_path / "r").exists()


def test_fp8_fallback_is_recorded(spec):
    result = train(spec, TaskSpec(name="mqar", options={"vocab": 16, "n_pairs": 2}),
                   Recipe(steps=2, batch_size=4, seq_len=16, precision="fp8"), progress=False, device="cpu")
    assert (result.precision, result.precision_reason, result.fp8_layers) == ("fp32", "fp8 unavailable: CPU", [])


def test_train_with_emulated_fp8_converts_the_hybrid_and_resumes(spec, tmp_path):
    recipe = Recipe(steps=6, batch_size=8, seq_len=16, precision="fp8", fp8_emulate=True, fp8_min_dim=16,
                    eval_every=3, warmup=0)
    task = TaskSpec(name="mqar", options={"vocab": 16, "n_pairs": 2})
    result = train(spec, task, recipe, out_dir=tmp_path / "r", progress=False, device="cpu")
    assert result.status == "completed" and result.precision == "fp8"
    assert "emulated" in result.precision_reason
    assert sorted(result.fp8_layers) == TINY_FP8_LAYERS  # every 16-aligned projection; the head never
    losses = [p["loss"] for p in result.curve if "loss" in p]
    assert all(torch.isfinite(torch.tensor(losses)))
    longer = train(spec, task, recipe.model_copy(update={"steps": 8}), out_dir=tmp_path / "r", resume=True,
                   progress=False, device="cpu")
    assert longer.steps == 8 and longer.fp8_layers == result.fp8_layers


@pytest.mark.gpu
def test_float8_on_an_fp8_gpu_converts_and_trains(spec):
    from archsearch.training.precision import fp8_blocker

    device = torch.device("cuda")
    if fp8_blocker(device) is not None:
        pytest.skip(f"no FP8 here: {fp8_blocker(device)}")
    recipe = Recipe(steps=4, batch_size=8, seq_len=32, precision="fp8", fp8_min_dim=16, warmup=0, eval_every=2)
    result = train(spec, TaskSpec(name="mqar", options={"vocab": 16, "n_pairs": 2}), recipe, progress=False,
                   device="cuda")
    assert result.precision == "fp8" and result.fp8_layers and result.status == "completed"
