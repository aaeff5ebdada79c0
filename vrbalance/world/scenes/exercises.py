"""The exercise scenes: heel-to-toe line, side leg raises, tai chi coach (all in the park).

Each is the park path (:class:`~vrbalance.world.scenes.park.ParkScene`, still:
no optic flow, no distractors, an even path) with the exercise's own things:

- :class:`TandemWalkScene`: the walking line on the floor from the origin
  along +y (the headset's stage space), a start bar and a turn marker at the
  line's length; the line narrows and becomes a beam whose surroundings sink
  away (``beam_height_m``: the floor is flat, the drop is an illusion);
  passers-by walk beside it and balloons float along it to be counted.
- :class:`LegRaisesScene`: a signpost ahead says which leg to raise and
  counts the hold; late in each hold the world fades to grey (eyes closed).
- :class:`TaiChiScene`: the coach (:class:`~vrbalance.world.figure.Figure`)
  performs the trial's sequence facing the patient, as a mirror.

The session's world tells a scene which trial runs and how long it has been
running (:meth:`follow_trial`), so the signpost, the fade and the coach move
in step with the prescription the measures use.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from panda3d.core import NodePath, TextNode, TransparencyAttrib

from vrbalance.exercises.coach import FULL_SHIFT_M, Sequence, load_sequence
from vrbalance.world import geometry as geo
from vrbalance.world.figure import COACH_OUTFIT, Figure, Outfit
from vrbalance.world.scene import EYE_HEIGHT_M, SceneContext
from vrbalance.world.scenes.park import ParkScene

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: The park around an exercise: a wide, even, still path.
PARK_VALUES: dict[str, float] = {
    "path_width_m": 2.4,
    "ground_unevenness_m": 0.0,
    "optic_flow_mps": 0.0,
    "distractor_count": 0,
    "fog_density_per_m": 0.003,
}
#: Walking line shown before a trial says otherwise (screenshots), m.
DEFAULT_WALK_LENGTH_M = 4.0
PAINT_RGBA = (0.97, 0.92, 0.35, 1.0)
BEAM_RGBA = (0.55, 0.38, 0.22, 1.0)
BEAM_TOP_RGBA = (0.85, 0.7, 0.45, 1.0)
#: Passers-by walk beside the line at these lateral distances, m, and speed, m/s.
PASSER_X_M = (1.5, -1.7, 2.1, -2.3, 2.7, -2.9)
PASSER_SPEED_MPS = (1.0, 1.3)
MAX_PASSERS = 6
MAX_BALLOONS = 12
#: The coach stands this far ahead of the patient, m.
COACH_DISTANCE_M = 2.6
#: The coach's weight shifts are drawn this many times larger than the target
#: CoP shift (a 7 cm CoP shift is a ~15 cm shift of the hips).
COACH_SHIFT_GAIN = 2.2
#: Where the coach's sequence starts without a trial, s (tempo 1).
NO_TRIAL_START_S = 9.0
#: Time the world takes to fade out or in for an eyes-closed segment, s.
FADE_S = 0.5


class _ExerciseParkScene(ParkScene):
    """The still park with hooks for an exercise (see module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._trial: Any = None
        self._trial_s = 0.0

    def _build(self, ctx: SceneContext) -> None:
        super()._build(ctx)
        self.params.update(PARK_VALUES)  # not level parameters here: fixed
        self._rebuild_ground()
        self._build_exercise(ctx)

    def _apply(self, changed: Mapping[str, float]) -> None:
        super()._apply(changed)
        self._apply_exercise(changed)

    def _animate(self, t_s: float, dt_s: float, head_xy_m: tuple[float, float]) -> None:
        super()._animate(t_s, dt_s, head_xy_m)
        if self._trial is None:
            self._trial_s += dt_s  # screenshots and the demo without a trial
        self._animate_exercise(dt_s)

    def follow_trial(self, trial: Any, elapsed_s: float) -> None:
        """The session's trial and its time since the first recorded tick, s."""
        self._trial = trial
        self._trial_s = max(0.0, float(elapsed_s))

    # hooks
    def _build_exercise(self, ctx: SceneContext) -> None:
        """Create the exercise's nodes."""

    def _apply_exercise(self, changed: Mapping[str, float]) -> None:
        """React to the level's exercise parameters."""

    def _animate_exercise(self, dt_s: float) -> None:
        """Per frame (not while calm)."""


# --------------------------------------------------------------------------- tandem walk


class TandemWalkScene(_ExerciseParkScene):
    """The heel-to-toe line (see module docstring)."""

    default_gaze_pitch_deg = -28.0
    #: The desktop camera of a session looks down at the line and faces the way
    #: the walker goes, as a walker does (a headset's own pose is never replaced).
    session_gaze_pitch_deg = -22.0
    session_faces_walking = True

    def __init__(self) -> None:
        super().__init__()
        self.walk_length_m = DEFAULT_WALK_LENGTH_M
        self._line: NodePath | None = None
        self._sunk: list[NodePath] = []
        self._passers: list[tuple[Figure, float, float, float]] = []
        self._balloons: list[tuple[NodePath, float, float]] = []
        self._walk_t = 0.0

    def _build_exercise(self, ctx: SceneContext) -> None:
        if self.world is None:
            return
        # Everything built so far is the park; a beam leaves it below.
        self._sunk = [c for c in self.world.getChildren()]
        rng = np.random.default_rng(ctx.scene_def.seed)
        passers_root = self.world.attachNewNode("passers-by")
        shirts = [(0.25, 0.35, 0.6, 1), (0.6, 0.2, 0.2, 1), (0.3, 0.5, 0.3, 1), (0.8, 0.7, 0.3, 1)]
        for i in range(MAX_PASSERS):
            outfit = Outfit(
                top=shirts[i % len(shirts)],
                trousers=(0.2, 0.2, 0.3, 1) if i % 2 else (0.35, 0.3, 0.25, 1),
                belt=None,
            )
            fig = Figure(passers_root, outfit, f"passer-{i}")
            direction = 1.0 if i % 2 == 0 else -1.0
            speed = float(rng.uniform(*PASSER_SPEED_MPS)) * direction
            fig.root.setH(0.0 if direction > 0 else 180.0)
            fig.root.hide()
            self._passers.append((fig, PASSER_X_M[i], float(rng.uniform(-4.0, 12.0)), speed))
        balloon_root = self.world.attachNewNode("balloons")
        colours = [
            (0.9, 0.15, 0.15, 1),
            (0.15, 0.35, 0.9, 1),
            (0.95, 0.8, 0.1, 1),
            (0.2, 0.7, 0.3, 1),
        ]
        for i in range(MAX_BALLOONS):
            node = balloon_root.attachNewNode(f"balloon-{i}")
            colour = colours[i % len(colours)]
            ball = geo.sphere(0.17, colour, rings=8, segments=12).transformed(scale=(1, 1, 1.2))
            string = geo.cylinder(0.004, 1.1, (0.9, 0.9, 0.9, 1), segments=4).transformed(
                translate=(0, 0, -1.3)
            )
            geo.attach_mesh(node, geo.concat([ball, string]), "balloon")
            side = 1.0 if i % 2 == 0 else -1.0
            x = side * float(rng.uniform(1.1, 2.4))
            y = float(rng.uniform(0.8, 7.5))
            node.setPos(x, y, float(rng.uniform(1.5, 2.3)))
            node.hide()
            self._balloons.append((node, float(rng.uniform(0, 6.28)), node.getZ()))
        self._rebuild_line()

    def set_walk_length(self, length_m: float) -> None:
        """Lay the line out ``length_m`` long (the operator's confirmed free floor)."""
        if length_m > 0 and abs(length_m - self.walk_length_m) > 1e-6:
            self.walk_length_m = float(length_m)
            self._rebuild_line()

    def follow_trial(self, trial: Any, elapsed_s: float) -> None:
        super().follow_trial(trial, elapsed_s)
        self.set_walk_length(float(getattr(trial, "walk_length_m", 0.0) or 0.0))

    def _rebuild_line(self) -> None:
        if self.world is None:
            return
        if self._line is not None:
            self._line.removeNode()
        self._line = self.world.attachNewNode("walking-line")
        length = self.walk_length_m
        width = self.params.get("line_width_m", 0.2)
        height = self.params.get("beam_height_m", 0.0)
        lift = 0.03  # above the path's gravel
        parts = []
        if height <= 0.0:
            parts.append(
                geo.box(width, length, 0.01, PAINT_RGBA).transformed(
                    translate=(0, length / 2, lift)
                )
            )
        else:
            depth = height + 0.3
            parts.append(
                geo.box(width, length, depth, BEAM_RGBA).transformed(
                    translate=(0, length / 2, lift - depth / 2)
                )
            )
            parts.append(
                geo.box(width * 0.9, length, 0.012, BEAM_TOP_RGBA).transformed(
                    translate=(0, length / 2, lift + 0.006)
                )
            )
            for k in range(int(length) + 1):  # trestles down into the sunken ground
                y = min(k * 1.0 + 0.2, length - 0.2)
                for sx in (-1.0, 1.0):
                    leg = geo.box(0.05, 0.05, depth + 0.4, BEAM_RGBA).transformed(
                        translate=(sx * (width / 2 + 0.03), y, lift - (depth + 0.4) / 2 - 0.02)
                    )
                    parts.append(leg)
        # Start bar (blue) and turn bar with a cone (orange) at the far end.
        parts.append(
            geo.box(0.6, 0.06, 0.015, (0.2, 0.35, 0.85, 1)).transformed(
                translate=(0, 0, lift + 0.01)
            )
        )
        parts.append(
            geo.box(0.6, 0.06, 0.015, (0.95, 0.45, 0.1, 1)).transformed(
                translate=(0, length, lift + 0.01)
            )
        )
        parts.append(
            geo.cone(0.12, 0.45, (0.95, 0.45, 0.1, 1), segments=12).transformed(
                translate=(0.45, length, lift)
            )
        )
        parts.append(
            geo.cone(0.12, 0.45, (0.95, 0.45, 0.1, 1), segments=12).transformed(
                translate=(-0.45, length, lift)
            )
        )
        geo.attach_mesh(self._line, geo.concat(parts), "line")
        for node in self._sunk:
            node.setZ(-height)

    def _apply_exercise(self, changed: Mapping[str, float]) -> None:
        if "line_width_m" in changed or "beam_height_m" in changed:
            self._rebuild_line()
        if "pedestrian_count" in changed or "count_objects" in changed:
            self._show_counts()

    def _show_counts(self) -> None:
        n_people = 0 if self.calmed else int(self.params.get("pedestrian_count", 0))
        for i, (fig, _, _, _) in enumerate(self._passers):
            fig.root.show() if i < n_people else fig.root.hide()
        n_balloons = int(self.params.get("count_objects", 0))
        for i, (node, _, _) in enumerate(self._balloons):
            node.show() if i < n_balloons else node.hide()
        self._place(0.0)

    def _place(self, dt_s: float) -> None:
        self._walk_t += dt_s
        t = self._walk_t
        sunk = self.params.get("beam_height_m", 0.0)
        for fig, x, y0, speed in self._passers:
            y = -6.0 + (y0 + 6.0 + speed * t) % 20.0
            fig.root.setPos(x, y, -sunk)
            fig.walk_pose(2 * math.pi * abs(speed) / 1.4 * t + y0)
        for node, phase, z0 in self._balloons:
            node.setZ(z0 + 0.08 * math.sin(0.8 * t + phase))

    def _animate_exercise(self, dt_s: float) -> None:
        self._place(dt_s)

    def _on_calm(self) -> None:
        super()._on_calm()
        for fig, _, _, _ in self._passers:
            fig.root.hide()  # nobody walks past a patient the world is calming

    def _on_resume(self) -> None:
        super()._on_resume()
        self._show_counts()


# --------------------------------------------------------------------------- leg raises


class LegRaisesScene(_ExerciseParkScene):
    """The signpost and the eyes-closed fade (see module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._text: TextNode | None = None
        self._shell: NodePath | None = None
        self._fade_alpha = 0.0

    def _build_exercise(self, ctx: SceneContext) -> None:
        if self.world is None or self.root is None:
            return
        post = self.world.attachNewNode("signpost")
        post.setPos(0.0, 3.2, 0.0)
        wood = (0.45, 0.32, 0.2, 1)
        geo.attach_mesh(
            post,
            geo.concat(
                [
                    geo.box(0.08, 0.08, 1.4, wood).transformed(translate=(-0.55, 0, 0.7)),
                    geo.box(0.08, 0.08, 1.4, wood).transformed(translate=(0.55, 0, 0.7)),
                    geo.box(1.35, 0.05, 0.55, (0.18, 0.3, 0.2, 1)).transformed(
                        translate=(0, 0, 1.6)
                    ),
                ]
            ),
            "post",
        )
        text = TextNode("leg-raise-cue")
        text.setAlign(TextNode.ACenter)
        text.setTextColor(1, 1, 0.9, 1)
        self._text = text
        node = post.attachNewNode(text)
        node.setPos(0, -0.04, 1.66)
        node.setScale(0.12)
        node.setLightOff(1)
        # The eyes-closed fade: a grey shell round the eye, drawn last, see-through until used.
        shell = geo.sphere(1.5, (0.5, 0.5, 0.5, 1), rings=8, segments=12).transformed(
            translate=(0, 0, EYE_HEIGHT_M)
        )
        self._shell = geo.attach_mesh(self.root, shell, "eyes-closed")
        self._shell.setTwoSided(True)
        self._shell.setLightOff(1)
        self._shell.setFogOff(1)
        self._shell.setBin("fixed", 100)
        self._shell.setDepthTest(False)
        self._shell.setDepthWrite(False)
        self._shell.setTransparency(TransparencyAttrib.M_alpha)
        self._shell.setAlphaScale(0.0)
        self._shell.hide()
        self._set_cue("Raise your LEFT leg\nto the side and hold")

    def _set_cue(self, message: str) -> None:
        if self._text is not None and self._text.getText() != message:
            self._text.setText(message)

    def _cue_now(self) -> tuple[str, bool]:
        """The signpost's text and whether the eyes are closed now."""
        from vrbalance.exercises.plan import exercise_plan, raise_schedule

        trial = self._trial
        if trial is None:
            return "Raise your LEFT leg\nto the side and hold", False
        level = int(getattr(trial, "level", None) or 1)
        plan = exercise_plan(trial, level)
        if plan is None:
            return "", False
        t = self._trial_s
        closed_s = plan.eyes_closed_fraction * plan.hold_s
        for cue in raise_schedule(plan, float(trial.duration_s)):
            if t < cue.up_s:
                return f"Rest\nnext: {cue.side.upper()} leg", False
            if t <= cue.down_s:
                left = cue.down_s - t
                return (
                    f"{cue.side.upper()} leg up\nhold {left:.0f} s",
                    closed_s > 0 and left <= closed_s,
                )
        return "Well done\nrest", False

    def _animate_exercise(self, dt_s: float) -> None:
        message, closed = self._cue_now()
        self._set_cue(message)
        step = dt_s / FADE_S
        self._fade_alpha = (
            min(1.0, self._fade_alpha + step) if closed else max(0.0, self._fade_alpha - step)
        )
        self._show_fade()

    def _show_fade(self) -> None:
        if self._shell is None:
            return
        if self._fade_alpha <= 0.0:
            self._shell.hide()
        else:
            self._shell.show()
            self._shell.setAlphaScale(self._fade_alpha)

    def _on_calm(self) -> None:
        super()._on_calm()
        self._fade_alpha = 0.0  # calm means a visible, still world
        self._show_fade()


# --------------------------------------------------------------------------- tai chi


class TaiChiScene(_ExerciseParkScene):
    """The coach performing the sequence facing the patient (see module docstring)."""

    default_gaze_pitch_deg = -6.0

    def __init__(self) -> None:
        super().__init__()
        # Without a trial (screenshots, a still demo) the coach starts mid-sequence,
        # in a posture that shows what it does, rather than standing ready.
        self._trial_s = NO_TRIAL_START_S
        self.coach: Figure | None = None
        self._sequences: dict[str, Sequence] = {}
        self._label: TextNode | None = None

    def _build_exercise(self, ctx: SceneContext) -> None:
        if self.world is None:
            return
        mat = geo.cylinder(0.9, 0.02, (0.55, 0.15, 0.12, 1), segments=24).transformed(
            translate=(0, COACH_DISTANCE_M, 0.02), scale=(1.0, 0.8, 1.0)
        )
        geo.attach_mesh(self.world, mat, "mat")
        self.coach = Figure(self.world, COACH_OUTFIT, "coach", loose=True)
        self.coach.root.setPos(0.0, COACH_DISTANCE_M, 0.03)
        self.coach.root.setH(180.0)  # facing the patient
        label = TextNode("coach-move")
        label.setAlign(TextNode.ACenter)
        label.setTextColor(1, 1, 1, 1)
        label.setShadow(0.05, 0.05)
        label.setShadowColor(0, 0, 0, 0.8)
        self._label = label
        node = self.world.attachNewNode(label)
        node.setPos(0, COACH_DISTANCE_M + 0.5, 2.25)
        node.setScale(0.13)
        node.setLightOff(1)
        self._pose()

    def sequence(self) -> Sequence:
        """The sequence the coach performs now (the trial's, else the level's)."""
        name = str(getattr(self._trial, "sequence", "") or "")
        if not name:
            name = "single_leg" if int(self.params.get("single_leg_phases", 0)) else "weight_shifts"
        if name not in self._sequences:
            self._sequences[name] = load_sequence(name)
        return self._sequences[name]

    def _pose(self) -> None:
        if self.coach is None:
            return
        seq = self.sequence()
        tempo = self.params.get("tempo", 1.0)
        amplitude = self.params.get("amplitude_frac", 1.0)
        pose = seq.pose_at(self._trial_s, tempo)
        # Mirror: the coach faces the patient, so the patient's right (world +x)
        # is the coach's own left (-x), and the patient's left leg is its right.
        shift_x = -COACH_SHIFT_GAIN * amplitude * FULL_SHIFT_M[0] * pose["cop_x"]
        shift_y = COACH_SHIFT_GAIN * amplitude * FULL_SHIFT_M[1] * pose["cop_y"]
        self.coach.set_stance(
            shift_x_m=shift_x,
            shift_y_m=shift_y,
            knee_bend=pose["knee_bend"],
            lift_l=pose["lift_right"],
            lift_r=pose["lift_left"],
        )
        self.coach.set_turn(-pose["turn_deg"])
        self.coach.set_arms(
            raise_deg=pose["arm_raise_deg"],
            spread_deg=pose["arm_spread_deg"],
            elbow_deg=20.0 + 0.25 * pose["arm_raise_deg"],
        )
        if self._label is not None:
            self._label.setText(seq.label_at(self._trial_s, tempo))

    def _apply_exercise(self, changed: Mapping[str, float]) -> None:
        self._pose()

    def _animate_exercise(self, dt_s: float) -> None:
        self._pose()


__all__ = ["LegRaisesScene", "TaiChiScene", "TandemWalkScene"]
