"""archsearch's tables: studies, trials, ablations, ablation runs.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archsearch_studies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(512), nullable=False, unique=True, comment="the study name (= Optuna's study_name)"),
        sa.Column("optuna_study_id", sa.Integer(), nullable=True, comment="studies.study_id of Optuna's table"),
        sa.Column("space_hash", sa.String(64), nullable=False,
                  comment="hash of the search space + base spec; a rerun with another space is refused"),
        sa.Column("study_file", sa.JSON(), nullable=False, comment="the whole resolved study file (base spec inlined)"),
        sa.Column("objectives", sa.JSON(), nullable=False, comment="[{metric, direction}] in Optuna's value order"),
        sa.Column("n_trials_target", sa.Integer(), nullable=True,
                  comment="trials the study aims at (latest run's target)"),
        sa.Column("slots_taken", sa.Integer(), nullable=False,
                  comment="new trials started so far (retries excluded); workers reserve a slot atomically before "
                          "asking for a trial"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("archsearch_version", sa.String(64), nullable=False),
    )
    op.create_table(
        "archsearch_trials",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("archsearch_studies.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("optuna_trial_id", sa.Integer(), nullable=False, comment="trials.trial_id of Optuna's table"),
        sa.Column("number", sa.Integer(), nullable=False, comment="Optuna's trial number within the study"),
        sa.Column("retry_of", sa.Integer(), nullable=True,
                  comment="number of the trial this one re-runs (worker lost, Ctrl-C)"),
        sa.Column("status", sa.String(16), nullable=False, comment="one of running, completed, infeasible, invalid, "
                  "pruned, stopped, diverged, failed, interrupted"),
        sa.Column("params", sa.JSON(), nullable=False, comment="the sampled values, by Optuna parameter name"),
        sa.Column("spec", sa.JSON(), nullable=True,
                  comment="the full resolved ModelSpec (null if the sample made no valid spec)"),
        sa.Column("spec_hash", sa.String(64), nullable=True, comment="ModelSpec.spec_hash()"),
        sa.Column("pattern", sa.String(4200), nullable=True, comment="expanded pattern, one symbol per layer"),
        sa.Column("pattern_compact", sa.String(4200), nullable=True, comment="compress_pattern() of it"),
        sa.Column("n_params", sa.BigInteger(), nullable=True, comment="exact parameter count"),
        sa.Column("fits", sa.Boolean(), nullable=True,
                  comment="constraint verdict: true feasible, false infeasible"),
        sa.Column("budget", sa.JSON(), nullable=True,
                  comment="BudgetReport.to_dict() (breakdown bytes, budget_bytes, ...) per budget constraint"),
        sa.Column("constraints", sa.JSON(), nullable=True,
                  comment="Optuna constraint values by name (<= 0 satisfied)"),
        sa.Column("objectives", sa.JSON(), nullable=True, comment="objective values, study order"),
        sa.Column("metrics", sa.JSON(), nullable=True, comment="TrainResult metrics (val_loss, ...)"),
        sa.Column("curve", sa.JSON(), nullable=True, comment="[{step, val_loss, ...}] at each evaluation"),
        sa.Column("backends", sa.JSON(), nullable=True, comment="kernel backend used per op"),
        sa.Column("precision", sa.String(64), nullable=True),
        sa.Column("versions", sa.JSON(), nullable=True, comment="library versions of the run"),
        sa.Column("tokens_per_s", sa.Float(), nullable=True, comment="measured training throughput"),
        sa.Column("mfu", sa.Float(), nullable=True),
        sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=True, comment="measured peak memory"),
        sa.Column("train_time_s", sa.Float(), nullable=True, comment="time inside train()"),
        sa.Column("overhead_s", sa.Float(), nullable=True,
                  comment="time outside train(): sample, validate, budget, storage"),
        sa.Column("wall_time_s", sa.Float(), nullable=True, comment="whole trial"),
        sa.Column("error", sa.Text(), nullable=True, comment="why the trial did not complete"),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(256), nullable=True, comment="host:pid of the worker"),
        sa.Column("out_dir", sa.String(1024), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("study_id", "optuna_trial_id", name="uq_archsearch_trials_optuna"),
    )
    op.create_index("ix_archsearch_trials_study_status", "archsearch_trials", ["study_id", "status"])
    op.create_index("ix_archsearch_trials_spec_hash", "archsearch_trials", ["spec_hash"])
    op.create_table(
        "archsearch_ablations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(512), nullable=False, comment="base spec name + varied paths"),
        sa.Column("base_spec", sa.JSON(), nullable=False, comment="the resolved base ModelSpec"),
        sa.Column("base_hash", sa.String(64), nullable=False),
        sa.Column("vary", sa.JSON(), nullable=False, comment="[{path, values}] in command-line order"),
        sa.Column("seeds", sa.JSON(), nullable=False, comment="the seeds every cell ran with"),
        sa.Column("task", sa.JSON(), nullable=False, comment="TaskSpec"),
        sa.Column("recipe", sa.JSON(), nullable=False, comment="Recipe"),
        sa.Column("metric", sa.String(64), nullable=False, comment="the summarised metric (e.g. val_loss)"),
        sa.Column("summary", sa.JSON(), nullable=True, comment="per cell: mean, ci95, paired diff to base"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "archsearch_ablation_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ablation_id", sa.Integer(), sa.ForeignKey("archsearch_ablations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("cell", sa.String(1024), nullable=False,
                  comment="setting label, e.g. 'd_model=128,blocks.M.d_state=16'"),
        sa.Column("setting", sa.JSON(), nullable=False, comment="{path: value} of this cell"),
        sa.Column("is_base", sa.Boolean(), nullable=False, comment="the base spec's own setting"),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, comment="one of running, completed, diverged, failed"),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("curve", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True, comment="the whole TrainResult.to_dict()"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("wall_time_s", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("ablation_id", "cell", "seed", name="uq_archsearch_ablation_runs_cell"),
    )


def downgrade() -> None:
    op.drop_table("archsearch_ablation_runs")
    op.drop_table("archsearch_ablations")
    op.drop_index("ix_archsearch_trials_spec_hash", table_name="archsearch_trials")
    op.drop_index("ix_archsearch_trials_study_status", table_name="archsearch_trials")
    op.drop_table("archsearch_trials")
    op.drop_table("archsearch_studies")
