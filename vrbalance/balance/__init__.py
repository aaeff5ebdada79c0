"""The pure balance core: centre of pressure, base of support, centre of mass, sway.

No I/O, no clock, no threads: numbers in, numbers out, in the core frame
(x to the patient's right, y anterior, z up, metres, origin at the centre of
the feet or plate on the floor). Loading plate and foot files lives in
:mod:`vrbalance.config.plates`.
"""

from vrbalance.balance.com import (
    HeadComEstimator,
    SmoothedDerivative,
    equilibrium_score,
    extrapolated_com,
    omega0_rad_s,
    pendulum_com,
    sway_angle_ap_rad,
)
from vrbalance.balance.cop import (
    CopResult,
    PlateGeometry,
    compute_cop,
    cop_cells,
    cop_six_axis,
    minimum_load_n,
)
from vrbalance.balance.estimator import BalanceEstimator
from vrbalance.balance.geometry import Body, FootTemplate, Polygon, convex_hull
from vrbalance.balance.stance import STANCE_NAMES, Stance, make_stance
from vrbalance.balance.state import BalanceState
from vrbalance.balance.sway import DEFAULT_LOWPASS_HZ, SwayMetrics, sway_metrics

__all__ = [
    "DEFAULT_LOWPASS_HZ",
    "STANCE_NAMES",
    "BalanceEstimator",
    "BalanceState",
    "Body",
    "CopResult",
    "FootTemplate",
    "HeadComEstimator",
    "PlateGeometry",
    "Polygon",
    "SmoothedDerivative",
    "Stance",
    "SwayMetrics",
    "compute_cop",
    "convex_hull",
    "cop_cells",
    "cop_six_axis",
    "equilibrium_score",
    "extrapolated_com",
    "make_stance",
    "minimum_load_n",
    "omega0_rad_s",
    "pendulum_com",
    "sway_angle_ap_rad",
    "sway_metrics",
]
