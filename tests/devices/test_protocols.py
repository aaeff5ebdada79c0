"""Wire protocols: real bytes in, frames out; garbage, bit flips, any chunking."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vrbalance.devices.protocols import (
    SYNC,
    AsciiLineProtocol,
    BinaryFrameProtocol,
    binary_frame_size,
    crc16_ccitt,
    encode_binary_frame,
    encode_frame,
    make_protocol,
)

COUNTS6 = [(i, -i, 2**31 - 1 - i, -(2**31) + i, 7 * i, 1000 - i) for i in range(50)]
COUNTS4 = [(8_000_000 - i, -5 * i, 123, i * i) for i in range(50)]


def _binary_stream(n_channels: int = 6, n: int = 50, start_seq: int = 0) -> bytes:
    rows = COUNTS6 if n_channels == 6 else COUNTS4
    return b"".join(
        encode_binary_frame(start_seq + i, 1000 * i, rows[i % len(rows)]) for i in range(n)
    )


def _ascii_stream(n: int = 50, newline: bytes = b"\n") -> bytes:
    return b"".join(
        AsciiLineProtocol.encode(i, 1000 * i, COUNTS4[i % 50]).replace(b"\n", newline)
        for i in range(n)
    )


def test_crc_check_value() -> None:
    # The standard check value of CRC-16/CCITT-FALSE.
    assert crc16_ccitt(b"123456789") == 0x29B1


def test_binary_frame_layout_byte_by_byte() -> None:
    frame = encode_binary_frame(0x01020304, 0x0A0B0C0D, (1, -1, 2, 3))
    assert len(frame) == binary_frame_size(4) == 29
    assert frame[:2] == SYNC
    assert frame[2] == 8 + 16
    assert frame[3:7] == bytes([4, 3, 2, 1])  # seq little-endian
    assert frame[7:11] == bytes([0x0D, 0x0C, 0x0B, 0x0A])
    assert frame[11:15] == b"\x01\x00\x00\x00"
    assert frame[15:19] == b"\xff\xff\xff\xff"
    crc = crc16_ccitt(frame[2:-2])
    assert frame[-2:] == bytes([crc & 0xFF, crc >> 8])


def test_binary_example_in_the_docs() -> None:
    # docs/serial-protocols.md quotes these exact bytes.
    frame = encode_binary_frame(1, 1000, (1, 2, 3, 4))
    assert frame.hex(" ") == (
        "a5 5a 18 01 00 00 00 e8 03 00 00 01 00 00 00 02 00 00 00 03 00 00 00 04 00 00 00 27 c5"
    )


@pytest.mark.parametrize("n_channels", [4, 6])
def test_binary_round_trip(n_channels: int) -> None:
    proto = BinaryFrameProtocol(n_channels)
    frames = proto.feed(_binary_stream(n_channels), received_time_s=12.5)
    rows = COUNTS6 if n_channels == 6 else COUNTS4
    assert [f.seq for f in frames] == list(range(50))
    assert [f.counts for f in frames] == rows
    assert frames[3].device_time_s == pytest.approx(0.003)
    assert all(f.received_time_s == 12.5 for f in frames)
    stats = proto.stats()
    assert stats.frames == 50
    assert stats.dropped == 0
    assert stats.bytes_discarded == 0


def test_binary_resyncs_after_garbage_and_counts_it() -> None:
    rng = random.Random(1)
    garbage = bytes(rng.randrange(256) for _ in range(300)) + SYNC + b"\x28\x00"
    stream = garbage + _binary_stream(6, 10) + garbage + _binary_stream(6, 10, start_seq=10)
    proto = BinaryFrameProtocol(6)
    frames = proto.feed(stream, 0.0)
    assert [f.seq for f in frames] == list(range(20))
    stats = proto.stats()
    assert stats.bytes_discarded >= 2 * 300
    assert stats.sequence_gaps == 0


def test_binary_bit_flip_drops_only_that_frame() -> None:
    stream = bytearray(_binary_stream(6, 10))
    size = binary_frame_size(6)
    stream[4 * size + 20] ^= 0x10  # one bit in frame 4's channels
    proto = BinaryFrameProtocol(6)
    frames = proto.feed(bytes(stream), 0.0)
    assert [f.seq for f in frames] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    stats = proto.stats()
    assert stats.crc_failures == 1
    assert stats.sequence_gaps == 1
    assert stats.frames_missed == 1
    assert stats.bytes_discarded == size


def test_binary_truncated_frame_is_dropped_and_next_frame_kept() -> None:
    size = binary_frame_size(6)
    full = _binary_stream(6, 3)
    stream = full[:size] + full[size : size + 15] + full[2 * size :]  # frame 1 cut short
    proto = BinaryFrameProtocol(6)
    frames = proto.feed(stream, 0.0)
    assert [f.seq for f in frames] == [0, 2]
    assert proto.stats().frames_missed == 1


def test_binary_rejects_frames_of_the_wrong_channel_count() -> None:
    proto = BinaryFrameProtocol(6)
    assert proto.feed(_binary_stream(4, 5), 0.0) == []
    # The last one may still be the start of a longer six-channel frame: kept, pending.
    assert proto.stats().malformed == 4


def test_binary_sequence_wraps_without_gap() -> None:
    proto = BinaryFrameProtocol(4)
    stream = b"".join(
        encode_binary_frame(
            (2**32 - 2 + i) % 2**32,
            (2**32 - 1500 + 1000 * i) % 2**32,
            (1, 2, 3, 4),
        )
        for i in range(4)
    )
    frames = proto.feed(stream, 0.0)
    assert [f.seq for f in frames] == [2**32 - 2, 2**32 - 1, 0, 1]
    assert proto.stats().sequence_gaps == 0
    times = [f.device_time_s for f in frames]
    assert all(b - a == pytest.approx(0.001) for a, b in itertools.pairwise(times))


def test_ascii_round_trip_with_banner_comments_crlf_and_partial_first_line() -> None:
    stream = (
        b"5,1234,99,9"  # the tail of a line the port opened in the middle of
        + b"\n"
        + b"HX711 plate v1.2 booting\r\n# tare done\r\n\r\n"
        + _ascii_stream(20, newline=b"\r\n")
    )
    proto = AsciiLineProtocol(4)
    frames = proto.feed(stream, 3.0)
    assert [f.seq for f in frames] == list(range(20))
    assert [f.counts for f in frames] == COUNTS4[:20]
    assert frames[2].device_time_s == pytest.approx(0.002)
    stats = proto.stats()
    assert stats.banner_lines == 2
    assert stats.malformed == 0
    assert stats.bytes_discarded == len(b"5,1234,99,9\n") + len(
        b"HX711 plate v1.2 booting\r\n# tare done\r\n"
    )


def test_ascii_malformed_lines_are_counted_not_raised() -> None:
    good = _ascii_stream(6).split(b"\n")
    lines = [good[0], good[1], b"2,2000,1,2,3", b"3,3000,1,2,x,4", b"\xff\xfe\x00", good[4], b""]
    proto = AsciiLineProtocol(4, discard_first_line=False)
    frames = proto.feed(b"\n".join(lines), 0.0)
    assert [f.seq for f in frames] == [0, 1, 4]
    stats = proto.stats()
    assert stats.malformed == 3
    assert stats.frames_missed == 2


def test_ascii_endless_garbage_without_newline_is_bounded() -> None:
    proto = AsciiLineProtocol(4, discard_first_line=False)
    for _ in range(100):
        assert proto.feed(b"\x80" * 64, 0.0) == []
    assert proto.stats().bytes_discarded >= 6000
    # The fragment up to the next newline is dropped; the next line parses.
    assert [f.seq for f in proto.feed(b"\x80\x80\n" + _ascii_stream(2), 0.0)] == [0, 1]


@pytest.mark.parametrize("name", ["ascii", "binary"])
def test_every_split_point_gives_the_same_frames(name: str) -> None:
    stream = _ascii_stream(3) if name == "ascii" else _binary_stream(6, 3)
    n_channels = 4 if name == "ascii" else 6
    whole = make_protocol(name, n_channels, discard_first_line=False).feed(stream, 0.0)
    for cut in range(len(stream) + 1):
        proto = make_protocol(name, n_channels, discard_first_line=False)
        frames = proto.feed(stream[:cut], 0.0) + proto.feed(stream[cut:], 0.0)
        assert frames == whole, f"split at byte {cut}"


@st.composite
def _noisy_stream_and_chunks(draw: st.DrawFn) -> tuple[str, bytes, list[int]]:
    name = draw(st.sampled_from(["ascii", "binary"]))
    pieces = []
    for i in range(draw(st.integers(1, 12))):
        if draw(st.booleans()):
            pieces.append(draw(st.binary(max_size=40)))
        counts = draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=4, max_size=4))
        pieces.append(encode_frame(name, i, 1000 * i, counts))
    stream = b"".join(pieces)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    return name, stream, cuts


@settings(max_examples=300, deadline=None)
@given(_noisy_stream_and_chunks())
def test_any_chunking_parses_to_the_same_frames(case: tuple[str, bytes, list[int]]) -> None:
    name, stream, cuts = case
    whole = make_protocol(name, 4).feed(stream, 0.0)
    proto = make_protocol(name, 4)
    frames = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        frames += proto.feed(stream[a:b], 0.0)
    assert frames == whole


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(["ascii", "binary"]))
def test_random_bytes_never_raise(data: bytes, name: str) -> None:
    proto = make_protocol(name, 4)
    proto.feed(data, 0.0)
    stats = proto.stats()
    assert stats.bytes_received == len(data)
    assert stats.bytes_discarded <= len(data)


def test_unknown_protocol_name_is_named() -> None:
    with pytest.raises(ValueError, match="protocol must be one of ascii, binary; got 'modbus'"):
        make_protocol("modbus", 4)
