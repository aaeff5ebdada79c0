"""Force-plate wire protocols: bytes in, frames out (STYLE rule 5).

Two incremental parsers and their matching encoders. Neither touches a port or
reads a clock: the caller (the driver's reader thread, a test, a benchmark)
hands each chunk of bytes with the host time at which it was read, and gets
back the :class:`~vrbalance.samples.RawFrame` objects it completed. Parsers
never raise on bad bytes; they drop them and count what they dropped in a
:class:`ParserStats` snapshot, so a noisy cable shows up as numbers, not as an
exception in the reader thread.

Wire formats (byte by byte in ``docs/serial-protocols.md``):

``ascii``
    ``<seq>,<t_us>,<c0>,<c1>,<c2>,<c3>\\n`` in decimal, raw counts; CRLF is
    accepted, blank lines are ignored, lines before the first frame that do
    not parse (a boot banner, ``# comments``) are counted as banner lines.
``binary``
    ``A5 5A | len u8 | seq u32 | t_us u32 | N x int32 | crc16 u16``, all
    little-endian; ``len = 8 + 4 N`` counts the bytes from ``seq`` to the last
    channel; the CRC is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no
    reflection, no final xor) over ``len`` and the payload.

Sequence numbers and device timestamps are unsigned 32-bit counters that wrap;
the device timestamp is unwrapped to seconds since the first frame's counter
epoch so ``device_time_s`` keeps increasing across a wrap (71.6 min at 1 µs).
"""

from __future__ import annotations

import binascii
import logging
import struct
from dataclasses import dataclass
from typing import Literal, Protocol

from vrbalance.samples import RawFrame

log = logging.getLogger(__name__)

ProtocolName = Literal["ascii", "binary"]
PROTOCOLS: tuple[str, ...] = ("ascii", "binary")

SYNC = b"\xa5\x5a"
"""The two sync bytes opening every binary frame."""
_HEADER_LEN = 3  # sync (2) + len (1)
_CRC_LEN = 2
_U32 = 1 << 32
_MAX_GAP = 1 << 16
"""A jump of more than this many sequence numbers is a device restart, not a loss."""
_MAX_LINE_BYTES = 160
"""An ASCII line longer than this without a newline is garbage (wrong baud rate)."""


@dataclass(frozen=True, slots=True)
class ParserStats:
    """What a parser has seen and dropped so far (a snapshot; counts since creation).

    Attributes
    ----------
    bytes_received : int
        Every byte fed.
    bytes_discarded : int
        Bytes that were not part of an accepted frame (garbage between binary
        frames, malformed or banner lines, a partial first line).
    frames : int
        Frames returned.
    crc_failures : int
        Binary frames whose CRC did not match (then resynchronised byte by byte).
    malformed : int
        ASCII lines after the first frame that did not parse, or binary
        headers with an impossible length.
    banner_lines : int
        ASCII lines before the first frame that did not parse (boot text).
    sequence_gaps : int
        Times the sequence number did not follow the previous one.
    frames_missed : int
        Sum of the missing sequence numbers over those gaps (restarts excluded).
    """

    bytes_received: int = 0
    bytes_discarded: int = 0
    frames: int = 0
    crc_failures: int = 0
    malformed: int = 0
    banner_lines: int = 0
    sequence_gaps: int = 0
    frames_missed: int = 0

    @property
    def dropped(self) -> int:
        """Parse problems of any kind: CRC failures, malformed lines and missed frames."""
        return self.crc_failures + self.malformed + self.frames_missed


class FrameProtocol(Protocol):
    """What the driver needs of a protocol: incremental bytes -> frames."""

    name: str
    n_channels: int

    def feed(self, data: bytes, received_time_s: float | None) -> list[RawFrame]: ...

    def stats(self) -> ParserStats: ...

    def reset(self) -> None: ...


class _SequenceTracker:
    """Counts sequence gaps and unwraps the device's microsecond counter."""

    __slots__ = ("_last_seq", "_last_t_us", "_t_wraps", "frames_missed", "gaps")

    def __init__(self) -> None:
        self._last_seq: int | None = None
        self._last_t_us: int | None = None
        self._t_wraps = 0
        self.gaps = 0
        self.frames_missed = 0

    def reset(self) -> None:
        self._last_seq = None
        self._last_t_us = None
        self._t_wraps = 0

    def update(self, seq: int, t_us: int) -> float:
        """Record one frame; return its unwrapped device time in seconds."""
        last = self._last_seq
        if last is not None:
            step = (seq - last) % _U32
            if step != 1:
                self.gaps += 1
                if 1 < step < _MAX_GAP:
                    self.frames_missed += step - 1
        self._last_seq = seq
        t_us %= _U32
        if self._last_t_us is not None and t_us < self._last_t_us - (_U32 >> 1):
            self._t_wraps += 1
        self._last_t_us = t_us
        return (t_us + self._t_wraps * _U32) * 1e-6


