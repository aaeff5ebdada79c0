"""The headset: OpenXR rendering and head tracking through pyopenxr.

Entry point: :class:`vrbalance.xr.output.XrOutput` (with
:class:`vrbalance.xr.head_source.XrHeadPoseSource` for the balance loop).
Nothing is imported here, so ``import vrbalance.xr.frames`` stays free of
pyopenxr and Panda3D. See ``docs/xr.md``.
"""
