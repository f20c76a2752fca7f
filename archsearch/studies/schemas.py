"""JSON Schemas of study and space files, for editors (`archsearch schema --kind study|space`): the pydantic
models' own schemas, with what they leave open filled in from the models they are read into (`base:` / `target:`
a spec, `space:` a space, `recipe:` a training recipe, `objectives:` names or mappings) and a description on every
field of the two files for hover text. Torch-free."""

from __future__ import annotations

from typing import Any

from ..spec import ModelSpec
from ..training.recipe import Recipe
from .objectives import KNOWN
from .pattern_space import PatternSpace
from .space import SearchSpace
from .study_file import StudyFile

DRAFT = "https://json-schema.org/draft/2020-12/schema"

STUDY_FIELDS = {
    "name": "the study's name in storage (letters, digits, _ . : -)",
    "description": "free text, shown by study list and the dashboard",
    "base": "the spec that trains (the proxy): an example name, a spec file path relative to this file, or an "
            "inline spec",
    "target": "optional: the model searched for, as base; constraints and size objectives judge it, base trains",
    "space": "what is searched: a shipped space name (hybrid-tiny), a space file path relative to this file, or an "
             "inline space (pattern: and parameters:)",
    "task": "training task: a name (mqar) or {name, options} as train --task NAME -t KEY=VALUE",
    "recipe": "training recipe of every trial; its length is one of steps | tokens (5M) | flops (3e15, 3P): under "
              "tokens or flops each trial trains the steps its own size buys",
    "objectives": "metric names or {metric, direction}: " + ", ".join(KNOWN) + " (text adds val_ppl, "
                  "bits_per_byte); several make a Pareto front",
    "constraints": "budget: [{device, context, batch}] serving-memory checks before training; params: {min, max}; "
                   "a candidate that fails is recorded infeasible and never trains",
    "sampler": "{type: tpe | nsga2 | gp | random | grid | qmc | cmaes, ...}: other keys go to the Optuna sampler",
    "pruner": "Optuna pruner for one objective: {type: median | percentile | hyperband | ..., ...}",
    "early_stop": "several objectives: stop a trial dominated by completed ones at the same step",
    "halving": "successive halving: trials train rung by rung, the best fraction of each rung goes on",
    "n_trials": "how many candidates (retries count once); give n_trials or timeout_s",
    "timeout_s": "stop starting trials after this many seconds",
    "storage": "database URL: sqlite:///file.db or postgresql://...",
    "seed": "seed of the sampler and of every trial's training",
    "heartbeat": "a trial whose worker is silent for grace_s is failed and queued again",
    "device": "training device: cpu, cuda, cuda:N (default: cuda when present)",
    "gpus_per_trial": "> 1: each trial trains data-parallel under torchrun",
    "keep_checkpoints": "none: trials keep no run folder; all: each trial's run folder is kept beside the storage "
                        "(x.runs/<study>/trial-N for sqlite:///x.db); best: only the best trial's (or the Pareto "
                        "front's)",
    "reference": "optional: what the trials are compared against (a compression study's parent, a published "
                 "model): name, n_params, pattern, metrics {val_loss: ...}, source; the dashboard shows it beside "
                 "the best trials",
}

SPACE_FIELDS = {
    "name": "the space's name",
    "description": "free text",
    "pattern": "the layer-pattern generator (drawn first): n_layers, attention_count or attention_ratio, "
               "placement, local_global, mlp; or choices: [whole patterns]",
    "parameters": "spec fields by dotted path (d_model, blocks.M.d_state, norm.eps): a fixed value, or {type: int | "
                  "float | categorical, ...}; `when: {pattern.mlp: interleave}` draws it only then",
}

PATTERN_FIELDS = {
    "n_layers": "mixer layers (Mamba-2 or attention), MLP layers not counted",
    "attention_count": "how many mixers are attention (a number or a searched range)",
    "attention_ratio": "or: the attention share of n_layers, 0..1 (rounded)",
    "placement": "where attention goes: evenly, late (evenly through the last half), or 0-based positions [1, 4]",
    "local_global": "'K:G': attention alternates K sliding-window (symbol local) then G global layers; the last "
                    "attention layer is global when G > 0; unset: all global",
    "mlp": "interleave: an MLP after every mixer (M-*-); none: no MLP layers",
    "symbols": "the block symbols used: mamba M, attention *, local L, mlp -",
    "choices": "instead of the fields above: whole patterns to choose from (M-M-*-, (M-)x4 *-)",
}


def _describe(properties: dict[str, Any], descriptions: dict[str, str]) -> None:
    for name, text in descriptions.items():
        if name in properties:
            properties[name]["description"] = text


def _merge_defs(into: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` without its $defs, which join `into` (a name defined twice must mean the same)."""
    schema = dict(schema)
    for name, definition in schema.pop("$defs", {}).items():
        if into.setdefault(name, definition) != definition:
            raise ValueError(f"two different JSON Schema definitions named {name!r}")
    return schema


def space_schema() -> dict[str, Any]:
    schema = SearchSpace.model_json_schema(mode="validation")
    _describe(schema["properties"], SPACE_FIELDS)
    _describe(schema["$defs"][PatternSpace.__name__]["properties"], PATTERN_FIELDS)
    return {"$schema": DRAFT, **schema}


def study_schema() -> dict[str, Any]:
    schema = StudyFile.model_json_schema(mode="validation")
    defs = schema["$defs"]
    defs["ModelSpec"] = _merge_defs(defs, ModelSpec.model_json_schema(mode="validation"))
    defs["SearchSpace"] = _merge_defs(defs, {k: v for k, v in space_schema().items() if k != "$schema"})
    defs["Recipe"] = _merge_defs(defs, Recipe.model_json_schema(mode="validation"))
    for name, example in (("tokens", "5M"), ("flops", "3P")):  # read from text too (a before-validator)
        defs["Recipe"]["properties"][name]["anyOf"].append({"type": "string", "examples": [example]})
    props = schema["properties"]
    name_or = {"type": "string", "description": "a name or a file path relative to this file"}
    props["base"] = {"anyOf": [name_or, {"$ref": "#/$defs/ModelSpec"}]}
    props["target"] = {"anyOf": [name_or, {"$ref": "#/$defs/ModelSpec"}, {"type": "null"}], "default": None}
    props["space"] = {"anyOf": [name_or, {"$ref": "#/$defs/SearchSpace"}]}
    props["recipe"] = {"$ref": "#/$defs/Recipe"}
    props["task"] = {"anyOf": [{"type": "string"}, {
        "type": "object", "required": ["name"], "additionalProperties": False,
        "properties": {"name": {"type": "string"}, "options": {"type": "object"}}}]}
    props["objectives"]["items"] = {"anyOf": [{"type": "string", "examples": list(KNOWN)},
                                              {"$ref": "#/$defs/Objective"}]}
    _describe(props, STUDY_FIELDS)
    return {"$schema": DRAFT, **schema}
