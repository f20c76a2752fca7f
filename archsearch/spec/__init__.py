"""The model language: validated, immutable specs and their exact accounting. Imports no torch."""

from .accounting import (ParamCount, count_parameters, forward_flops_per_token, inference_state,
                         training_flops_per_token, weight_bytes)
from .blocks import AttentionBlock, BlockSpec, Mamba2Block, MlpBlock
from .errors import SpecError, SpecIssue
from .loader import dump_spec, example_names, load_spec, loads_spec, parse_spec
from .model import InitSpec, Layer, ModelSpec, NormSpec
from .pattern import PatternError, compress_pattern, expand_pattern
from .summary import summarize
from .units import parse_size

__all__ = [
    "AttentionBlock", "BlockSpec", "InitSpec", "Layer", "Mamba2Block", "MlpBlock", "ModelSpec", "NormSpec",
    "ParamCount", "PatternError", "SpecError", "SpecIssue", "compress_pattern", "count_parameters", "dump_spec",
    "example_names", "expand_pattern", "forward_flops_per_token", "inference_state", "load_spec", "loads_spec",
    "parse_size", "parse_spec", "summarize", "training_flops_per_token", "weight_bytes",
]
