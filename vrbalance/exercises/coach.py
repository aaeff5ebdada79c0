"""The tai chi coach's sequences: keyframes as data (``scenes/tai_chi/*.toml``), pure.

A sequence is a list of keyframes, each a time and a whole-body pose of the
coach: where the weight is (``cop_x`` to the patient's right, ``cop_y``
forward, as fractions of the full shift :data:`FULL_SHIFT_M`), the trunk's
turn, the arms (raised forward, spread sideways), the knee bend and each
knee's lift (a single-leg phase). Between keyframes every value moves along
a smoothstep (slow in, slow out: tai chi never jerks), and the sequence loops.

The weight position *is* the prescription: the patient's CoP should follow
``target_cop_m(t)``; :mod:`vrbalance.exercises.tracking` measures how well it
did. The coach faces the patient and moves as a mirror does: when the patient
should shift to their right, the coach moves to the patient's right too.

File format::

    title = "Weight shifts and turns"
    description = "..."

    [[keyframes]]
    t_s = 0.0            # from the start, at tempo 1
    label = "ready"      # optional
    cop_x = 0.0          # -1 (full left) .. 1 (full right); up to 1.2 in single-leg phases
    cop_y = 0.0          # -1 (back) .. 1 (forward)
    turn_deg = 0.0       # trunk turn, positive to the patient's left (coach's right)
    arm_raise_deg = 0.0  # both arms raised forward (0 down, 90 horizontal)
    arm_spread_deg = 0.0 # both arms spread sideways
    knee_bend = 0.3      # 0 straight .. 1 deep bend
    lift_left = 0.0      # 0 .. 1: left knee lifted (weight on the right)
    lift_right = 0.0

Every error names the file, the keyframe and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vrbalance.config.check import Fields, load_toml
from vrbalance.errors import ConfigError
from vrbalance.resources import data_dir

#: The full weight shift a keyframe's ``cop_x``/``cop_y`` = 1 asks for, m
#: (ML, AP). 7 cm is 80 % of the way from the centre to a foot's centre in the
#: default feet-apart stance (17 cm between foot centres); 4 cm forward or back
#: stays well inside the feet's length (about 26 cm).
FULL_SHIFT_M = (0.07, 0.04)
POSE_FIELDS: tuple[str, ...] = (
    "cop_x",
    "cop_y",
    "turn_deg",
    "arm_raise_deg",
    "arm_spread_deg",
    "knee_bend",
    "lift_left",
    "lift_right",
)
_RANGES: dict[str, tuple[float, float]] = {
    "cop_x": (-1.2, 1.2),
    "cop_y": (-1.0, 1.0),
    "turn_deg": (-60.0, 60.0),
    "arm_raise_deg": (0.0, 150.0),
    "arm_spread_deg": (0.0, 100.0),
    "knee_bend": (0.0, 1.0),
    "lift_left": (0.0, 1.0),
    "lift_right": (0.0, 1.0),
}


@dataclass(frozen=True, slots=True)
class Keyframe:
    """One pose of the coach at ``t_s`` (tempo 1); fields as in the module docstring."""

    t_s: float
    label: str
    pose: tuple[float, ...]

    def value(self, name: str) -> float:
        return self.pose[POSE_FIELDS.index(name)]


@dataclass(frozen=True, slots=True)
class Sequence:
    """A tai chi sequence: title, description and keyframes in time order."""

    name: str
    title: str
    description: str
    keyframes: tuple[Keyframe, ...]

    @property
    def duration_s(self) -> float:
        """Length of one pass at tempo 1, s (the last keyframe's time)."""
        return self.keyframes[-1].t_s

    def pose_at(self, t_s: float, tempo: float = 1.0) -> dict[str, float]:
        """Every pose value at trial time ``t_s`` (the sequence loops), smoothstepped."""
        frames = self.keyframes
        period = self.duration_s
        u_t = max(0.0, t_s * tempo)
        if period > 0:
            u_t = u_t % period
        for k in range(len(frames) - 1):
            a, b = frames[k], frames[k + 1]
            if a.t_s <= u_t <= b.t_s:
                span = b.t_s - a.t_s
                u = 0.0 if span <= 0 else (u_t - a.t_s) / span
                s = u * u * (3.0 - 2.0 * u)
                return {
                    name: pa + (pb - pa) * s
                    for name, pa, pb in zip(POSE_FIELDS, a.pose, b.pose, strict=True)
                }
        return dict(zip(POSE_FIELDS, frames[-1].pose, strict=True))

    def target_cop_m(
        self, t_s: float, tempo: float = 1.0, amplitude: float = 1.0
    ) -> tuple[float, float]:
        """The CoP the patient should have at ``t_s``, relative to the quiet-stance CoP, m."""
        pose = self.pose_at(t_s, tempo)
        return (
            amplitude * FULL_SHIFT_M[0] * pose["cop_x"],
            amplitude * FULL_SHIFT_M[1] * pose["cop_y"],
        )

    def label_at(self, t_s: float, tempo: float = 1.0) -> str:
        """The label of the keyframe the coach is moving towards."""
        u_t = max(0.0, t_s * tempo) % max(self.duration_s, 1e-9)
        for frame in self.keyframes:
            if frame.t_s >= u_t:
                return frame.label
        return self.keyframes[-1].label


def sequences_dir() -> Path:
    """The shipped sequences folder (``scenes/tai_chi``)."""
    return data_dir("scenes") / "tai_chi"


def list_sequences() -> list[str]:
    """Names of the shipped sequences."""
    folder = sequences_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def read_sequence(path: str | Path) -> Sequence:
    """Read and validate one sequence file.

    Raises
    ------
    ConfigError
        A missing, unknown or out-of-range field, keyframes out of time
        order, or fewer than two keyframes; the message names the file,
        the keyframe (``[keyframes.N]``) and the field.
    """
    path = Path(path)
    fields = Fields(load_toml(path), str(path))
    title = fields.string("title")
    description = fields.string("description", default="")
    frames: list[Keyframe] = []
    for table in fields.tables("keyframes"):
        t_s = table.number("t_s", min_value=0.0, max_value=600.0)
        label = table.string("label", default="")
        pose = tuple(
            table.number(
                name,
                default=0.3 if name == "knee_bend" else 0.0,
                min_value=_RANGES[name][0],
                max_value=_RANGES[name][1],
            )
            for name in POSE_FIELDS
        )
        table.finish()
        if frames and t_s <= frames[-1].t_s:
            raise ConfigError(
                f"{table.where} t_s: keyframes must be in increasing time, got {t_s:g} s after "
                f"{frames[-1].t_s:g} s"
            )
        frames.append(Keyframe(t_s, label, pose))
    fields.finish()
    if len(frames) < 2:
        raise ConfigError(f"{path} keyframes: a sequence needs at least two keyframes")
    return Sequence(path.stem, title, description, tuple(frames))


def load_sequence(name_or_path: str | Path) -> Sequence:
    """A shipped sequence by name (``"weight_shifts"``) or a file by path."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text:
        return read_sequence(text)
    path = sequences_dir() / f"{text}.toml"
    if not path.is_file():
        known = ", ".join(list_sequences()) or "(none)"
        raise ConfigError(f"unknown tai chi sequence {text!r}; shipped: {known}")
    return read_sequence(path)


def sample_target(
    sequence: Sequence, t_s: list[float] | tuple[float, ...], tempo: float, amplitude: float
) -> list[tuple[float, float]]:
    """:meth:`Sequence.target_cop_m` at every time in ``t_s``."""
    return [sequence.target_cop_m(t, tempo, amplitude) for t in t_s]
