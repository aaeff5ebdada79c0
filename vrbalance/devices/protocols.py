"""Force-plate wire protocols: bytes in, frames out (STYLE rule 5).

Two incremental parsers and their matching encoders. Neither touches a port or
reads a clock: the caller (the driver's reader thread, a test, a benchmark)
hands each chunk of bytes with the host time at which it was read, and gets
back the :class:`~vrbalance.samples.RawFrame` objects it completed. Parsers
never raise on bad bytes; they drop them and count what they dropped, once
per line or frame and by reason, in a :class:`ParserStats` snapshot, so a
noisy cable shows up as numbers, not as an exception in the reader thread.

Wire formats (byte by byte in ``docs/serial-protocols.md``):

``ascii``
    ``$<seq>,<t_us>,<c0>,<c1>,<c2>,<c3>*HH\n`` in canonical decimal (no
    signs but a channel's ``-``, no leading zeros, no spaces, each field
    within its documented range), ``HH`` the XOR of the bytes between ``$``
    and ``*`` in upper-case hex (NMEA 0183 style); CRLF is accepted, blank
    lines are ignored, lines before the first frame that do not parse (a
    boot banner, ``# comments``) are counted as banner lines. The old form
    without ``$`` and ``*HH`` is accepted only when the plate's file says
    ``ascii_checksum = "optional"``. Lines are bounded (the longest valid
    line); duplicate or backward sequence numbers and device time going back
    are dropped and counted; a device restart is accepted once
    :data:`RESTART_FRAMES` consecutive frames confirm it.
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
import operator
import re
import struct
from dataclasses import dataclass
from functools import reduce
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
_U32_MAX = _U32 - 1
_I32_MIN = -(1 << 31)
_I32_MAX = (1 << 31) - 1
ASCII_CHECKSUMS: tuple[str, ...] = ("required", "optional")
"""Values of a plate file's ``[serial] ascii_checksum``: must every line carry ``*HH``?"""
RESTART_FRAMES = 8
"""Consecutive, mutually consistent frames that confirm a sequence/time discontinuity.

A plate that reboots starts its counters again, so its frames look "backward";
a firmware that replays a burst of old frames looks the same. A burst shorter
than this is dropped (counted ``out_of_order``); a run this long is the
device's new epoch (counted in ``restarts``) and delivered whole. 8 frames are
80 ms at 100 Hz: a restart costs that delay, never the frames.
"""
_UNSIGNED = rb"(?:0|[1-9][0-9]{0,9})"
_SIGNED = rb"(?:0|-?[1-9][0-9]{0,9})"
_HEX_DIGITS = frozenset(b"0123456789ABCDEF")


@dataclass(frozen=True, slots=True)
class ParserStats:
    """What a parser has seen and dropped so far (a snapshot; counts since creation).

    Every line (ASCII) or would-be frame (binary) that is dropped is counted
    exactly once, under one reason; :attr:`dropped` is their sum.

    Attributes
    ----------
    bytes_received : int
        Every byte fed.
    bytes_discarded : int
        Bytes that were not part of an accepted frame (garbage between binary
        frames, dropped or banner lines, a partial first line).
    frames : int
        Frames returned.
    crc_failures : int
        Binary frames whose CRC did not match (then resynchronised byte by
        byte), and ASCII lines whose ``*HH`` checksum did not match.
    malformed : int
        ASCII lines after the first frame that do not follow the grammar (a
        field that is not a canonical decimal, out of its range, the wrong
        number of fields, a broken ``$ ... *HH`` frame), or binary headers
        with an impossible length.
    banner_lines : int
        ASCII lines before the first frame that did not parse (boot text).
    sequence_gaps : int
        Times the sequence number of a delivered frame did not follow the
        previous one (a gap, or a confirmed restart).
    frames_missed : int
        Sum of the missing sequence numbers over those gaps (restarts
        excluded): frames lost on the wire *or* dropped here.
    checksum_missing : int
        ASCII lines without ``$ ... *HH`` while the plate's file requires it.
    overlong_lines : int
        ASCII lines longer than the longest valid line (a wrong baud rate, a
        runaway field); the lines around one are kept.
    out_of_order : int
        ASCII frames whose sequence number repeats or goes back (or jumps by
        65536 or more) and that no restart confirmed.
    time_reversed : int
        ASCII frames whose sequence number follows but whose device time goes
        back, and that no restart confirmed.
    restarts : int
        Discontinuities confirmed by :data:`RESTART_FRAMES` consistent frames
        (a device reboot); its frames are delivered.
    """

    bytes_received: int = 0
    bytes_discarded: int = 0
    frames: int = 0
    crc_failures: int = 0
    malformed: int = 0
    banner_lines: int = 0
    sequence_gaps: int = 0
    frames_missed: int = 0
    checksum_missing: int = 0
    overlong_lines: int = 0
    out_of_order: int = 0
    time_reversed: int = 0
    restarts: int = 0

    @property
    def dropped(self) -> int:
        """Lines or frames dropped, each once: the sum of every reason but banners.

        .. versionchanged:: 0.2.0
           ``frames_missed`` is no longer included: a dropped line also shows
           as a sequence gap, and counting both counted it twice.
        """
        return (
            self.crc_failures
            + self.malformed
            + self.checksum_missing
            + self.overlong_lines
            + self.out_of_order
            + self.time_reversed
        )


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


