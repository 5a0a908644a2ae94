"""The classifier a garment gets: the champion, or a candidate under a shadow or canary rollout.

``ClassifierRollout`` holds one ``VllmClassifier`` per endpoint the current rollout names (the champion as
configured in ``cloud.classifier`` or as promoted; the candidate as a LoRA adapter on the champion's servers
or on servers of its own) and reads the rollout state (cloud/storage/rollouts.py) before every garment, so a
change made on any machine decides the next garment without a restart. A garment keeps the classifier it
started with: what is in flight when the rollout changes finishes as it began, and an endpoint no longer named
is closed once nothing uses it.

* canary: the garments the state's hash picks are decided by the candidate. If the candidate answers none of
  a garment's crops (its server down, every request failing), the champion decides it instead and the
  verdict says so (``fallback``): a candidate's outage never stops the line.
* shadow: the champion decides; the garments the hash picks are also sent to the candidate in the
  background, after the champion answered, and its answers are stored (``shadow_answers``). The shadow never
  delays a verdict: when its backlog is full a garment is skipped and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cloud.classifiers.config import VllmClassifierConfig
from cloud.classifiers.vllm_backend import RegionClassification, VllmClassifier
from cloud.storage.rollout_state import Endpoint, RolloutState
from seamline.config.taxonomy import Taxonomy
from seamline.contract.messages import VerdictRollout

logger = logging.getLogger(__name__)

Crops = list[tuple[str, bytes, str]]  # (crop id, image bytes, encoding)


@dataclass
class Classified:
    """A garment's crops as classified, by which version, under which rollout."""

    results: list[RegionClassification]
    version: str
    prompt_version: str
    rollout: VerdictRollout


@dataclass
class _Served:
    classifier: VllmClassifier
    busy: int = 0


