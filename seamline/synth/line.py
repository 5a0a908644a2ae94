"""The synthetic conveyor line: garment ``i`` of seed ``s``, with its views, defects, distractors and truth.

Every garment draws from its own seed sequence, ``SeedSequence(seed, spawn_key=(i,))``, split into four
streams: the garment (shape, cloth, print, trims), its defects, its distractors and its cameras. A garment
is therefore the same in any order, any process, and with or without its defects: ``with_defects=False``
skips the defect stream only, so the two renders differ exactly where defects were drawn.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from seamline.config.synth import GARMENT_KINDS, SynthConfig
from seamline.config.taxonomy import Taxonomy, default_taxonomy
from seamline.domain import Decision, Severity, expected_decision
from seamline.errors import ConfigError
from seamline.synth.defects import Patch, PlacedDefect, plan_defects, renderer_for
from seamline.synth.distractors import Distractor, draw_tags, drop_shadow, lay_belt, wrinkle_shade
from seamline.synth.garments import PaintedGarment, choose_look, draw_trims, garment_box, paint_garment
from seamline.synth.shapes import FEATURES, Layout, build_layout
from seamline.synth.textures import TextureBank, texture_bank
from seamline.synth.views import expose, plan_cameras, project_box, project_mask

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class SynthView:
    """One camera's frame of a garment."""

    view_index: int
    camera: str  # top | oblique_left | zoom | oblique_right
    image: np.ndarray  # (H, W, 3) uint8 RGB


@dataclass(frozen=True)
class DefectTruth:
    """A drawn defect as one view shows it."""

    view_index: int
    type_id: str
    severity: Severity
    box: Box  # x1, y1, x2, y2 in pixels, tight around the changed pixels
    defect_index: int  # the physical defect on the garment (the same in every view that shows it)
    size_cm: float  # its physical extent, from which the severity follows
    visible: float = 1.0  # share of its pixels inside this view's frame (a zoom may cut it)


@dataclass(frozen=True)
class DistractorTruth:
    """Something drawn that is not a defect and must not be detected as one."""

    view_index: int
    kind: str  # belt_mark | belt_splice | drop_shadow | wrinkle | crease | fold | care_label | hang_tag |
    #            lighting_gradient | cast_shadow
    box: Box
    text: str = ""  # what a label or tag says


@dataclass(frozen=True)
class SynthGarment:
    """A garment from the synthetic line with its ground truth."""

    item_id: str
    index: int
    garment_kind: str
    views: tuple[SynthView, ...]
    defects: tuple[DefectTruth, ...]
    distractors: tuple[DistractorTruth, ...]
    severities: tuple[Severity, ...]  # one per physical defect
    expected_decision: Decision

    def defects_in(self, view_index: int) -> tuple[DefectTruth, ...]:
        """The defect annotations of one view."""
        return tuple(d for d in self.defects if d.view_index == view_index)


@dataclass
class Scene:
    """A garment on the belt before any camera looks at it (canvas pixels)."""

    canvas: np.ndarray  # (H, W, 3) uint8 RGB, unlit
    garment: PaintedGarment  # layout, mask, layers
    defects: list[tuple[PlacedDefect, np.ndarray]]  # each drawn defect and the (window-sized) mask it changed
    distractors: list[Distractor]
    camera_rng: np.random.Generator  # the garment's camera stream, not yet used


