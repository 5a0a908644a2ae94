"""ensure_tiny_models builds into the cache once and then only reuses it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

pytest.importorskip("torch")
pytest.importorskip("transformers")


def test_second_call_reuses_the_cache(tmp_path, monkeypatch):
    from seamline.modelzoo import cache, tiny_qwen, tiny_rtdetr

    first = cache.ensure_tiny_models(tmp_path)
    assert first.rtdetr.parent == first.qwen.parent == tmp_path
    assert (first.rtdetr / "model.safetensors").exists()
    assert (first.qwen / "model.safetensors").exists()
    stamps = {
        p: p.stat().st_mtime_ns
        for p in (first.rtdetr / "model.safetensors", first.qwen / "model.safetensors")
    }

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(tiny_rtdetr, "build_tiny_rtdetr", no_rebuild)
    monkeypatch.setattr(tiny_qwen, "build_tiny_qwen2_5_vl", no_rebuild)
    second = cache.ensure_tiny_models(tmp_path)
    assert second == first
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted(
        [first.rtdetr.name, first.qwen.name]
    )


def test_cache_keys_name_the_builder_versions():
    from seamline.modelzoo import cache, tiny_qwen, tiny_rtdetr

    assert f"-b{tiny_rtdetr.BUILDER_VERSION}-" in cache.rtdetr_cache_key()
    assert f"-b{tiny_qwen.BUILDER_VERSION}-" in cache.qwen_cache_key()
