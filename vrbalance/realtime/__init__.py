"""The fixed-rate balance loop and the thread-to-thread plumbing around it.

* :mod:`vrbalance.realtime.loop` - :class:`~vrbalance.realtime.loop.FixedRateLoop`,
  a step called on absolute deadlines with an injected clock, overrun/skip
  accounting and timing statistics;
* :mod:`vrbalance.realtime.publish` - :class:`~vrbalance.realtime.publish.LatestValue`
  (lock-free newest snapshot) and :class:`~vrbalance.realtime.publish.RingBuffer`
  (bounded device-to-loop FIFO);
* :mod:`vrbalance.realtime.pipeline` - :class:`~vrbalance.realtime.pipeline.BalanceLoop`,
  plate + head -> estimator -> safety monitor -> published snapshot, every tick;
* :mod:`vrbalance.realtime.priority` - optional per-thread OS tuning.

See docs/realtime.md for the policies and the thread-versus-process measurements.
"""
