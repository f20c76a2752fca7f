"""The compression search space: a study space (archsearch.studies.space.SearchSpace) over the child's widths,
plus its depth. A depth choice is a whole pattern, the parent's minus its least important layers (fixed by the
parent's importance before the study starts), drawn as the Optuna parameter `pattern.n_layers`; the widths are
ordinary parameters (`d_model`, `blocks.M.n_heads`, ...) over the parent's spec with its sizes resolved. So the
study runner, its screen, storage and dashboard treat a compression study as any study. No torch."""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from ..spec import ModelSpec
from ..studies.params import CategoricalParam, draw, is_searched
from ..studies.paths import block_symbol
from ..studies.space import Sample, SearchSpace

DEPTH = "pattern.n_layers"


class CompressionSpace(SearchSpace):
    depths: dict[int, str] = {}  # n_layers -> the child's pattern (one symbol per layer)

    def _depth(self) -> CategoricalParam | None:
        if len(self.depths) < 2:
            return None
        return CategoricalParam(type="categorical", choices=sorted(self.depths))

    def names(self) -> list[str]:
        return ([DEPTH] if self._depth() else []) + [n for n, d in self.parameters.items() if is_searched(d)]

    def sample(self, source, base_pattern_symbols: set[str] | None = None) -> Sample:
        values: dict[str, Any] = {}
        pattern = None
        depth = self._depth()
        if depth is not None:
            values[DEPTH] = draw(depth, DEPTH, source)
            pattern = self.depths[values[DEPTH]]
        elif self.depths:
            pattern = next(iter(self.depths.values()))
        used = set(pattern) if pattern is not None else base_pattern_symbols
        for name, definition in self.parameters.items():
            symbol = block_symbol(name)
            if symbol is not None and used is not None and symbol not in used:
                continue  # the block is gone at this depth: its widths mean nothing
            values[name] = draw(definition, name, source)
        return Sample(pattern, values)

    def grid(self) -> dict[str, list[Any]]:
        grid = super().grid()
        depth = self._depth()
        return {DEPTH: depth.grid_values(), **grid} if depth is not None else grid


def compression_space(parent: ModelSpec, axes, depth_patterns: dict[int, str], widths_of) -> CompressionSpace:
    """The space of a compression file's `search` (`axes`) over the resolved `parent`; `depth_patterns`: n_layers ->
    pattern from the importance; `widths_of(kind)`: the fields pruning may narrow. Every choice is checked against
    the parent (a child is never wider than its parent)."""
    parameters: dict[str, Any] = {}

    def choices(path: str, values: list[int], limit: int) -> None:
        too_big = [v for v in values if v > limit]
        if too_big:
            raise UserError(f"search.{path}: {too_big} above the parent's {limit}; allowed: 1 .. {limit}")
        parameters[path] = CategoricalParam(type="categorical", choices=sorted(set(values)))

    if axes.d_model is not None:
        choices("d_model", axes.d_model, parent.d_model)
    for symbol, fields in axes.blocks.items():
        if symbol not in parent.blocks:
            raise UserError(f"search.blocks: the parent has no block {symbol!r}; blocks: "
                            f"{', '.join(repr(s) for s in parent.blocks)}")
        block = parent.blocks[symbol]
        allowed = widths_of(block.kind)
        for field, values in fields.items():
            if field not in allowed:
                raise UserError(f"search.blocks.{symbol}.{field}: pruning a {block.kind} block narrows only "
                                f"{', '.join(allowed)}")
            choices(f"blocks.{symbol}.{field}", values, getattr(block.dims(parent.d_model), field))
    if not parameters and len(depth_patterns) < 2:
        raise UserError("search: nothing is searched; give at least two choices of d_model, n_layers or a block width")
    return CompressionSpace(name="compression", parameters=parameters, depths=depth_patterns)
