"""`archsearch ablate` varies a task's options: the seq2seq transforms (and their combinations) against the base
over seeds, with paired differences of chrF++; a bad transform fails naming its cell before anything trains."""

import pytest

from archsearch.cli import main
from archsearch.errors import UserError
from archsearch.spec import loads_spec
from archsearch.studies.ablate import ablate
from archsearch.studies.ablation import build_cells, parse_vary

SPEC = """
name: tiny-attn
vocab_size: 258
d_model: 32
max_context: 32
pattern: "*-"
blocks:
  "*": {kind: attention, n_heads: 2, n_kv_heads: 2, head_dim: 16}
  "-": {kind: mlp, ffn_ratio: 2, activation: relu2}
"""
TASK = {"name": "seq2seq", "options": {"source": "copy", "toy_length": 3, "toy_letters": 4, "toy_pairs": 100,
                                       "generate_examples": 8}}
RECIPE = {"steps": 6, "batch_size": 8, "seq_len": 12, "eval_every": 6, "eval_batches": 1, "warmup": 1}


def test_task_axes_make_cells_with_task_options_and_the_base():
    base = loads_spec(SPEC)
    axes = parse_vary(["task.transforms=lang_tag,lang_tag+hint:start=0.5", "d_model=32,64"], base, TASK)
    cells = build_cells(base, axes, TASK)
    assert len(cells) == 1 + 4  # the base task (no transforms) is a cell of its own
    base_cell = cells[0]
    assert base_cell.is_base and base_cell.task_options == {"transforms": None} and base_cell.spec.d_model == 32
    assert cells[-1].task_options == {"transforms": "lang_tag+hint:start=0.5"} and cells[-1].spec.d_model == 64
    with pytest.raises(UserError, match="a task axis is task.OPTION"):
        parse_vary(["task.transforms=lang_tag"], base)


def test_an_explicit_default_is_the_base_cell_not_a_second_baseline():
    from archsearch.studies.ablate import with_option_defaults

    base = loads_spec(SPEC)
    task = with_option_defaults(TASK)
    assert task["options"]["transforms"] == [] and task["options"]["source"] == "copy"
    cells = build_cells(base, parse_vary(["task.transforms=[],lang_tag"], base, task), task)
    assert [(c.label, c.is_base) for c in cells] == [("task.transforms=[]", True),
                                                     ("task.transforms=lang_tag", False)]


def test_ablate_varies_transforms_over_seeds(tmp_path):
    db = f"sqlite:///{tmp_path / 'a.db'}"
    ablation, stored = ablate(loads_spec(SPEC), ["task.transforms=lang_tag,reverse:probability=1"], seeds=2,
                              task=TASK, recipe=RECIPE, metric="chrf_pp", storage=db)
    rows = ablation.summary()
    assert [r["cell"] for r in rows] == ["task.transforms=[]", "task.transforms=lang_tag",
                                         "task.transforms=reverse:probability=1"]
    assert all(r["n"] == 2 and r["failed"] == 0 for r in rows)
    assert all(r["diff"]["n"] == 2 and r["diff"]["ci95"] is not None for r in rows[1:])  # paired over the seeds
    for run in ablation.runs:
        transforms = run.result["task"]["transforms"]
        assert transforms == ([] if run.cell.is_base else [{"name": run.cell.task_options["transforms"].split(":")[0],
                                                              "options": {"probability": 1} if "reverse" in
                                                              run.cell.label else {}}])
    from starlette.testclient import TestClient

    from archsearch.dashboard.app import create_app

    page = TestClient(create_app(db)).get(f"/ablation/{stored}")  # stored in SQL, shown with its chart
    assert page.status_code == 200 and 'id="ablation-figure"' in page.text
    assert "task.transforms=reverse:probability=1" in page.text


def test_a_bad_transform_names_its_cell_before_training():
    with pytest.raises(UserError, match=r"ablation cell task.transforms=tag:.*unknown transform 'tag'; transforms: "
                                        "lang_tag, instruction, hint, reverse"):
        ablate(loads_spec(SPEC), ["task.transforms=lang_tag,tag"], seeds=1, task=TASK, recipe=RECIPE)


def test_cli_accepts_task_axes(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    code = main(["ablate", str(spec), "--vary", "task.transforms=hint:start=0.5:schedule=constant", "--seeds", "1",
                 "--task", "seq2seq", "-t", "source=copy", "-t", "toy_pairs=100", "-t", "generate_examples=4",
                 "--recipe", '{"steps": 2, "batch_size": 4, "seq_len": 12, "eval_batches": 1, "warmup": 1}',
                 "--metric", "exact_match"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "task.transforms=hint:start=0.5:schedule=constant" in out and "exact_match over seeds [0]" in out
