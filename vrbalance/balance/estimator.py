"""Per-tick fusion of plate frames and head poses into a :class:`BalanceState`.

The balance loop calls :meth:`BalanceEstimator.update` once per tick (250 Hz
to 1 kHz) with the frames and the newest head pose that arrived since the
previous tick. Everything here is plain float arithmetic on a handful of
numbers: at 1 kHz, numpy's per-call overhead would cost more than the maths.
The estimator reads no clock: the loop passes the tick time ``t_s``.

CoM source
----------
With a fresh head pose (younger than ``max_head_age_s``) the CoM comes from
the inverted-pendulum model of :mod:`vrbalance.balance.com`. Without one, and
with a loaded plate, it falls back to the CoP low-passed by a causal
2nd-order Butterworth filter (``cop_com_cutoff_hz``, default 1 Hz): the CoP
oscillates about the CoM's floor projection, so its slow part is a crude CoM
estimate (it lags by a few hundred ms). ``BalanceState.com_source`` says which
was used.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from vrbalance.balance.com import (
    DEFAULT_MAX_GAP_S,
    DEFAULT_VELOCITY_CUTOFF_HZ,
    HeadComEstimator,
    SmoothedDerivative,
)
from vrbalance.balance.cop import PlateGeometry, cop_xy, minimum_load_n
from vrbalance.balance.geometry import Body
from vrbalance.balance.stance import Stance
from vrbalance.balance.state import BalanceState
from vrbalance.samples import HeadPose, PlateFrame

logger = logging.getLogger(__name__)

#: Cut-off of the CoP low-pass used as a CoM estimate without a head pose, Hz.
DEFAULT_COP_COM_CUTOFF_HZ = 1.0
#: A head pose older than this no longer drives the CoM (then the CoP does), s.
DEFAULT_MAX_HEAD_AGE_S = 0.2


class BalanceEstimator:
    """Turns each tick's samples into an immutable :class:`BalanceState`.

    Parameters
    ----------
    stance : Stance
        Gives the base of support for the margins and the ankle axis.
    body : Body
        Pendulum dimensions and (through the mass) the default minimum load.
    plate : PlateGeometry or None
        Geometry of the plate whose frames are passed in; ``None`` when
        running from the head pose alone.
    min_load_n : float or None
        Minimum vertical load for a defined CoP, N. Default: 5 % of body
        weight if the mass is known, else 20 N.
    velocity_cutoff_hz : float
        Cut-off of the causal filter for the head-based CoM velocity, Hz.
    cop_com_cutoff_hz : float
        Cut-off of the CoP low-pass used as a CoM without a head pose, Hz.
    max_head_age_s : float
        Age beyond which a head pose no longer drives the CoM, s.
    max_gap_s : float
        Gap between samples after which the filters restart, s.
    """

    def __init__(
        self,
        stance: Stance,
        body: Body,
        plate: PlateGeometry | None = None,
        *,
        min_load_n: float | None = None,
        velocity_cutoff_hz: float = DEFAULT_VELOCITY_CUTOFF_HZ,
        cop_com_cutoff_hz: float = DEFAULT_COP_COM_CUTOFF_HZ,
        max_head_age_s: float = DEFAULT_MAX_HEAD_AGE_S,
        max_gap_s: float = DEFAULT_MAX_GAP_S,
    ) -> None:
        if min_load_n is None:
            min_load_n = minimum_load_n(body.mass_kg)
        if not (min_load_n > 0.0 and math.isfinite(min_load_n)):
            raise ValueError(f"min_load_n: expected a positive force in N, got {min_load_n!r}")
        if not (max_head_age_s > 0.0):
            raise ValueError(f"max_head_age_s: expected a positive time, got {max_head_age_s!r}")
        self.stance = stance
        self.body = body
        self.plate = plate
        self.min_load_n = float(min_load_n)
        self._bos = stance.base_of_support
        self._ankle_y = stance.ankle_m[1]
        self._pendulum_m = body.pendulum_length_m
        self._omega0 = body.omega0_rad_s
        self._max_head_age_s = max_head_age_s
        self._head_com = HeadComEstimator(
            body, stance.ankle_m, velocity_cutoff_hz=velocity_cutoff_hz, max_gap_s=max_gap_s
        )
        self._cop_com = SmoothedDerivative(cop_com_cutoff_hz, max_gap_s=max_gap_s)
        self.reset()

    def reset(self) -> None:
        """Forget every sample and restart the tick count at 0."""
        self._tick = 0
        self._head_com.reset()
        self._cop_com.reset()
        self._cop: tuple[float, float] | None = None
        self._fz: float | None = None
        self._loaded = False
        self._plate_rx: float | None = None
        self._have_plate = False
        self._head: HeadPose | None = None
        self._head_key: tuple[float | None, float | None, tuple[float, ...]] | None = None
        self._head_rx: float | None = None
        self._head_result: (
            tuple[tuple[float, float], tuple[float, float], tuple[float, float]] | None
        ) = None
        self._cop_result: tuple[float, float, float, float] | None = None

    @property
    def tick(self) -> int:
        """Index the next :meth:`update` will carry."""
        return self._tick

    def _take_frames(self, t_s: float, frames: Sequence[PlateFrame]) -> None:
        plate = self.plate
        if plate is None:
            raise ValueError(
                f"plate frame seq {frames[0].seq}: got plate frames but the estimator "
                "was built without a PlateGeometry"
            )
        n = plate.n_channels
        newest_rx: float | None = None
        for fr in frames:
            if fr.kind != plate.kind or len(fr.channels) != n:
                raise ValueError(
                    f"plate frame seq {fr.seq}: expected kind {plate.kind!r} with {n} "
                    f"channels, got {fr.kind!r} with {len(fr.channels)}"
                )
            rx = fr.received_time_s
            if rx is not None and (newest_rx is None or rx > newest_rx):
                newest_rx = rx
        if len(frames) == 1:
            channels: Sequence[float] = frames[0].channels
        else:
            # Mean of the tick's frames: a boxcar over the tick that keeps
            # every frame's information when the plate outpaces the loop.
            k = 1.0 / len(frames)
            channels = [sum(col) * k for col in zip(*(fr.channels for fr in frames), strict=True)]
        x, y, fz = cop_xy(channels, plate, self.min_load_n)
        self._have_plate = True
        self._fz = fz
        self._plate_rx = newest_rx
        if fz >= self.min_load_n:
            self._loaded = True
            self._cop = (x, y)
            self._cop_result = self._cop_com.update(
                newest_rx if newest_rx is not None else t_s, x, y
            )
        else:
            self._loaded = False
            self._cop = None
            self._cop_result = None
            self._cop_com.reset()

    def _take_head(self, t_s: float, head: HeadPose) -> None:
        if not head.tracked:
            return
        hx, hy, hz = head.position_m
        if not (math.isfinite(hx) and math.isfinite(hy) and math.isfinite(hz)):
            return  # a broken pose would poison the velocity filter
        key = (head.device_time_s, head.received_time_s, head.position_m)
        if key == self._head_key:
            return  # the same pose again: no new information this tick
        self._head_key = key
        self._head = head
        self._head_rx = head.received_time_s
        if head.device_time_s is not None:
            t_pose = head.device_time_s
        elif head.received_time_s is not None:
            t_pose = head.received_time_s
        else:
            t_pose = t_s
        self._head_result = self._head_com.update(t_pose, head.position_m)

    def update(
        self, t_s: float, plate_frames: Sequence[PlateFrame], head: HeadPose | None
    ) -> BalanceState:
        """Fuse this tick's samples into a snapshot.

        Parameters
        ----------
        t_s : float
            Loop time of this tick on the injected clock, s.
        plate_frames : sequence of PlateFrame
            Frames received since the previous tick (may be empty: the last
            values are then kept and their age grows). Their mean is used.
        head : HeadPose or None
            Newest head pose, or ``None``. Repeating the previous pose is fine;
            untracked poses and poses with a non-finite position are ignored.

        Returns
        -------
        BalanceState

        Raises
        ------
        ValueError
            A frame of the wrong kind or channel count, or frames without a
            plate geometry.
        """
        if plate_frames:
            self._take_frames(t_s, plate_frames)
        if head is not None:
            self._take_head(t_s, head)

        head_age = None if self._head_rx is None else t_s - self._head_rx
        plate_age = None if self._plate_rx is None else t_s - self._plate_rx

        com = vel = xcom = None
        source = None
        hr = self._head_result
        head_fresh = hr is not None and (head_age is None or head_age <= self._max_head_age_s)
        if head_fresh:
            com, vel, xcom = hr  # type: ignore[misc]
            source = "head"
        elif self._loaded and self._cop_result is not None:
            px, py, vx, vy = self._cop_result
            w = self._omega0
            com, vel, xcom = (px, py), (vx, vy), (px + vx / w, py + vy / w)
            source = "cop"
        elif hr is not None:
            com, vel, xcom = hr
            source = "head"

        bos = self._bos
        margin_cop = None
        if self._cop is not None:
            margin_cop = bos.signed_distance_xy(self._cop[0], self._cop[1])[0]
        margin_xcom = None
        sway = None
        if xcom is not None and com is not None:
            margin_xcom = bos.signed_distance_xy(xcom[0], xcom[1])[0]
            ratio = (com[1] - self._ankle_y) / self._pendulum_m
            sway = math.asin(max(-1.0, min(1.0, ratio)))

        state = BalanceState(
            tick=self._tick,
            t_s=t_s,
            stance=self.stance.name,
            cop_m=self._cop,
            vertical_force_n=self._fz,
            plate_loaded=self._loaded,
            com_m=com,
            com_velocity_mps=vel,
            xcom_m=xcom,
            margin_xcom_m=margin_xcom,
            margin_cop_m=margin_cop,
            head_position_m=None if self._head is None else tuple(self._head.position_m),  # type: ignore[arg-type]
            head_age_s=head_age,
            plate_age_s=plate_age,
            sway_angle_ap_rad=sway,
            com_source=source,
        )
        self._tick += 1
        return state