class SyntheticLine:
    """A seeded procedural conveyor line of returned garments."""

    def __init__(self, config: SynthConfig | None = None, taxonomy: Taxonomy | None = None) -> None:
        self.config = config or SynthConfig()
        self.taxonomy = taxonomy or default_taxonomy()
        wanted = self.config.defect_types or list(self.taxonomy.type_ids)
        unknown = [t for t in wanted if t not in self.taxonomy.type_ids]
        if unknown:
            raise ConfigError(f"defect types not in the taxonomy: {', '.join(unknown)}")
        self.type_ids = list(wanted)
        renderers = [renderer_for(t) for t in self.type_ids]  # fails early for a type with no renderer
        kinds = list(self.config.garment_kinds or GARMENT_KINDS)
        self._needs: set[str] = set()
        if all(r.needs in ("buttons", "zipper", "print") for r in renderers):
            # every requested type needs a feature: only garments that carry one will do
            self._needs = {r.needs for r in renderers if r.needs}
            kinds = [k for k in kinds if FEATURES[k] & self._needs]
            if not kinds:
                raise ConfigError(f"no garment kind carries {', '.join(sorted(self._needs))}")
        self.kinds = kinds
        self.px_per_cm = self.config.px_per_cm

    @property
    def bank(self) -> TextureBank:
        """The line's texture bank (built on first use, cached per process)."""
        c = self.config
        return texture_bank(c.seed, c.height, c.width)

    def item_id(self, index: int) -> str:
        """The stable item id of garment ``index``."""
        c = self.config
        return f"{c.site_id}-{c.line_id}-{c.seed}-{index:06d}"

    def _streams(self, index: int) -> list[np.random.Generator]:
        seq = np.random.SeedSequence(entropy=self.config.seed, spawn_key=(index,))
        return [np.random.default_rng(s) for s in seq.spawn(4)]

    def _layout(self, rng: np.random.Generator) -> Layout:
        c = self.config
        for _ in range(30):
            kind = self.kinds[int(rng.integers(len(self.kinds)))]
            layout = build_layout(kind, rng, c.width, c.height, self.px_per_cm)
            have = {
                "buttons": len(layout.buttons) >= 2,
                "zipper": layout.zipper is not None,
                "print": layout.print_anchor is not None,
            }
            if not self._needs or any(have[n] for n in self._needs):
                return layout
        return layout

    def scene(self, index: int, *, with_defects: bool = True) -> Scene:
        """Garment ``index`` laid on the belt, before the cameras (for tests and debugging)."""
        if index < 0:
            raise ValueError("garment index must be >= 0")
        c = self.config
        g_rng, d_rng, x_rng, v_rng = self._streams(index)
        bank = self.bank
        layout = self._layout(g_rng)
        look = choose_look(layout.kind, g_rng)
        canvas, found = lay_belt(bank, c.width, c.height, x_rng, c.distractor_rate)
        found.append(drop_shadow(canvas, layout, x_rng))
        shade, creases = wrinkle_shade(
            layout, garment_box(layout, c.width, c.height), x_rng, c.distractor_rate
        )
        found += creases
        painted = paint_garment(canvas, layout, look, bank, shade, g_rng)
        trims = draw_trims(canvas, painted, g_rng)
        tags = draw_tags(canvas, painted, c, x_rng)
        found += tags
        drawn: list[tuple[PlacedDefect, np.ndarray]] = []
        if with_defects:
            plans = plan_defects(
                self.type_ids,
                painted,
                trims,
                defect_free_share=c.defect_free_share,
                max_defects=c.max_defects,
                small_share=c.small_defect_share,
                keep_out=[t.box for t in tags],
                ppc=self.px_per_cm,
                rng=d_rng,
            )
            for plan in plans:
                changed = self._draw(canvas, painted, plan, d_rng)
                if changed is not None:
                    drawn.append((plan, changed))
        return Scene(canvas, painted, drawn, found, v_rng)

    def garment(self, index: int, *, with_defects: bool = True) -> SynthGarment:
        """Render garment ``index``; ``with_defects=False`` renders the same garment intact."""
        c = self.config
        scene = self.scene(index, with_defects=with_defects)
        cameras = plan_cameras(c.views, c.width, c.height, scene.garment.box, scene.camera_rng)
        views, defects, distractors = [], [], []
        for k, cam in enumerate(cameras):
            image, band = expose(scene.canvas, cam, self.bank, scene.camera_rng)
            image.flags.writeable = False  # frames are handed to many consumers: none may edit another's
            views.append(SynthView(k, cam.name, image))
            for i, (plan, changed) in enumerate(scene.defects):
                seen = project_mask(changed, plan.window[:2], cam, c.width, c.height)
                if seen is not None:
                    defects.append(
                        DefectTruth(
                            view_index=k,
                            type_id=plan.type_id,
                            severity=plan.severity,
                            box=seen[0],
                            defect_index=i,
                            size_cm=round(plan.size.size_cm, 3),
                            visible=round(seen[1], 3),
                        )
                    )
            for dis in scene.distractors:
                box = project_box(dis.box, cam, c.width, c.height)
                if box is not None:
                    distractors.append(DistractorTruth(k, dis.kind, box, dis.text))
            distractors.append(
                DistractorTruth(k, "lighting_gradient", (0.0, 0.0, float(c.width), float(c.height)))
            )
            if band is not None:
                distractors.append(DistractorTruth(k, "cast_shadow", band))
        severities = tuple(plan.severity for plan, _ in scene.defects)
        return SynthGarment(
            item_id=self.item_id(index),
            index=index,
            garment_kind=scene.garment.layout.kind,
            views=tuple(views),
            defects=tuple(defects),
            distractors=tuple(distractors),
            severities=severities,
            expected_decision=expected_decision(list(severities), self.taxonomy.reject_at_severity),
        )

    def _draw(
        self, canvas: np.ndarray, painted: PaintedGarment, plan: PlacedDefect, rng: np.random.Generator
    ) -> np.ndarray | None:
        """Draw one defect inside its window; return the mask of pixels it changed (None if none)."""
        x0, y0, x1, y1 = plan.window
        win = (slice(y0, y1), slice(x0, x1))
        before = canvas[win].copy()
        origin = np.array([x0, y0], np.float32)
        patch = Patch(
            img=canvas[win],
            belt=painted.belt[win],
            base=painted.base[win],
            mask=painted.mask[win],
            origin=(x0, y0),
            px_per_cm=self.px_per_cm,
            color=painted.color,
            fabric=painted.look.fabric,
            angle=painted.layout.angle,
            at=(plan.at[0] - x0, plan.at[1] - y0),
            direction=plan.direction,
            points=None if plan.points is None else plan.points - origin,
            outward=plan.outward,
            unprinted=None if painted.unprinted is None else painted.unprinted[win],
            print_mask=None if painted.print_mask is None else painted.print_mask[win],
            extra=plan.extra,
        )
        renderer_for(plan.type_id).draw(patch, plan.size, rng)
        changed = np.any(canvas[win] != before, axis=2)
        if not changed.any():
            log.debug("defect %s drew nothing at %s", plan.type_id, plan.window)
            return None
        return changed.astype(np.uint8) * 255

    def stream(self, start: int = 0, count: int | None = None) -> Iterator[SynthGarment]:
        """Garments ``start``, ``start + 1``, ... (``count`` of them, or without end)."""
        i = start
        while count is None or i < start + count:
            yield self.garment(i)
            i += 1

    def __iter__(self) -> Iterator[SynthGarment]:
        return self.stream()
