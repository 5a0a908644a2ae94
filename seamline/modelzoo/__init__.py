"""Models built from config on this machine: tiny test models and untrained detector baselines.

Nothing here downloads weights. Importing the package is cheap; torch and transformers are imported only when
a model is built (the ``train`` extra).
"""

from seamline.modelzoo.cache import TinyModels, ensure_tiny_models
from seamline.modelzoo.tiny_qwen import build_tiny_qwen2_5_vl
from seamline.modelzoo.tiny_rtdetr import build_tiny_rtdetr

__all__ = [
    "TinyModels",
    "build_tiny_qwen2_5_vl",
    "build_tiny_rtdetr",
    "ensure_tiny_models",
]