def nmea_checksum(payload: bytes) -> int:
    """XOR of every byte of ``payload`` (NMEA 0183's sentence checksum), 0..255.

    Any single flipped bit, any one byte inserted or deleted (all payload
    bytes are non-zero) changes it; see docs/serial-protocols.md for what it
    does not catch.
    """
    if len(payload) > 128:
        return reduce(operator.xor, payload, 0)
    # Fold the bytes as one integer: the low 2**k bits always hold the XOR of
    # the 2**k-bit blocks (7 shifts instead of a Python loop per byte).
    v = int.from_bytes(payload, "little")
    v ^= v >> 512
    v ^= v >> 256
    v ^= v >> 128
    v ^= v >> 64
    v ^= v >> 32
    v ^= v >> 16
    v ^= v >> 8
    return v & 0xFF


def max_ascii_line_bytes(n_channels: int) -> int:
    """Longest valid ASCII line of ``n_channels`` channels, ``\\r`` included, ``\\n`` not.

    ``$`` + two 10-digit counters + ``n`` channels of up to 11 characters
    (``-2147483648``) + the commas + ``*HH`` + ``\\r``: 74 bytes for 4
    channels, 98 for 6. A longer line cannot be valid and is dropped as it
    grows, so a runaway line never holds more than this in memory.
    """
    return 1 + 10 + 1 + 10 + n_channels * (1 + 11) + 3 + 1