# --------------------------------------------------------------------------- ascii


class AsciiLineProtocol:
    """Incremental parser for ``<seq>,<t_us>,<c0>,...,<cN-1>\\n`` lines.

    Parameters
    ----------
    n_channels : int
        Channels per line (4 for a four-cell plate).
    discard_first_line : bool
        Drop the bytes before the first newline. A port opened while the plate
        is already streaming starts mid-line, and a truncated line can look
        valid (``"5,1234,..."`` cut from ``"105,1234,..."``); dropping it costs
        at most one frame. Set False when the stream is known to start at a
        line boundary (tests, files).
    """

    name = "ascii"

    def __init__(self, n_channels: int = 4, *, discard_first_line: bool = True) -> None:
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels!r}")
        self.n_channels = n_channels
        self._n_fields = n_channels + 2
        self._discard_first_line = discard_first_line
        self._bytes_received = 0
        self._bytes_discarded = 0
        self._frames = 0
        self._malformed = 0
        self._banner = 0
        self._seq = _SequenceTracker()
        self.reset()

    def reset(self) -> None:
        """Forget partial input and sequence history (after a reconnect)."""
        self._buf = b""
        self._at_line_start = not self._discard_first_line
        self._seen_frame = False
        self._seq.reset()

    def stats(self) -> ParserStats:
        return ParserStats(
            bytes_received=self._bytes_received,
            bytes_discarded=self._bytes_discarded,
            frames=self._frames,
            malformed=self._malformed,
            banner_lines=self._banner,
            sequence_gaps=self._seq.gaps,
            frames_missed=self._seq.frames_missed,
        )

    def feed(self, data: bytes, received_time_s: float | None) -> list[RawFrame]:
        """Parse ``data``; return the frames whose newline it contained.

        Parameters
        ----------
        data : bytes
            The next chunk of the stream, any length (may split a line).
        received_time_s : float or None
            Host time of the read, in s; stamped on every frame completed here.
        """
        self._bytes_received += len(data)
        buf = self._buf + data if self._buf else bytes(data)
        end = buf.rfind(b"\n")
        if end < 0:
            if len(buf) > _MAX_LINE_BYTES:
                self._bytes_discarded += len(buf)
                buf = b""
                self._at_line_start = False  # the next newline ends a fragment
            self._buf = buf
            return []
        self._buf = buf[end + 1 :]
        lines = buf[:end].split(b"\n")
        if not self._at_line_start:
            self._bytes_discarded += len(lines[0]) + 1
            lines = lines[1:]
            self._at_line_start = True
        frames: list[RawFrame] = []
        append = frames.append
        n_fields = self._n_fields
        update = self._seq.update
        for line in lines:
            fields = line.split(b",")
            if len(fields) == n_fields:
                try:
                    values = [int(f) for f in fields]
                except ValueError:
                    pass  # a field that is not an integer: counted as malformed below
                else:
                    seq = values[0] % _U32
                    t_s = update(seq, values[1])
                    append(RawFrame(seq, t_s, received_time_s, tuple(values[2:])))
                    continue
            if not line.strip():
                continue  # blank line, or the \r of a CRLF blank line
            self._bytes_discarded += len(line) + 1
            if self._seen_frame or frames:
                self._malformed += 1
            else:
                self._banner += 1
        if frames:
            self._seen_frame = True
            self._frames += len(frames)
        return frames

    @staticmethod
    def encode(seq: int, t_us: int, counts: tuple[int, ...] | list[int]) -> bytes:
        """One line for a frame (``\\n``-terminated)."""
        return f"{seq % _U32},{t_us % _U32},{','.join(str(int(c)) for c in counts)}\n".encode(
            "ascii"
        )


# -------------------------------------------------------------------------- binary


