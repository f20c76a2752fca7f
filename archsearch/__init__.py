"""archsearch: declarative architecture search and ablation for hybrid language models.

Light at import: the spec layer imports no torch; `build` and the rest load their parts on first use.
"""

from .spec import ModelSpec, SpecError, load_spec

__version__ = "0.1.0"
__all__ = ["ModelSpec", "SpecError", "load_spec", "build", "__version__"]


def __getattr__(name: str):
    if name == "build":  # torch is imported only when a model is actually built
        from .builder import build

        return build
    raise AttributeError(f"module 'archsearch' has no attribute {name!r}")
