"""Plate frames and the simulated person's pose in shared memory, between two processes.

The plate process (:mod:`vrbalance.devices.plate_process`) writes, the session
process reads; neither ever waits for the other, and neither needs the
other's GIL. One writer and one reader per ring (single producer, single
consumer):

* **Frames**: a ring of fixed-size slots in a
  :class:`multiprocessing.shared_memory.SharedMemory` block. The writer fills
  slot ``k % capacity`` and then publishes ``write_count = k + 1``; each slot
  carries its own index twice round the payload as a sequence lock (set to
  :data:`_WRITING` before the payload is written, to ``k`` after), so a reader
  that fell a whole ring behind and meets a slot being overwritten sees the
  mismatch and counts the frame as dropped instead of returning a torn one.
  A reader more than ``capacity`` frames behind skips (and counts) the oldest,
  exactly as the in-process driver's bounded deque drops them.
* **Plate state**: one integer (the :class:`~vrbalance.devices.driver.PlateState`
  index), written by the reader thread of the plate process.
* **Person pose** (simulation only): ``(t_s, theta_ml, theta_ap)`` of the
  simulated person under its own sequence lock (odd while being written), so
  the session's :class:`~vrbalance.sessions.sim.SimulatedHead` reads the same
  person the plate measures.

Word-sized stores through ``struct.pack_into`` on a ``memoryview`` become
single ``memcpy`` calls; the writer's stores reach the reader in program order
on x86-64 (TSO), the platform this runs on; the sequence locks make a torn read
detectable on any platform.
"""

from __future__ import annotations

import contextlib
import math
import struct
from multiprocessing import shared_memory

from vrbalance.samples import PlateFrame

#: Slot index while its payload is being written.
_WRITING = 2**64 - 1
_HEADER = struct.Struct("<QQiixxxxxxxx")  # magic, write_count, state, capacity (+pad)
_HEADER_SIZE = 32
_POSE = struct.Struct("<Qddd")  # seqlock, t_s, theta_ml, theta_ap
_POSE_OFFSET = _HEADER_SIZE
_SLOTS_OFFSET = 64
_INDEX = struct.Struct("<Q")
_PAYLOAD = struct.Struct("<qddBB6x6d")  # seq, device_time, received_time, kind, n, channels
_SLOT_SIZE = _INDEX.size + _PAYLOAD.size + _INDEX.size
_MAGIC = 0x5652424C52494E47  # "VRBLRING"
_KINDS = ("cells4", "six_axis")
_WRITE_COUNT_OFFSET = 8
_STATE_OFFSET = 16
_COUNT = struct.Struct("<Q")
_STATE = struct.Struct("<i")


