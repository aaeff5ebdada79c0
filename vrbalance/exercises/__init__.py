"""The programme's own exercises: heel-to-toe walk, side leg raises, tai chi.

Pure parts (numpy/scipy only, no clock, no Panda3D, no I/O) compute what a
therapist counts from recorded trajectories:

- :mod:`vrbalance.exercises.walk`: tandem-walk measures from the head trajectory;
- :mod:`vrbalance.exercises.leg_raise`: repetitions, holds, sway and trunk lean;
- :mod:`vrbalance.exercises.tracking`: tai chi tracking error, lag, time in tolerance.

:mod:`vrbalance.exercises.plan` turns a trial and its level into an
:class:`~vrbalance.exercises.plan.ExercisePlan`; :mod:`vrbalance.exercises.coach`
reads the tai chi coach's keyframes (``scenes/tai_chi/*.toml``);
:mod:`vrbalance.exercises.sim` is the simulated person who performs each
exercise; :mod:`vrbalance.exercises.live` is what the session runner asks
of an exercise during and after a trial (the walking corridor for the safety
monitor, success for the director). Formulas and units: ``docs/exercises.md``.
"""