class _OrderedSequence:
    """Delivers frames in sequence and device-time order; drops and counts the rest.

    A frame is *in order* when its sequence number follows the last delivered
    one by 1..65535 (a gap counts ``frames_missed``) and its device time does
    not go back (modulo the 32-bit wrap). Anything else is held as the start
    of a possible new epoch: when :data:`RESTART_FRAMES` held frames follow
    each other (+1, time forward) they are the device's restart and are
    delivered; when an in-order frame comes first, or the held run breaks,
    the held frames are dropped and counted by their reason.
    """

    __slots__ = (
        "_held",
        "_last_seq",
        "_last_t_us",
        "_t_wraps",
        "bytes_dropped",
        "frames_missed",
        "gaps",
        "out_of_order",
        "restarts",
        "time_reversed",
    )

    def __init__(self) -> None:
        self.gaps = 0
        self.frames_missed = 0
        self.out_of_order = 0
        self.time_reversed = 0
        self.restarts = 0
        self.bytes_dropped = 0
        self._held: list[tuple[int, int, tuple[int, ...], float | None, bool, int]] = []
        self.reset()

    def reset(self) -> None:
        self._drop_held()
        self._last_seq: int | None = None
        self._last_t_us = 0
        self._t_wraps = 0

    def _drop_held(self) -> None:
        for *_, time_only, n_bytes in self._held:
            self.bytes_dropped += n_bytes
            if time_only:
                self.time_reversed += 1
            else:
                self.out_of_order += 1
        self._held = []

    def _deliver(
        self, seq: int, t_us: int, counts: tuple[int, ...], received_time_s: float | None
    ) -> RawFrame:
        if self._last_seq is not None and t_us < self._last_t_us:
            self._t_wraps += 1
        self._last_seq = seq
        self._last_t_us = t_us
        return RawFrame(seq, (t_us + self._t_wraps * _U32) * 1e-6, received_time_s, counts)

    def admit(
        self,
        seq: int,
        t_us: int,
        counts: tuple[int, ...],
        received_time_s: float | None,
        n_bytes: int,
        out: list[RawFrame],
    ) -> None:
        """One parsed frame (``n_bytes`` on the wire); append the frames it releases to ``out``.

        None (held or dropped), itself, or a confirmed restart's run.
        """
        last = self._last_seq
        if last is not None and not self._held and (seq - last) % _U32 == 1:
            # The usual case, kept short: the next frame, device time forward.
            last_t = self._last_t_us
            if (t_us - last_t) % _U32 < (_U32 >> 1):
                if t_us < last_t:
                    self._t_wraps += 1
                self._last_seq = seq
                self._last_t_us = t_us
                t_s = (t_us + self._t_wraps * _U32) * 1e-6
                out.append(RawFrame(seq, t_s, received_time_s, counts))
                return
        out += self._admit(seq, t_us, counts, received_time_s, n_bytes)

    def _admit(
        self,
        seq: int,
        t_us: int,
        counts: tuple[int, ...],
        received_time_s: float | None,
        n_bytes: int,
    ) -> list[RawFrame]:
        """:meth:`admit` past its fast path: gaps, the first frame, held runs."""
        last = self._last_seq
        if last is None:
            return [self._deliver(seq, t_us, counts, received_time_s)]
        step = (seq - last) % _U32
        seq_ok = 0 < step < _MAX_GAP
        if seq_ok and (t_us - self._last_t_us) % _U32 < (_U32 >> 1):
            if self._held:
                self._drop_held()
            if step != 1:
                self.gaps += 1
                self.frames_missed += step - 1
            return [self._deliver(seq, t_us, counts, received_time_s)]
        held = self._held
        if held:
            p_seq, p_t, *_ = held[-1]
            if (seq - p_seq) % _U32 != 1 or (t_us - p_t) % _U32 >= (_U32 >> 1):
                self._drop_held()
        held.append((seq, t_us, counts, received_time_s, seq_ok, n_bytes))
        if len(held) < RESTART_FRAMES:
            return []
        # A confirmed new epoch: the device restarted (or its counters jumped).
        self._held = []
        self.restarts += 1
        self.gaps += 1
        self._last_seq = None
        self._t_wraps = 0
        return [self._deliver(q, t, c, r) for q, t, c, r, _, _ in held]


