"""Hugging Face interop: specs from and to `config.json` of the NemotronH, Mamba2, Gemma2, Qwen3, Qwen2 and
Llama families. Imports no torch (a checkpoint export will load it lazily)."""

from .convert import (FAMILIES, HfImport, IgnoredConfigField, NotExpressibleError, export_hf_config, import_hf,
                      import_hf_config, usage_notes)
from .files import load_hf_config, load_hf_import, read_hf_config, write_hf_config

__all__ = ["FAMILIES", "HfImport", "IgnoredConfigField", "NotExpressibleError", "export_hf_config", "import_hf",
           "import_hf_config", "load_hf_config", "load_hf_import", "read_hf_config", "usage_notes",
           "write_hf_config"]
