"""Compression study files: what `archsearch compress PARENT_RUN --study FILE` searches. No torch.

    name: compress-tiny
    calibration: {batches: 8, batch_size: 8}     # importance from the parent's task (its first training batches)
    search:                                      # the candidate axes; every value a list of choices
      d_model: [96, 128]
      n_layers: [10, 12, 14]                     # depth: the parent's pattern minus its least important layers
      blocks:
        M: {n_heads: [2, 4], head_dim: [16, 32]} # Mamba-2: n_heads (a multiple of n_groups), head_dim
        "*": {n_heads: [2, 4], n_kv_heads: [1, 2]}
        "-": {ffn_dim: [192, 384]}
    constraints: {params: {max: 4.0e+5}, budget: [{device: a10g, context: 128k}]}   # as any study file's
    distill: {temperature: 1.0, alpha: 0.5}
    recipe: {steps: 20}                          # each candidate's short distillation (seq_len and batch_size
                                                 # default to the parent's)
    final: {steps: 200}                          # the best child's longer distillation: recipe fields over recipe
    sampler: {type: grid}                        # as any study file's; grid enumerates every candidate
    n_trials: 8
    storage: sqlite:///compress.db
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict

from ..limits import MAX_SAMPLER_SEED, MAX_TRIALS
from ..studies.documents import parse_model, read_yaml
from ..studies.study_file import Constraints, SamplerConfig

Choices = Annotated[list[Annotated[int, Strict(), Field(ge=1)]], Field(min_length=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Calibration(_Frozen):
    batches: Annotated[int, Strict(), Field(ge=1, le=10_000)] = 8
    batch_size: Annotated[int, Strict(), Field(ge=1, le=4096)] = 8


class SearchAxes(_Frozen):
    d_model: Choices | None = None
    n_layers: Choices | None = None
    blocks: dict[str, dict[str, Choices]] = Field(default_factory=dict)


class DistillSettings(_Frozen):
    temperature: Annotated[float, Field(gt=0, le=100)] = 1.0
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.5


class CompressionFile(_Frozen):
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]
    description: str | None = None
    calibration: Calibration = Calibration()
    search: SearchAxes
    constraints: Constraints = Constraints()
    distill: DistillSettings = DistillSettings()
    recipe: dict[str, Any] = Field(default_factory=dict)
    final: dict[str, Any] | None = None  # None: no longer distillation of the best child
    sampler: SamplerConfig = SamplerConfig(type="grid")
    n_trials: Annotated[int, Strict(), Field(ge=1, le=MAX_TRIALS)] = 8
    storage: str = "sqlite:///archsearch.db"
    seed: Annotated[int, Strict(), Field(ge=0, le=MAX_SAMPLER_SEED)] = 0
    device: str | None = None


def load_compression_file(path: str | Path) -> CompressionFile:
    """The file, every problem a FileError at file:line:col (a UserError)."""
    data, marks, source = read_yaml(path, "compression study file")
    return parse_model(CompressionFile, data, marks, source, "compression study file")