class AsciiLineProtocol:
    """Incremental parser for ``$<seq>,<t_us>,<c0>,...,<cN-1>*HH\\n`` lines.

    Parameters
    ----------
    n_channels : int
        Channels per line (4 for a four-cell plate).
    discard_first_line : bool
        Drop the bytes before the first newline. A port opened while the plate
        is already streaming starts mid-line, and a truncated line can look
        valid; dropping it costs at most one frame. Set False when the stream
        is known to start at a line boundary (tests, files).
    checksum : {"required", "optional"}
        ``"required"`` (the default): a line without ``$ ... *HH`` is dropped
        (``checksum_missing``). ``"optional"``: the old checksum-less form is
        accepted too, for plates whose file says ``ascii_checksum =
        "optional"``; lines with a checksum are still checked.

    Notes
    -----
    Every dropped line is counted once, by reason (:class:`ParserStats`);
    frames held to confirm a restart are counted when they are dropped.
    """

    name = "ascii"

    def __init__(
        self,
        n_channels: int = 4,
        *,
        discard_first_line: bool = True,
        checksum: str = "required",
    ) -> None:
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels!r}")
        if checksum not in ASCII_CHECKSUMS:
            raise ValueError(
                f"checksum must be one of {', '.join(ASCII_CHECKSUMS)}; got {checksum!r}"
            )
        self.n_channels = n_channels
        self.checksum = checksum
        self.max_line_bytes = max_ascii_line_bytes(n_channels)
        self._checksum_required = checksum == "required"
        self._payload = re.compile(
            _UNSIGNED + b"," + _UNSIGNED + (b"," + _SIGNED) * n_channels
        ).fullmatch
        # The usual line in one match: the checksum form, channels of at most 9
        # digits (never beyond int32; an HX711 gives 8). Anything else takes the
        # full path, which classifies what it drops.
        self._usual = re.compile(
            rb"\$("
            + _UNSIGNED
            + b","
            + _UNSIGNED
            + (rb",(?:0|-?[1-9][0-9]{0,8})") * n_channels
            + rb")\*([0-9A-F]{2})\r?"
        ).fullmatch
        self._discard_first_line = discard_first_line
        self._bytes_received = 0
        self._bytes_discarded = 0
        self._frames = 0
        self._malformed = 0
        self._banner = 0
        self._crc_failures = 0
        self._checksum_missing = 0
        self._overlong = 0
        self._warned: set[str] = set()
        self._order = _OrderedSequence()
        self.reset()

    def reset(self) -> None:
        """Forget partial input and sequence history (after a reconnect)."""
        self._buf = b""
        # Skipping: dropping bytes up to the next newline (a partial first line,
        # or the rest of an overlong line already counted).
        self._skipping = self._discard_first_line
        self._seen_frame = False
        self._order.reset()

    def stats(self) -> ParserStats:
        order = self._order
        return ParserStats(
            bytes_received=self._bytes_received,
            bytes_discarded=self._bytes_discarded + order.bytes_dropped,
            frames=self._frames,
            crc_failures=self._crc_failures,
            malformed=self._malformed,
            banner_lines=self._banner,
            sequence_gaps=order.gaps,
            frames_missed=order.frames_missed,
            checksum_missing=self._checksum_missing,
            overlong_lines=self._overlong,
            out_of_order=order.out_of_order,
            time_reversed=order.time_reversed,
            restarts=order.restarts,
        )

    def feed(self, data: bytes, received_time_s: float | None) -> list[RawFrame]:
        """Parse ``data``; return the frames whose newline it contained.

        Parameters
        ----------
        data : bytes
            The next chunk of the stream, any length (may split a line).
        received_time_s : float or None
            Host time of the read, in s; stamped on every frame completed here.

        Returns
        -------
        list of RawFrame
            In order; any chunking of the same bytes gives the same frames.
        """
        self._bytes_received += len(data)
        frames: list[RawFrame] = []
        first = data.find(b"\n")
        if first < 0:
            self._grow(data)
            return frames
        # The line the previous chunks started.
        if self._skipping:
            self._bytes_discarded += first + 1
            self._skipping = False
        else:
            head = data[:first]
            self._line(self._buf + head if self._buf else head, frames, received_time_s)
            self._buf = b""
        last = data.rfind(b"\n")
        if last > first:
            line = self._line
            for one in data[first + 1 : last].split(b"\n"):
                line(one, frames, received_time_s)
        self._grow(data[last + 1 :])
        self._frames += len(frames)
        return frames

    def _grow(self, tail: bytes) -> None:
        """Keep the unterminated ``tail``; an overlong line is counted now and skipped."""
        if not tail:
            return
        if self._skipping:
            self._bytes_discarded += len(tail)
            return
        buf = self._buf + tail if self._buf else tail
        if len(buf) > self.max_line_bytes:
            self._drop("overlong", len(buf))
            self._skipping = True
            buf = b""
        self._buf = buf

    def _drop(self, reason: str, n_bytes: int) -> None:
        """Count one dropped line (``n_bytes`` of it, newline included) under ``reason``."""
        self._bytes_discarded += n_bytes
        if reason == "overlong":
            self._overlong += 1
        elif reason == "malformed" and not self._seen_frame:
            self._banner += 1  # boot text before the first frame: expected, not a fault
            return
        elif reason == "checksum":
            self._crc_failures += 1
        elif reason == "missing":
            self._checksum_missing += 1
        else:
            self._malformed += 1
        if reason not in self._warned:
            self._warned.add(reason)
            log.warning(
                "ascii plate: dropped a line (%s); further ones are counted in the parser stats",
                reason,
            )

    def _line(self, line: bytes, frames: list[RawFrame], received_time_s: float | None) -> None:
        """Parse one complete line (without its ``\\n``) into ``frames`` or count its drop."""
        m = self._usual(line)
        if m is not None:
            payload, hh = m.groups()
            if nmea_checksum(payload) == int(hh, 16):
                fields = payload.split(b",")
                seq, t_us = int(fields[0]), int(fields[1])
                if seq <= _U32_MAX and t_us <= _U32_MAX:
                    self._seen_frame = True
                    counts = tuple(map(int, fields[2:]))
                    self._order.admit(seq, t_us, counts, received_time_s, len(line) + 1, frames)
                    return
        self._full_line(line, frames, received_time_s)

    def _full_line(
        self, line: bytes, frames: list[RawFrame], received_time_s: float | None
    ) -> None:
        """Every check, one by one, so that a dropped line is counted under its reason."""
        n = len(line)
        if n > self.max_line_bytes:
            self._drop("overlong", n + 1)
            return
        body = line[:-1] if line[-1:] == b"\r" else line
        if not body:
            return  # a blank line (CRLF banners end with one)
        if body[0] == 0x24:  # "$": the checksum form
            if len(body) < 4 or body[-3] != 0x2A or not _HEX_DIGITS.issuperset(body[-2:]):
                self._drop("malformed", n + 1)
                return
            payload = body[1:-3]
            if nmea_checksum(payload) != int(body[-2:], 16):
                self._drop("checksum", n + 1)
                return
        else:
            payload = body
        if self._payload(payload) is None:
            self._drop("malformed", n + 1)
            return
        values = [int(f) for f in payload.split(b",")]
        seq, t_us = values[0], values[1]
        counts = tuple(values[2:])
        if seq > _U32_MAX or t_us > _U32_MAX or min(counts) < _I32_MIN or max(counts) > _I32_MAX:
            self._drop("malformed", n + 1)
            return
        if payload is body and self._checksum_required:
            self._drop("missing", n + 1)
            return
        self._seen_frame = True
        self._order.admit(seq, t_us, counts, received_time_s, n + 1, frames)

    @staticmethod
    def encode(
        seq: int, t_us: int, counts: tuple[int, ...] | list[int], *, checksum: bool = True
    ) -> bytes:
        """One line for a frame (``\\n``-terminated), with ``$ ... *HH`` unless told not to.

        ``checksum=False`` writes the old checksum-less form (plates whose
        file says ``ascii_checksum = "optional"``, tests).
        """
        payload = f"{seq % _U32},{t_us % _U32},{','.join(str(int(c)) for c in counts)}".encode(
            "ascii"
        )
        if not checksum:
            return payload + b"\n"
        return b"$%s*%02X\n" % (payload, nmea_checksum(payload))


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
    name: str,
    n_channels: int,
    *,
    discard_first_line: bool = True,
    ascii_checksum: str = "required",
) -> AsciiLineProtocol | BinaryFrameProtocol:
    """Build the parser called ``name`` (``"ascii"`` or ``"binary"``).

    ``ascii_checksum`` is the plate file's ``[serial] ascii_checksum``
    (``"required"`` or ``"optional"``); the binary protocol always has its CRC.
    """
    if name == "ascii":
        return AsciiLineProtocol(
            n_channels, discard_first_line=discard_first_line, checksum=ascii_checksum
        )
    if name == "binary":
        return BinaryFrameProtocol(n_channels)
    raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {name!r}")


def encode_frame(name: str, seq: int, t_us: int, counts: tuple[int, ...] | list[int]) -> bytes:
    """Encode one frame in protocol ``name`` (ASCII with its ``*HH`` checksum)."""
    if name == "ascii":
        return AsciiLineProtocol.encode(seq, t_us, counts)
    if name == "binary":
        return encode_binary_frame(seq, t_us, counts)
    raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {name!r}")
