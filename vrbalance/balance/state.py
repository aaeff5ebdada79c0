"""The immutable snapshot the balance loop publishes every tick."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BalanceState:
    """What the balance core knows at one loop tick.

    Positions are horizontal ``(x, y)`` in metres in the core frame (x right,
    y anterior, origin at the centre of the feet); margins are signed distances
    to the base-of-support boundary, positive inside. ``None`` means the
    quantity is not available this tick (no plate, CoP undefined below the
    minimum load, no head pose yet).

    Attributes
    ----------
    tick : int
        Loop tick index, from 0.
    t_s : float
        Loop time of this tick on the injected clock, in seconds.
    stance : str
        Name of the stance whose base of support the margins refer to.
    cop_m : tuple of 2 float or None
        Centre of pressure.
    vertical_force_n : float or None
        Total vertical load on the plate in N.
    plate_loaded : bool
        False when a plate is present but the load is under the minimum
        (stepping off shows this way).
    com_m : tuple of 2 float or None
        Horizontal centre of mass estimate.
    com_velocity_mps : tuple of 2 float or None
        Its velocity in m/s.
    xcom_m : tuple of 2 float or None
        Extrapolated centre of mass ``CoM + v/ω0`` (Hof 2005).
    margin_xcom_m : float or None
        Margin of stability: signed distance of XCoM to the BoS.
    margin_cop_m : float or None
        Signed distance of the CoP to the BoS.
    head_position_m : tuple of 3 float or None
        Latest head position (x, y, z).
    head_age_s : float or None
        How old the newest head pose is at this tick (staleness), in s.
    plate_age_s : float or None
        How old the newest plate frame is at this tick, in s.
    sway_angle_ap_rad : float or None
        Antero-posterior sway angle of the CoM about the ankles (forward
        positive), for the SOT equilibrium score.
    com_source : str or None
        Where ``com_m`` came from: ``"head"`` (inverted pendulum from the head
        pose) or ``"cop"`` (low-passed CoP, when no fresh head pose exists).
    """

    tick: int
    t_s: float
    stance: str
    cop_m: tuple[float, float] | None = None
    vertical_force_n: float | None = None
    plate_loaded: bool = False
    com_m: tuple[float, float] | None = None
    com_velocity_mps: tuple[float, float] | None = None
    xcom_m: tuple[float, float] | None = None
    margin_xcom_m: float | None = None
    margin_cop_m: float | None = None
    head_position_m: tuple[float, float, float] | None = None
    head_age_s: float | None = None
    plate_age_s: float | None = None
    sway_angle_ap_rad: float | None = None
    com_source: str | None = None
