"""Configuration: pydantic models (unknown keys rejected) loaded from YAML with line-numbered errors."""

from seamline.config.models import SeamlineConfig, load_config
from seamline.config.taxonomy import Taxonomy, default_taxonomy, load_taxonomy

__all__ = ["SeamlineConfig", "Taxonomy", "default_taxonomy", "load_config", "load_taxonomy"]
