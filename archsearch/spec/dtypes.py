"""Dtype names, in one table: the ones we know and their bytes per element, the ones a built model holds its
weights and caches in, and the short spellings a user may type. Names, not torch objects (spec imports no torch):
the builder maps each weight dtype to the torch dtype of the same name."""

from __future__ import annotations

from ..errors import UserError

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float8": 1}
# What a spec's param_dtype, the builder and Hugging Face configs may name (float8 is a compute/cache format only).
WEIGHT_DTYPES = ("float32", "bfloat16", "float16")
ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32",
           "fp8": "float8", "e4m3": "float8"}


def dtype_bytes(name: str) -> int:
    try:
        return DTYPE_BYTES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; allowed: {', '.join(DTYPE_BYTES)}") from None


def normalize_dtype(name: str, argument: str) -> str:
    """The canonical name of `name` (an alias such as bf16 allowed); `argument` names the option in the error."""
    key = ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if key not in DTYPE_BYTES:
        raise UserError(f"{argument}: unknown dtype {name!r}; allowed: {', '.join(DTYPE_BYTES)} "
                        f"(or {', '.join(ALIASES)})")
    return key
