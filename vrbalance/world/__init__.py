"""The world: the Panda3D app, the scenes and the operator overlay.

:mod:`vrbalance.world.app` (``WorldApp``) draws the current scene at the
current level from the patient's head to a window, an offscreen buffer or a
headset; :mod:`vrbalance.world.scene` is the contract every scene builder
follows; :mod:`vrbalance.world.geometry` and :mod:`vrbalance.world.props`
build everything procedurally. The world only renders: it reads the latest
balance snapshot and never feeds balance maths. Nothing here imports Panda3D
at package import time except through these modules.
"""
