"""The operator overlay: what the therapist sees on the desktop view, never the patient.

It lives entirely in ShowBase's ``aspect2d`` (drawn by the main window's own
2-D display region and camera), so a headset's eye buffers, which render
only the 3-D graph, can never show it. It draws:

* a text panel (top left): scene and level, pause / emergency-stop state,
  and the status lines the app was given (plate, balance-loop health,
  safety verdict);
* an inset (bottom right): the base of support outline with the live centre
  of pressure (CoP, red) and extrapolated centre of mass (XCoM, blue), seen
  from above, x right and y anterior (up on the screen).

Only node transforms and text change per frame; outlines are rebuilt when the
base of support changes, which keeps the overlay cheap (it is timed
separately in :class:`~vrbalance.world.app.FrameTiming`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from panda3d.core import CardMaker, LineSegs, NodePath, TextNode, TransparencyAttrib

if TYPE_CHECKING:
    from vrbalance.world.app import WorldApp

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

# --- tuning constants ----------------------------------------------------------
#: Half-width of the area shown in the inset, m (a wide stance fits).
INSET_HALF_M = 0.3
#: Inset half-size on screen, aspect2d units (screen height is 2 units).
INSET_HALF_UNITS = 0.28
#: Half-size of the CoP / XCoM markers, aspect2d units.
DOT_HALF_UNITS = 0.012
#: Text size, aspect2d units.
TEXT_SCALE = 0.045
#: A standing-feet-together-ish default base of support, m (used until the app
#: is given the real outline from the stance): 26 cm wide, 28 cm long.
DEFAULT_BOS_M: tuple[tuple[float, float], ...] = (
    (-0.13, -0.10),
    (0.13, -0.10),
    (0.13, 0.18),
    (-0.13, 0.18),
)


def _dot(parent: NodePath, rgba: tuple[float, float, float, float], name: str) -> NodePath:
    """A filled marker (square with a dark rim) for a point in the inset."""
    rim = CardMaker(f"{name}-rim")
    rim.setFrame(
        -DOT_HALF_UNITS * 1.5, DOT_HALF_UNITS * 1.5, -DOT_HALF_UNITS * 1.5, DOT_HALF_UNITS * 1.5
    )
    node = parent.attachNewNode(rim.generate())
    node.setColor(0, 0, 0, 1)
    card = CardMaker(name)
    card.setFrame(-DOT_HALF_UNITS, DOT_HALF_UNITS, -DOT_HALF_UNITS, DOT_HALF_UNITS)
    fill = node.attachNewNode(card.generate())
    fill.setColor(*rgba)
    fill.setY(-0.001)
    node.hide()
    return node


#: The keys line at the overlay's foot (a session's world shows its own: ``WorldApp.key_help``).
KEY_HELP = "Space pause  Esc stop  R clear  +/- level  1/2/3 scene  WASD lean"


class Overlay:
    """Operator overlay bound to one :class:`WorldApp` (see module docstring)."""

    def __init__(self, app: WorldApp) -> None:
        base = app.base
        self.app = app
        self.root: NodePath = base.aspect2d.attachNewNode("operator-overlay")
        self.root.setTransparency(TransparencyAttrib.M_alpha)
        # Text panel, anchored top-left.
        self._text = TextNode("overlay-text")
        self._text.setTextColor(1, 1, 1, 1)
        self._text.setShadow(0.06, 0.06)
        self._text.setShadowColor(0, 0, 0, 0.8)
        self._text.setCardColor(0, 0, 0, 0.45)
        self._text.setCardAsMargin(0.4, 0.4, 0.3, 0.3)
        text_np = base.a2dTopLeft.attachNewNode(self._text)
        text_np.reparentTo(self.root)
        text_np.setPos(base.a2dTopLeft, 0.05, 0, -0.08)
        text_np.setScale(TEXT_SCALE)
        self._text_np = text_np
        # Inset, anchored bottom-right.
        self.inset = self.root.attachNewNode("bos-inset")
        self.inset.setPos(base.a2dBottomRight, -INSET_HALF_UNITS - 0.05, 0, INSET_HALF_UNITS + 0.05)
        self._build_panel()
        self._bos_np: NodePath | None = None
        self._bos_drawn: tuple[tuple[float, float], ...] | None = None
        self.cop_dot = _dot(self.inset, (1.0, 0.25, 0.2, 1.0), "cop")
        self.xcom_dot = _dot(self.inset, (0.3, 0.6, 1.0, 1.0), "xcom")
        self._last_text = ""
        self.update(None)

    def _build_panel(self) -> None:
        h = INSET_HALF_UNITS
        card = LineSegs("inset-frame")
        card.setThickness(1.5)
        card.setColor(1, 1, 1, 0.8)
        for a, b in (
            ((-h, -h), (h, -h)),
            ((h, -h), (h, h)),
            ((h, h), (-h, h)),
            ((-h, h), (-h, -h)),
        ):
            card.moveTo(a[0], 0, a[1])
            card.drawTo(b[0], 0, b[1])
        # Cross-hair at the plate centre.
        card.setColor(1, 1, 1, 0.3)
        card.moveTo(-h, 0, 0)
        card.drawTo(h, 0, 0)
        card.moveTo(0, 0, -h)
        card.drawTo(0, 0, h)
        self.inset.attachNewNode(card.create())
        cm = CardMaker("inset-bg")
        cm.setFrame(-h, h, -h, h)
        bg = self.inset.attachNewNode(cm.generate())
        bg.setColor(0, 0, 0, 0.45)
        bg.setBin("fixed", -1)
        label = TextNode("inset-label")
        label.setText("CoP (red)  XCoM (blue)")
        label.setAlign(TextNode.A_center)
        label_np = self.inset.attachNewNode(label)
        label_np.setScale(0.035)
        label_np.setPos(0, 0, h + 0.02)

    def _to_inset(self, xy_m: Sequence[float]) -> tuple[float, float]:
        s = INSET_HALF_UNITS / INSET_HALF_M
        x = float(np.clip(xy_m[0] * s, -INSET_HALF_UNITS, INSET_HALF_UNITS))
        y = float(np.clip(xy_m[1] * s, -INSET_HALF_UNITS, INSET_HALF_UNITS))
        return x, y

    def _draw_bos(self, polygon: tuple[tuple[float, float], ...]) -> None:
        if self._bos_np is not None:
            self._bos_np.removeNode()
        segs = LineSegs("bos")
        segs.setThickness(2.5)
        segs.setColor(0.4, 1.0, 0.4, 1.0)
        pts = [self._to_inset(p) for p in polygon]
        segs.moveTo(pts[-1][0], 0, pts[-1][1])
        for x, y in pts:
            segs.drawTo(x, 0, y)
        self._bos_np = self.inset.attachNewNode(segs.create())
        self._bos_drawn = polygon

    def update(self, latest: Any) -> None:
        """Refresh from the latest balance snapshot and the app's status.

        ``latest`` is a ``TickResult`` (``.state`` and ``.verdict``, as the
        balance loop publishes), a bare ``BalanceState``, or ``None``.
        """
        app = self.app
        verdict = getattr(latest, "verdict", None)
        state = getattr(latest, "state", latest)
        polygon = (
            DEFAULT_BOS_M
            if app.bos_polygon_m is None
            else tuple((float(x), float(y)) for x, y in np.asarray(app.bos_polygon_m))
        )
        if polygon != self._bos_drawn:
            self._draw_bos(polygon)
        for dot, xy in (
            (self.cop_dot, getattr(state, "cop_m", None)),
            (self.xcom_dot, getattr(state, "xcom_m", None)),
        ):
            if xy is None:
                dot.hide()
            else:
                x, y = self._to_inset(xy)
                dot.setPos(x, 0, y)
                dot.show()
        lines = [f"{app.scene_def.title}  -  level {app.level}/{app.scene_def.n_levels}"]
        if app.emergency_stopped:
            lines.append("EMERGENCY STOP (R to clear)")
        elif app.paused:
            lines.append("PAUSED (Space to resume)")
        elif app.scene is not None and app.scene.calmed:
            lines.append("CALM: perturbations frozen")
        if state is not None:
            margin = getattr(state, "margin_xcom_m", None)
            if margin is not None:
                lines.append(f"XCoM margin {margin * 100:+.1f} cm")
        if verdict is not None and hasattr(verdict, "response"):
            label = getattr(verdict.response, "label", str(verdict.response))
            cause = getattr(verdict, "cause", None)
            cause_text = f" ({cause.value})" if cause is not None else ""
            lines.append(f"safety: {label}{cause_text}")
        for key in sorted(app.status):
            lines.append(f"{key}: {app.status[key]}")
        lines.append(getattr(app, "key_help", KEY_HELP))
        text = "\n".join(lines)
        if text != self._last_text:  # setText re-lays out glyphs; skip when unchanged
            self._text.setText(text)
            self._last_text = text

    @property
    def text(self) -> str:
        """The text panel's current content (tests, logs)."""
        return self._last_text

    def destroy(self) -> None:
        """Remove the overlay's nodes; idempotent."""
        if not self.root.isEmpty():
            self.root.removeNode()
