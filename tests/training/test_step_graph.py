"""recipe cuda_graph: the training step captured once and replayed (archsearch/training/step_graph.py).

On the CPU the capture runs through a stand-in runtime that replays by calling the captured step again on the
same static tensors: what a CUDA graph replays is the same kernels on the same memory, so the plumbing it checks is
the part that a real graph depends on (each step's batches copied into the static inputs, the learning rate set
on the tensor the optimizer reads, the outputs read (QueuedStep.queue copies them) before the next replay
overwrites them). The GPU tests capture for real."""

import contextlib

import pytest
import torch

from archsearch.errors import UserError
from archsearch.training import Recipe, TaskSpec, train
from archsearch.training.checkpoint import portable_optimizer_state
from archsearch.training.loop import Trainer
from archsearch.training.prepare import prepare
from archsearch.training.step_graph import WARMUP_STEPS, StepGraph, unsupported

SMALL_MQAR = TaskSpec(name="mqar", options={"vocab": 16, "n_pairs": 2})


class ReplayByCalling:
    """A CPU stand-in for CudaRuntime: capture leaves weights and optimizer as they were; replay calls the captured
    step on its static tensors, starting from absent gradients as the captured backward did, and copies the results
    into the static outputs, as a graph's kernels write them."""
    capturable = False  # CPU AdamW cannot be capturable; it does read a tensor learning rate

    def __init__(self, fail_with: Exception | None = None):
        self.fail_with, self.side_steps, self.captures, self.replays, self.frees = fail_with, 0, 0, 0, 0

    def free_cached(self):
        self.frees += 1

    @contextlib.contextmanager
    def side_stream(self):
        self.side_steps += 1
        yield

    def capture(self, body):
        self.captures += 1
        if self.fail_with is not None:
            raise self.fail_with
        # the captured backward must allocate the gradients (their first write is then a write, not a sum)
        assert all(p.grad is None for p in self._optimizer_params())
        restore = self._snapshot()  # a real capture runs nothing: this call only makes the outputs, then is undone
        loss, grad_norm, parts = body()
        static = (loss.detach().clone(), grad_norm.detach().clone(), {k: v.detach().clone() for k, v in parts.items()})
        restore()

        def replay():
            self.replays += 1
            for p in self._optimizer_params():  # the graph's first write into each gradient, as captured
                p.grad = None
            out = body()
            static[0].copy_(out[0])
            static[1].copy_(out[1])
            for k, v in out[2].items():
                static[2][k].copy_(v)

        return replay, static

    def watch(self, model, optimizer):
        self._optimizer_params = lambda: [p for group in optimizer.param_groups for p in group["params"]]

        def snapshot():
            weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
            state = {p: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
                     for p, s in optimizer.state.items()}

            def restore():
                model.load_state_dict(weights)
                for p, s in state.items():
                    optimizer.state[p] = {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
                optimizer.zero_grad(set_to_none=True)

            return restore

        self._snapshot = snapshot


def _run_steps(spec, steps: int, runtime=None):
    recipe = Recipe(steps=steps, batch_size=4, seq_len=16, lr=3e-3, warmup=2, schedule="cosine", grad_accum=2,
                    eval_every=steps, log_every=1, seed=3)
    run = prepare(spec, SMALL_MQAR, recipe, out_dir=None, device="cpu", resume=False)
    trainer = Trainer(run, callback=None, progress=False)
    if runtime is not None:
        runtime.watch(run.model, run.optimizer)
        trainer.step_graph = StepGraph(run.optimizer, run.device, runtime=runtime)
    result = trainer.run_to_end()
    return result, {k: v.clone() for k, v in run.model.state_dict().items()}, trainer


def test_replayed_steps_match_plain_steps(spec):
    """Every step's loss (read one behind, as run_to_end reads) and the final weights equal those of plain steps,
    under a cosine schedule (each replay's learning rate differs) and two micro-batches a step."""
    plain, plain_weights, _ = _run_steps(spec, 7)
    runtime = ReplayByCalling()
    graphed, graphed_weights, trainer = _run_steps(spec, 7, runtime)
    assert runtime.side_steps == WARMUP_STEPS and runtime.captures == 1 and runtime.replays == 7 - WARMUP_STEPS
    assert [p["loss"] for p in graphed.curve if "loss" in p] == [p["loss"] for p in plain.curve if "loss" in p]
    for name, value in plain_weights.items():
        torch.testing.assert_close(graphed_weights[name], value, rtol=0, atol=0, msg=name)
    assert trainer.step_graph.describe() == f"on: captured at step {WARMUP_STEPS + 1}, replayed after"
    assert graphed.extra["cuda_graph"] == trainer.step_graph.describe()
    # the capture step (a host-side run of the step and the graph's instantiation) is recorded, not timed
    timing = graphed.extra["timing"]
    assert timing["capture_step_s"] > 0 and graphed.extra["timed_steps"] == 7 - 2
    assert plain.extra["timing"]["capture_step_s"] is None and plain.extra["timed_steps"] == 7 - 1


def test_the_graph_is_given_back_when_the_steps_are_over(spec):
    """Its pool holds the step's memory: the final scoring and the process's next trial need it back. The record
    still says what the steps did."""
    runtime = ReplayByCalling()
    result, _, trainer = _run_steps(spec, 5, runtime)
    graph = trainer.step_graph
    assert graph.replay is None and graph.outputs is None and graph.inputs is None and runtime.frees == 1
    assert all(p.grad is None for p in trainer.run.model.parameters())  # they lived in the graph's pool
    assert all(type(g["lr"]) is float for g in trainer.run.optimizer.param_groups)
    assert result.extra["cuda_graph"] == f"on: captured at step {WARMUP_STEPS + 1}, replayed after"
    graph.release()  # a second time: nothing left to give back
    assert runtime.frees == 1


def test_a_failed_capture_leaves_plain_steps_that_match(spec):
    plain, plain_weights, _ = _run_steps(spec, 5)
    runtime = ReplayByCalling(fail_with=RuntimeError("operation not permitted when stream is capturing"))
    graphed, graphed_weights, trainer = _run_steps(spec, 5, runtime)
    assert runtime.captures == 1 and runtime.replays == 0
    assert [p["loss"] for p in graphed.curve if "loss" in p] == [p["loss"] for p in plain.curve if "loss" in p]
    for name, value in plain_weights.items():
        torch.testing.assert_close(graphed_weights[name], value, rtol=0, atol=0, msg=name)
    assert graphed.extra["cuda_graph"].startswith(f"off: the capture at step {WARMUP_STEPS + 1} failed (RuntimeError: "
                                                  "operation not permitted")
    assert all(not isinstance(g["lr"], torch.Tensor) for g in trainer.run.optimizer.param_groups)


def test_a_batch_of_another_shape_runs_plain(spec):
    runtime = ReplayByCalling()
    _, _, trainer = _run_steps(spec, WARMUP_STEPS + 2, runtime)
    graph = trainer.step_graph
    trainer.train_step()  # captured anew: the run's end gave the graph back
    assert runtime.captures == 2
    other = trainer.run.task.train_batch(0, 2)  # 2 rows, not the captured 4
    replays = runtime.replays
    graph.step(trainer.step_body, [other, other], 1e-3, trainer.step)
    assert runtime.replays == replays and graph.plain_steps == 1
    assert all(g["lr"] is graph.lr for g in trainer.run.optimizer.param_groups)  # the next replay's learning rate
    assert "1 step(s) with batches of another shape ran plain" in graph.describe()


def test_where_a_step_graph_does_not_apply():
    assert unsupported(torch.device("cpu"), False, None) == "needs a CUDA device (this run is on cpu)"
    assert "data-parallel" in unsupported(torch.device("cuda"), True, None)
    assert "Transformer Engine" in unsupported(torch.device("cuda"), False, "transformer_engine")
    assert unsupported(torch.device("cuda"), False, "torchao") is None
    assert unsupported(torch.device("cuda"), False, None) is None
    assert "distillation" in unsupported(torch.device("cuda"), False, None, distilling=True)


def test_cpu_run_asking_for_a_graph_trains_and_says_why_not(spec):
    result = train(spec, SMALL_MQAR, Recipe(steps=3, batch_size=4, seq_len=16, cuda_graph=True), progress=False,
                   device="cpu")
    assert result.status == "completed"
    assert result.extra["cuda_graph"] == "off: needs a CUDA device (this run is on cpu)"
    plain = train(spec, SMALL_MQAR, Recipe(steps=3, batch_size=4, seq_len=16), progress=False, device="cpu")
    assert plain.extra["cuda_graph"] == "off: not asked (recipe cuda_graph: false)"


def test_recipe_refuses_a_graph_of_a_distillation_step_unless_auto():
    with pytest.raises(ValueError, match="cuda_graph: true cannot capture a distillation step"):
        Recipe(cuda_graph=True, distill={"teacher": "runs/teacher"})
    assert Recipe(cuda_graph="auto", distill={"teacher": "runs/teacher"}).cuda_graph == "auto"
    assert Recipe().cuda_graph is False and Recipe(cuda_graph="yes").cuda_graph is True
    with pytest.raises(ValueError, match=r"cuda_graph 'sometimes' is not allowed; allowed: true, false, 'auto'"):
        Recipe(cuda_graph="sometimes")


def test_auto_graph_on_a_cpu_trains_plain_and_says_why(spec):
    result = train(spec, SMALL_MQAR, Recipe(steps=2, batch_size=4, seq_len=16, cuda_graph="auto"), progress=False,
                   device="cpu")
    assert result.status == "completed" and result.recipe["cuda_graph"] == "auto"
    assert result.extra["cuda_graph"] == "off: needs a CUDA device (this run is on cpu)"


def test_resume_may_turn_the_graph_on(spec, tmp_path):
    out = tmp_path / "run"
    train(spec, SMALL_MQAR, Recipe(steps=2, batch_size=4, seq_len=16), out_dir=out, progress=False, device="cpu")
    resumed = train(None, None, Recipe(steps=4, batch_size=4, seq_len=16, cuda_graph=True), out_dir=out, resume=True,
                    progress=False, device="cpu")
    assert resumed.steps == 4
    with pytest.raises(UserError, match="batch_size"):
        train(None, None, Recipe(steps=5, batch_size=8, seq_len=16, cuda_graph=True), out_dir=out, resume=True,
              progress=False, device="cpu")


def test_checkpoint_saves_a_captured_optimizer_as_a_plain_one():
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.AdamW([param], lr=1e-3)
    optimizer.param_groups[0]["lr"] = torch.tensor(2e-3)
    optimizer.param_groups[0]["capturable"] = True
    state = portable_optimizer_state(optimizer.state_dict())
    assert state["param_groups"][0]["lr"] == pytest.approx(2e-3) and type(state["param_groups"][0]["lr"]) is float
    assert state["param_groups"][0]["capturable"] is False
    assert isinstance(optimizer.param_groups[0]["lr"], torch.Tensor)  # the running optimizer is left as it was


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("compile_scope", [False, "layers"], ids=["eager", "layers"])
def test_gpu_graphed_steps_match_plain_steps(spec, compile_scope):
    """A real capture: the same losses and weights as plain steps (bf16 autocast; the kernels are the same, so only
    run-to-run nondeterminism such as atomics may differ), and the record says it was captured."""

    def run(cuda_graph):
        recipe = Recipe(steps=8, batch_size=8, seq_len=64, lr=3e-3, warmup=2, grad_accum=2, eval_every=4,
                        log_every=1, seed=5, compile=compile_scope, cuda_graph=cuda_graph)
        run = prepare(spec, SMALL_MQAR, recipe, out_dir=None, device="cuda", resume=False)
        trainer = Trainer(run, callback=None, progress=False)
        result = trainer.run_to_end()
        return result, {k: v.float().cpu() for k, v in run.model.state_dict().items()}

    plain, plain_weights = run(False)
    graphed, graphed_weights = run(True)
    assert graphed.extra["cuda_graph"] == f"on: captured at step {WARMUP_STEPS + 1}, replayed after"
    losses = [p["loss"] for p in plain.curve if "loss" in p]
    assert [p["loss"] for p in graphed.curve if "loss" in p] == pytest.approx(losses, rel=1e-3)
    for name, value in plain_weights.items():
        torch.testing.assert_close(graphed_weights[name], value, rtol=1e-3, atol=1e-4, msg=name)
    assert graphed.metrics["val_loss"] == pytest.approx(plain.metrics["val_loss"], rel=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_capture_that_waits_for_the_host_falls_back_to_plain_steps(spec):
    """A step that reads a value on the host (here the loss, through .item()) cannot be captured: the run goes on
    with plain steps and records why."""
    recipe = Recipe(steps=5, batch_size=8, seq_len=64, eval_every=5, seed=5, cuda_graph=True)
    run = prepare(spec, SMALL_MQAR, recipe, out_dir=None, device="cuda", resume=False)
    trainer = Trainer(run, callback=None, progress=False)
    body = trainer.step_body

    def host_reading_body(batches):
        loss, grad_norm, parts = body(batches)
        loss.item()
        return loss, grad_norm, parts

    trainer.step_body = host_reading_body
    result = trainer.run_to_end()
    assert result.status == "completed" and result.steps == 5
    assert result.extra["cuda_graph"].startswith(f"off: the capture at step {WARMUP_STEPS + 1} failed")
    assert "capturing" in result.extra["cuda_graph"]  # the body's own error, not the invalidated capture's
    # the process is left as it was: the default stream current, the allocator out of capture mode, and a new
    # capture possible (a study's next trial in the same worker)
    assert torch.cuda.current_stream() == torch.cuda.default_stream()
    torch.rand(1, device="cuda")  # the random generator out of capture mode (a new model's initialisation draws)
    torch.cuda.empty_cache()
    again = train(spec, SMALL_MQAR, Recipe(steps=4, batch_size=8, seq_len=64, eval_every=4, cuda_graph=True),
                  progress=False, device="cuda")
    assert again.extra["cuda_graph"] == f"on: captured at step {WARMUP_STEPS + 1}, replayed after"
