"""Shared fixtures: a real MQTT broker, tiny models built once per session (see tests/fixtures).

The models module goes first: importing it repairs a CPU torch's CUDA-built companions before anything
imports transformers (see seamline.torch_compat).
"""

from tests.fixtures.models import tiny_models, tiny_qwen_dir, tiny_rtdetr_dir, vllm_server  # noqa: F401, I001
from tests.fixtures.broker import mqtt_broker  # noqa: F401
from tests.fixtures.secured_broker import secured_broker  # noqa: F401
from tests.fixtures.site_broker import site_broker  # noqa: F401
from tests.fixtures.s3 import s3_server  # noqa: F401
from tests.fixtures.postgres import postgres_url  # noqa: F401
