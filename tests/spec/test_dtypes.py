"""archsearch.spec.dtypes: the one table of dtype names, and what reads it."""

from typing import get_args

import pytest

from archsearch.errors import UserError
from archsearch.spec import ModelSpec
from archsearch.spec.dtypes import ALIASES, DTYPE_BYTES, WEIGHT_DTYPES, dtype_bytes, normalize_dtype


def test_every_alias_and_weight_dtype_is_a_known_name():
    assert set(ALIASES.values()) <= set(DTYPE_BYTES) and set(WEIGHT_DTYPES) <= set(DTYPE_BYTES)
    assert get_args(ModelSpec.model_fields["param_dtype"].annotation) == WEIGHT_DTYPES


@pytest.mark.parametrize("name, canonical", [("bf16", "bfloat16"), (" FP32 ", "float32"), ("half", "float16"),
                                             ("e4m3", "float8"), ("bfloat16", "bfloat16")])
def test_aliases_normalize(name, canonical):
    assert normalize_dtype(name, "--kv-dtype") == canonical
    assert dtype_bytes(canonical) == {"float32": 4, "bfloat16": 2, "float16": 2, "float8": 1}[canonical]


def test_an_unknown_name_names_the_argument_and_the_allowed_ones():
    with pytest.raises(UserError, match=r"--act-dtype: unknown dtype 'int4'; allowed: float32, bfloat16, float16, "
                                        r"float8 \(or bf16"):
        normalize_dtype("int4", "--act-dtype")