class ClassifierRollout:
    """Picks, per garment, the classifier the current rollout state names."""

    def __init__(
        self,
        base: VllmClassifierConfig,
        taxonomy: Taxonomy,
        *,
        read_state: Callable[[], RolloutState | None],
        store_shadow: Callable[[str, str, int, list[RegionClassification]], None],
        observe: Callable[[str, float, bool], None] | None = None,
        max_shadow_in_flight: int = 8,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        """``read_state`` returns the current state (blocking: run in a thread); ``store_shadow(item_id,
        version, revision, results)`` stores a shadow's answers; ``on_event(name, labels)`` counts things."""
        self.base = base
        self.taxonomy = taxonomy
        self._read_state = read_state
        self._store_shadow = store_shadow
        self._observe = observe
        self._on_event = on_event or (lambda name, labels: None)
        self._served: dict[tuple[Any, ...], _Served] = {}
        self._retired: list[_Served] = []
        self.state = RolloutState()
        self._shadow_slots = max_shadow_in_flight
        self._shadows: set[asyncio.Task] = set()
        self._lock = asyncio.Lock()

    # endpoints --------------------------------------------------------------------------------------------

    def _config_for(self, endpoint: Endpoint | None) -> VllmClassifierConfig:
        if endpoint is None:
            return self.base
        return self.base.model_copy(
            update={
                "model": endpoint.model,
                "model_version": endpoint.version,
                "base_url": endpoint.base_url or self.base.base_url,
            }
        )

    def _key(self, config: VllmClassifierConfig) -> tuple[Any, ...]:
        return (tuple(config.base_urls), config.model, config.model_version)

    def _served_for(self, endpoint: Endpoint | None) -> _Served:
        config = self._config_for(endpoint)
        key = self._key(config)
        served = self._served.get(key)
        if served is None:
            served = _Served(VllmClassifier(config, self.taxonomy, observe=self._observe))
            self._served[key] = served
        return served

    @property
    def champion(self) -> VllmClassifier:
        return self._served_for(self.state.champion).classifier

    def _apply(self, state: RolloutState) -> None:
        """Make ``state`` the one new garments get; retire the endpoints it no longer names."""
        wanted = {self._key(self._config_for(state.champion))}
        if state.candidate is not None and state.mode in ("shadow", "canary"):
            wanted.add(self._key(self._config_for(state.candidate)))
        for key in [k for k in self._served if k not in wanted]:
            self._retired.append(self._served.pop(key))
        previous, self.state = self.state, state
        self._served_for(state.champion)
        if state.candidate is not None and state.mode in ("shadow", "canary"):
            self._served_for(state.candidate)
        if previous.revision != state.revision:
            logger.info(
                "classifier rollout revision %d: %s%s (champion %s%s)",
                state.revision,
                state.mode,
                f" {state.share:g}" if state.share else "",
                self._config_for(state.champion).model_version or self.base.model,
                f", candidate {state.candidate.version}" if state.candidate else "",
            )
            self._on_event("revision", {"revision": state.revision})

    async def refresh(self) -> RolloutState:
        """Read the rollout state and apply it if it changed."""
        state = await asyncio.to_thread(self._read_state)
        async with self._lock:
            if state is not None and state.revision != self.state.revision:
                self._apply(state)
        return self.state

    async def _close_retired(self) -> None:
        idle = [s for s in self._retired if s.busy == 0]
        self._retired = [s for s in self._retired if s.busy > 0]
        for served in idle:
            await served.classifier.aclose()

    async def aclose(self) -> None:
        for task in list(self._shadows):
            task.cancel()
        await asyncio.gather(*self._shadows, return_exceptions=True)
        for served in [*self._served.values(), *self._retired]:
            await served.classifier.aclose()
        self._served.clear()
        self._retired.clear()

    # classifying ------------------------------------------------------------------------------------------

    async def classify_garment(
        self,
        item_id: str,
        crops: Crops,
        *,
        operator_note: str | None = None,
        sensor_readings: dict[str, str] | None = None,
    ) -> Classified:
        """Classify a garment's crops with the model the current rollout gives it."""
        state = await self.refresh()
        arm = state.arm_for(item_id)
        deciding = self._served_for(state.candidate if arm == "candidate" else state.champion)
        kwargs = {"operator_note": operator_note, "sensor_readings": sensor_readings}
        deciding.busy += 1
        try:
            results = list(await deciding.classifier.classify_garment(crops, **kwargs))
            fallback = False
            if arm == "candidate" and results and all(r.answer is None for r in results):
                logger.warning(
                    "the candidate %s answered none of the garment's crops (%s); the champion decides it",
                    deciding.classifier.model_version,
                    results[0].error,
                    extra={"item_id": item_id},
                )
                self._on_event("fallback", {})
                fallback = True
                champion = self._served_for(state.champion)
                champion.busy += 1
                try:
                    results = list(await champion.classifier.classify_garment(crops, **kwargs))
                finally:
                    champion.busy -= 1
                deciding = champion
        finally:
            deciding.busy -= 1
        if state.shadowed(item_id):
            self._shadow(state, item_id, crops, kwargs)
        await self._close_retired()
        decided_by = deciding.classifier
        self._on_event(
            "garment",
            {
                "version": decided_by.model_version,
                "arm": "candidate" if arm == "candidate" and not fallback else "champion",
            },
        )
        return Classified(
            results,
            decided_by.model_version,
            decided_by.prompt_version,
            VerdictRollout(
                revision=state.revision,
                mode=state.mode,
                share=state.share,
                arm="candidate" if arm == "candidate" and not fallback else "champion",
                candidate=state.candidate.version if state.candidate else None,
                fallback=fallback,
            ),
        )

    def _shadow(self, state: RolloutState, item_id: str, crops: Crops, kwargs: dict[str, Any]) -> None:
        """Classify the garment with the candidate in the background and store its answers."""
        if len(self._shadows) >= self._shadow_slots:
            self._on_event("shadow_skipped", {})
            return
        assert state.candidate is not None
        served = self._served_for(state.candidate)
        served.busy += 1

        async def run() -> None:
            started = time.perf_counter()
            try:
                results = await served.classifier.classify_garment(crops, **kwargs)
                await asyncio.to_thread(
                    self._store_shadow,
                    item_id,
                    served.classifier.model_version,
                    state.revision,
                    list(results),
                )
                self._on_event("shadow", {})
            except Exception:
                logger.exception(
                    "shadow classification failed after %.1f s (nothing routes on it)",
                    time.perf_counter() - started,
                    extra={"item_id": item_id},
                )
            finally:
                served.busy -= 1

        task = asyncio.create_task(run(), name=f"shadow-{item_id}")
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def drain_shadows(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for the shadow classifications in flight."""
        if self._shadows:
            await asyncio.wait(list(self._shadows), timeout=timeout)
