"""Reading a Hugging Face config dict field by field, collecting every problem instead of stopping at the first.

Hugging Face configs are plain JSON; a field may be missing (then the family's default applies, exactly as
transformers would fill it in), of the wrong type, or hold a value archsearch cannot express. Each problem is a
SpecIssue whose path is the config field, so an import reports all of them at once.

The reader remembers every field it was asked about. At the end of an import, `unread` sorts the rest: fields
with no effect on the model (token ids, cache and output switches, dropout) and fields of the family that this
model does not use are acknowledged; mixture-of-experts sizes are problems (archsearch builds no MoE layers); any
other field is returned as a warning. So every field of a config is either used or reported, never dropped.
"""

from __future__ import annotations

import math
from typing import Any

from ..spec.errors import SpecError, SpecIssue

_MISSING = object()
# No config field is meaningfully larger: beyond it, arithmetic on the value (float(x), x * expand) would overflow
# before any range check of the spec could run. Exactly representable as a float.
MAX_MAGNITUDE = 1 << 53


def finite_number(value: Any) -> bool:
    """A JSON number (not a bool) that is finite and within MAX_MAGNITUDE (math.isfinite overflows on huge ints)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return abs(value) <= MAX_MAGNITUDE
    return math.isfinite(value) and abs(value) <= MAX_MAGNITUDE


# Fields that describe how a model is run, tokenised or trained, never what it computes.
NO_EFFECT = frozenset({
    "_name_or_path", "architectures", "model_type", "transformers_version", "dtype", "torch_dtype", "use_cache",
    "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id", "id2label",
    "label2id", "num_labels", "problem_type", "output_attentions", "output_hidden_states", "return_dict",
    "is_encoder_decoder", "is_decoder", "chunk_size_feed_forward", "attention_dropout", "hidden_dropout",
    "cache_implementation", "tokenizer_class", "auto_map", "task_specific_params", "finetuning_task",
    "torchscript", "use_return_dict", "pruned_heads", "tie_encoder_decoder", "add_cross_attention",
    "cross_attention_hidden_size", "prefix", "bad_words_ids", "max_length", "num_logits_to_keep",
})
# Mixture-of-experts sizes: a positive value means MoE layers, which an archsearch spec cannot hold yet.
MOE_SIZES = frozenset({
    "num_experts", "num_local_experts", "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size",
    "n_shared_experts", "num_shared_experts", "shared_expert_intermediate_size", "moe_num_experts",
    "moe_topk", "moe_layer_freq", "decoder_sparse_step", "first_k_dense_replace",
})


class ConfigReader:
    def __init__(self, config: dict, source: str | None = None):
        self.config = config
        self.source = source
        self.issues: list[SpecIssue] = []
        self.read: set[str] = set()  # every field asked about, present or not

    def has(self, key: str) -> bool:
        self.read.add(key)
        return self.config.get(key) is not None

    def acknowledge(self, *keys: str) -> None:
        """Fields the family read on purpose by another name or knows to be irrelevant for this model."""
        self.read.update(keys)

    def unread(self, family: str, family_fields: frozenset[str] = frozenset()) -> list[SpecIssue]:
        """Every field nobody read: MoE sizes become problems, fields of no effect or of the family (`family_fields`:
        transformers' config fields of this family, which this model does not use) are fine, the rest are returned
        as warnings, each naming the field."""
        warnings = []
        for key in self.config:
            if key in self.read or key in NO_EFFECT or key in family_fields:
                continue
            value = self.config[key]
            if key in MOE_SIZES:
                if value not in (None, 0, False, [], {}):
                    self.problem(key, "mixture-of-experts layers are not expressible in an archsearch spec yet",
                                 value if not isinstance(value, (dict, list)) else None, "no MoE fields (dense MLPs)")
                continue
            warnings.append(SpecIssue((key,), f"not a field of {family} configs: ignored (as transformers' {family} "
                                      "ignores it)",
                                      value if isinstance(value, (bool, int, float, str)) else None, None,
                                      self.source))
        return warnings

    def raw(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        value = self.config.get(key, default)
        return default if value is None else value

    def problem(self, key: str | tuple, message: str, value: Any = None, allowed: str | None = None) -> None:
        path = key if isinstance(key, tuple) else (key,)
        issue = SpecIssue(path, message, value, allowed, self.source)
        if not any(str(old) == str(issue) for old in self.issues):  # a field read twice is reported once
            self.issues.append(issue)

    def int(self, key: str, default: Any = _MISSING) -> int | None:
        value = self._get(key, default)
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or (isinstance(value, float) and not value.is_integer()):
            self.problem(key, "must be an integer", value)
            return None
        if not finite_number(value):
            self.problem(key, "out of range", value, f"a whole number of magnitude <= {MAX_MAGNITUDE}")
            return None
        return int(value)

    def count(self, key: str, default: Any, most: int) -> int:
        """A layer count, refused (as 0) outside 1 .. most before anything is built from it."""
        value = self.int(key, default)
        if value is None:
            return 0
        if not 1 <= value <= most:
            self.problem(key, "out of range", value, f"1 .. {most}")
            return 0
        return value

    def float(self, key: str, default: Any = _MISSING) -> float | None:
        value = self._get(key, default)
        if value is None:
            return None
        if finite_number(value):
            return float(value)
        self.problem(key, "must be a finite number", value, f"a number of magnitude <= {MAX_MAGNITUDE}")
        return None

    def positive(self, key: str, default: Any = _MISSING) -> float | None:
        """A finite number > 0 (a scale, a divisor): 0 or less is reported, never divided by."""
        value = self.float(key, default)
        if value is not None and value <= 0:
            self.problem(key, "must be a positive number", value, "> 0")
            return None
        return value

    def bool(self, key: str, default: Any = _MISSING) -> bool | None:
        value = self._get(key, default)
        if value is None or isinstance(value, bool):
            return value
        self.problem(key, "must be true or false", value)
        return None

    def str(self, key: str, default: Any = _MISSING) -> str | None:
        value = self._get(key, default)
        if value is None or isinstance(value, str):
            return value
        self.problem(key, "must be a string", value)
        return None

    def _get(self, key: str, default: Any) -> Any:
        self.read.add(key)
        value = self.config.get(key)
        if value is not None:
            return value
        if default is _MISSING:
            self.problem(key, "required field is missing")
            return None
        return default

    def raise_if_any(self) -> None:
        if self.issues:
            raise SpecError(self.issues, self.source)
