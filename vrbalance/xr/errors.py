"""What can go wrong with a headset, in words a technician can act on.

All are :class:`~vrbalance.errors.DeviceError` (the headset is a device), so the
command line prints them as one line and exits with status 2.
"""

from __future__ import annotations

import os

from vrbalance.errors import DeviceError

#: The runtimes a clinic is likely to have, for the "no runtime" message.
USUAL_RUNTIMES = "SteamVR, Monado, Meta Quest Link (Oculus), Varjo Base, Windows Mixed Reality"


class XrError(DeviceError):
    """Base of the headset errors."""


class XrRuntimeUnavailable(XrError):
    """No OpenXR runtime is installed or active (the loader found none that works)."""

    @classmethod
    def explain(cls, detail: str) -> XrRuntimeUnavailable:
        """Build the message: what failed, which variable chooses the runtime, what to do."""
        json_path = os.environ.get("XR_RUNTIME_JSON")
        if json_path:
            where = f"XR_RUNTIME_JSON is set to {json_path!r}"
            if not os.path.isfile(json_path):
                where += " (no such file)"
        else:
            where = (
                "XR_RUNTIME_JSON is not set, so the loader looked for the system's active runtime"
            )
        return cls(
            f"no OpenXR runtime is available ({detail}); {where}. Install and start one "
            f"({USUAL_RUNTIMES}) and make it the active OpenXR runtime, or point "
            "XR_RUNTIME_JSON at its manifest (e.g. openxr_monado.json); "
            "or run without a headset with --desktop."
        )


class XrHeadsetUnavailable(XrError):
    """A runtime is running but no head-mounted display is connected (form factor unavailable)."""

    @classmethod
    def explain(cls, runtime_name: str, detail: str) -> XrHeadsetUnavailable:
        return cls(
            f"the OpenXR runtime {runtime_name!r} reports no head-mounted display ({detail}): "
            "connect and switch on the headset (and check the runtime sees it), "
            "or run without a headset with --desktop."
        )


class XrFeatureMissing(XrError):
    """The runtime lacks an extension, swapchain format or view configuration vrbalance needs."""


class XrSessionLost(XrError):
    """The runtime lost the session or instance (loss pending, crashed compositor)."""


__all__ = [
    "USUAL_RUNTIMES",
    "XrError",
    "XrFeatureMissing",
    "XrHeadsetUnavailable",
    "XrRuntimeUnavailable",
    "XrSessionLost",
]
