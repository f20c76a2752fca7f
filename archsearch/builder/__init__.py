"""archsearch.builder: spec -> model (`archsearch.build`), and the caches for prefill + decode."""

from .build import build
from .cache import ModelCache
from .checks import BackendUnavailable, check_backends
from .model import HybridLM

__all__ = ["BackendUnavailable", "HybridLM", "ModelCache", "build", "check_backends"]