def crc16_ccitt(data: bytes | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor.

    ``binascii.crc_hqx`` is exactly this polynomial in C; check value for
    ``b"123456789"`` is 0x29B1.
    """
    return binascii.crc_hqx(data, crc)


def binary_frame_size(n_channels: int) -> int:
    """Bytes on the wire for one binary frame of ``n_channels`` channels."""
    return _HEADER_LEN + 8 + 4 * n_channels + _CRC_LEN


class BinaryFrameProtocol:
    """Incremental parser for sync-framed, CRC-checked binary frames.

    Parameters
    ----------
    n_channels : int
        Channels per frame the plate sends (4 or 6). A frame of any other
        length is treated as garbage, so a stray ``A5 5A`` in the data cannot
        make the parser wait for a 200-byte "frame".
    """

    name = "binary"

    def __init__(self, n_channels: int = 6) -> None:
        if n_channels not in (4, 6):
            raise ValueError(f"binary frames carry 4 or 6 channels, got {n_channels!r}")
        self.n_channels = n_channels
        self._payload_len = 8 + 4 * n_channels
        self._frame_len = binary_frame_size(n_channels)
        self._struct = struct.Struct(f"<II{n_channels}i")
        self._bytes_received = 0
        self._bytes_discarded = 0
        self._frames = 0
        self._crc_failures = 0
        self._malformed = 0
        self._seq = _SequenceTracker()
        self.reset()

    def reset(self) -> None:
        """Forget partial input and sequence history (after a reconnect)."""
        self._buf = b""
        self._seq.reset()

    def stats(self) -> ParserStats:
        return ParserStats(
            bytes_received=self._bytes_received,
            bytes_discarded=self._bytes_discarded,
            frames=self._frames,
            crc_failures=self._crc_failures,
            malformed=self._malformed,
            sequence_gaps=self._seq.gaps,
            frames_missed=self._seq.frames_missed,
        )

    def feed(self, data: bytes, received_time_s: float | None) -> list[RawFrame]:
        """Parse ``data``; return every frame completed by it.

        Garbage anywhere (before, between, inside frames) is skipped by
        searching for the next sync pair; a frame whose CRC fails is dropped
        and the search resumes one byte after its sync, so a false sync inside
        garbage never swallows a real frame that follows.
        """
        self._bytes_received += len(data)
        buf = self._buf + data if self._buf else bytes(data)
        n = len(buf)
        frame_len = self._frame_len
        payload_len = self._payload_len
        crc_end = frame_len - _CRC_LEN
        unpack = self._struct.unpack_from
        update = self._seq.update
        crc_hqx = binascii.crc_hqx
        view = memoryview(buf)
        frames: list[RawFrame] = []
        append = frames.append
        pos = 0
        discarded = 0
        while True:
            if n - pos < frame_len:
                # Keep a possible frame start; drop anything that cannot start one.
                if pos < n:
                    start = buf.find(SYNC, pos)
                    if start < 0:
                        keep = n - 1 if buf[n - 1] == SYNC[0] else n
                        discarded += keep - pos
                        pos = keep
                    else:
                        discarded += start - pos
                        pos = start
                break
            if buf[pos] != 0xA5 or buf[pos + 1] != 0x5A:
                start = buf.find(SYNC, pos)
                if start < 0:
                    keep = n - 1 if buf[n - 1] == SYNC[0] else n
                    discarded += keep - pos
                    pos = keep
                    break
                discarded += start - pos
                pos = start
                continue
            if buf[pos + 2] != payload_len:
                self._malformed += 1
                discarded += 1
                pos += 1
                continue
            end = pos + frame_len
            crc = crc_hqx(view[pos + 2 : pos + crc_end], 0xFFFF)
            if crc != (buf[end - 2] | (buf[end - 1] << 8)):
                self._crc_failures += 1
                discarded += 1
                pos += 1
                continue
            values = unpack(buf, pos + _HEADER_LEN)
            seq = values[0]
            append(RawFrame(seq, update(seq, values[1]), received_time_s, values[2:]))
            pos = end
        view.release()
        self._buf = buf[pos:]
        self._bytes_discarded += discarded
        self._frames += len(frames)
        return frames

    def encode(self, seq: int, t_us: int, counts: tuple[int, ...] | list[int]) -> bytes:
        """One frame's bytes (sync, length, payload, CRC)."""
        return encode_binary_frame(seq, t_us, counts)


def encode_binary_frame(seq: int, t_us: int, counts: tuple[int, ...] | list[int]) -> bytes:
    """Encode one binary frame of ``len(counts)`` (4 or 6) int32 channels."""
    n = len(counts)
    payload = struct.pack(f"<BII{n}i", 8 + 4 * n, seq % _U32, t_us % _U32, *counts)
    return SYNC + payload + struct.pack("<H", crc16_ccitt(payload))


def make_protocol(
    name: str, n_channels: int, *, discard_first_line: bool = True
) -> AsciiLineProtocol | BinaryFrameProtocol:
    """Build the parser called ``name`` (``"ascii"`` or ``"binary"``)."""
    if name == "ascii":
        return AsciiLineProtocol(n_channels, discard_first_line=discard_first_line)
    if name == "binary":
        return BinaryFrameProtocol(n_channels)
    raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {name!r}")


def encode_frame(name: str, seq: int, t_us: int, counts: tuple[int, ...] | list[int]) -> bytes:
    """Encode one frame in protocol ``name``."""
    if name == "ascii":
        return AsciiLineProtocol.encode(seq, t_us, counts)
    if name == "binary":
        return encode_binary_frame(seq, t_us, counts)
    raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {name!r}")