class SharedFrameRing:
    """A single-producer single-consumer ring of :class:`PlateFrame` in shared memory.

    Parameters
    ----------
    capacity : int
        Slots (frames) in the ring; 8192 is 8 s at 1 kHz, like the driver's deque.
    name : str, optional
        Attach to an existing block made by :meth:`create` (the other process).

    Notes
    -----
    The creating process owns the block: it calls :meth:`unlink` once both
    sides are done (:meth:`close` only detaches).
    """

    def __init__(self, shm: shared_memory.SharedMemory, *, owner: bool) -> None:
        self._shm = shm
        self._buf = shm.buf
        magic, _count, _state, capacity = _HEADER.unpack_from(self._buf, 0)
        if magic != _MAGIC or capacity <= 0:
            raise ValueError(f"shared memory {shm.name!r} holds no frame ring")
        self.capacity = int(capacity)
        self._owner = owner
        self._read = 0
        self.dropped = 0
        self._pose_seq = 0

    @classmethod
    def create(cls, capacity: int = 8192) -> SharedFrameRing:
        """A new, empty ring (this process owns it and unlinks it)."""
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"capacity: expected a positive int, got {capacity!r}")
        size = _SLOTS_OFFSET + capacity * _SLOT_SIZE
        shm = shared_memory.SharedMemory(create=True, size=size)
        _HEADER.pack_into(shm.buf, 0, _MAGIC, 0, -1, capacity)
        _POSE.pack_into(shm.buf, _POSE_OFFSET, 0, math.nan, 0.0, 0.0)
        for k in range(capacity):
            _INDEX.pack_into(shm.buf, _SLOTS_OFFSET + k * _SLOT_SIZE, _WRITING)
        return cls(shm, owner=True)

    @classmethod
    def attach(cls, name: str) -> SharedFrameRing:
        """Attach to the ring ``name`` made by another process."""
        # The plate process shares its parent's resource tracker (forkserver), where
        # the owner registered the block: attaching registers the same name again
        # (a set), and only the owner's unlink unregisters it.
        shm = shared_memory.SharedMemory(name=name)
        return cls(shm, owner=False)

    @property
    def name(self) -> str:
        """The block's name, for :meth:`attach` in the other process."""
        return self._shm.name

    # -- writer (the plate process) ---------------------------------------------

    @property
    def written(self) -> int:
        """Frames written so far (the write count)."""
        return int(_COUNT.unpack_from(self._buf, _WRITE_COUNT_OFFSET)[0])

    def write(self, frames: list[PlateFrame]) -> None:
        """Append ``frames`` (writer side only; overwrites the oldest when full)."""
        buf = self._buf
        k = self.written
        for frame in frames:
            offset = _SLOTS_OFFSET + (k % self.capacity) * _SLOT_SIZE
            channels = tuple(frame.channels)
            if len(channels) > 6:
                raise ValueError(f"frame {frame.seq}: at most 6 channels, got {len(channels)}")
            _INDEX.pack_into(buf, offset, _WRITING)
            _PAYLOAD.pack_into(
                buf,
                offset + _INDEX.size,
                int(frame.seq),
                math.nan if frame.device_time_s is None else float(frame.device_time_s),
                math.nan if frame.received_time_s is None else float(frame.received_time_s),
                _KINDS.index(frame.kind),
                len(channels),
                *(channels + (0.0,) * (6 - len(channels))),
            )
            _INDEX.pack_into(buf, offset + _INDEX.size + _PAYLOAD.size, k)
            _INDEX.pack_into(buf, offset, k)
            k += 1
            _COUNT.pack_into(buf, _WRITE_COUNT_OFFSET, k)

    def set_state(self, index: int) -> None:
        """Publish the plate state's index (writer side)."""
        _STATE.pack_into(self._buf, _STATE_OFFSET, int(index))

    def write_pose(self, t_s: float, theta_ml: float, theta_ap: float) -> None:
        """Publish the simulated person's pose under the pose lock (writer side)."""
        self._pose_seq += 1  # odd: being written
        _COUNT.pack_into(self._buf, _POSE_OFFSET, self._pose_seq)
        _POSE.pack_into(
            self._buf, _POSE_OFFSET, self._pose_seq, float(t_s), float(theta_ml), float(theta_ap)
        )
        self._pose_seq += 1
        _COUNT.pack_into(self._buf, _POSE_OFFSET, self._pose_seq)

    # -- reader (the session process) -------------------------------------------

    @property
    def state(self) -> int:
        """The plate state's index last published (-1 before the first)."""
        return int(_STATE.unpack_from(self._buf, _STATE_OFFSET)[0])

    def skip_to_end(self) -> None:
        """Forget every frame written so far (a new trial starts from now)."""
        self._read = self.written

    def drain(self) -> list[PlateFrame]:
        """Every frame written since the last call, oldest first (reader side)."""
        buf = self._buf
        end = self.written
        start = self._read
        if end - start > self.capacity:
            self.dropped += end - start - self.capacity
            start = end - self.capacity
        out: list[PlateFrame] = []
        for k in range(start, end):
            offset = _SLOTS_OFFSET + (k % self.capacity) * _SLOT_SIZE
            before = _INDEX.unpack_from(buf, offset)[0]
            seq, dev, rx, kind, n, *channels = _PAYLOAD.unpack_from(buf, offset + _INDEX.size)
            after = _INDEX.unpack_from(buf, offset + _INDEX.size + _PAYLOAD.size)[0]
            if before != k or after != k:  # overwritten under us (the ring lapped)
                self.dropped += 1
                continue
            out.append(
                PlateFrame(
                    seq,
                    None if math.isnan(dev) else dev,
                    None if math.isnan(rx) else rx,
                    tuple(channels[:n]),
                    _KINDS[kind],
                )
            )
        self._read = end
        return out

    def read_pose(self) -> tuple[float, float, float] | None:
        """``(t_s, theta_ml, theta_ap)`` of the simulated person, or None before the first."""
        for _ in range(1000):
            seq1, t_s, ml, ap = _POSE.unpack_from(self._buf, _POSE_OFFSET)
            seq2 = _COUNT.unpack_from(self._buf, _POSE_OFFSET)[0]
            if seq1 == seq2 and seq1 % 2 == 0:
                return None if math.isnan(t_s) else (t_s, ml, ap)
        return None  # pragma: no cover - a writer stuck mid-write for 1000 reads

    # -- both ------------------------------------------------------------------

    def close(self) -> None:
        """Detach from the block (idempotent)."""
        if self._buf is not None:
            self._buf.release()
            self._buf = None  # type: ignore[assignment]
            self._shm.close()

    def unlink(self) -> None:
        """Detach and remove the block (the owner, once both sides are done)."""
        self.close()
        if self._owner:
            with contextlib.suppress(FileNotFoundError):
                self._shm.unlink()
            self._owner = False
