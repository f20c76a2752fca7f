"""archsearch.blocks: the nn.Modules a spec is built from. Kernels are reached only through archsearch.kernels."""

from .attention import Attention
from .embedding import Embedding, LMHead
from .init import Initializer
from .mamba2 import Mamba2Mixer
from .mlp import ACTIVATIONS, Mlp
from .norms import RMSNorm
from .residual import ResidualLayer
from .rope import Rotary
from .state import KVCache, MambaState

__all__ = ["ACTIVATIONS", "Attention", "Embedding", "Initializer", "KVCache", "LMHead", "Mamba2Mixer", "MambaState",
           "Mlp", "RMSNorm", "ResidualLayer", "Rotary"]
