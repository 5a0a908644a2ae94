"""ensure_cpu_torch_compat lets transformers' and vLLM's imports succeed beside this environment's torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

pytest.importorskip("torch")
REPO = Path(__file__).resolve().parents[3]

_PROBE = """
import importlib.util, json, sys
from seamline.torch_compat import ensure_cpu_torch_compat
state = ensure_cpu_torch_compat()
assert ensure_cpu_torch_compat() is state  # idempotent
import transformers.processing_utils  # imports torchaudio when it looks installed
# imports torchvision:
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
print(json.dumps({
    "library": state.torchvision_library is not None,
    "hidden": list(state.hidden_packages),
    "hidden_look_absent": all(importlib.util.find_spec(p) is None for p in state.hidden_packages),
    "torchvision": "torchvision" in sys.modules,
}))
"""


def test_transformers_vision_processors_import_after_the_repair():
    pytest.importorskip("transformers")
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=REPO, timeout=180, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert state["hidden_look_absent"]
    assert state["torchvision"]


def test_vllm_server_module_imports_without_torch_in_the_launcher():
    # The launcher side (start_vllm_server) must not pay for torch or vLLM; only the server process does.
    code = (
        "import sys, cloud.classifiers.vllm_server as m\n"
        "print(','.join(x for x in ('torch', 'vllm', 'transformers') if x in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == ""
