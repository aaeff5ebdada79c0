"""Wire protocols: real bytes in, frames out; garbage, bit flips, any chunking."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vrbalance.devices.protocols import (
    RESTART_FRAMES,
    SYNC,
    AsciiLineProtocol,
    BinaryFrameProtocol,
    ParserStats,
    binary_frame_size,
    crc16_ccitt,
    encode_binary_frame,
    encode_frame,
    make_protocol,
    max_ascii_line_bytes,
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


# -- the strict ASCII protocol: checksum, grammar, bounds, order ---------------------------


def _xor(payload: bytes) -> int:
    """The checksum computed the long way (independent of the code under test)."""
    value = 0
    for byte in payload:
        value ^= byte
    return value


def _line(payload: bytes) -> bytes:
    """A checksum-form line around ``payload`` (the checksum of whatever it holds)."""
    return b"$%s*%02X\n" % (payload, _xor(payload))


def _parse(stream: bytes, **kw: str) -> tuple[list[int], ParserStats]:
    proto = AsciiLineProtocol(4, discard_first_line=False, **kw)
    frames = proto.feed(stream, 0.0)
    return [f.seq for f in frames], proto.stats()


def test_ascii_line_layout_byte_by_byte_and_the_docs_example() -> None:
    line = AsciiLineProtocol.encode(1203, 12030000, (1731220, 1724480, 1688301, 1690120))
    # docs/serial-protocols.md quotes this exact line.
    assert line == b"$1203,12030000,1731220,1724480,1688301,1690120*2C\n"
    assert line[0:1] == b"$" and line[-4:-3] == b"*"
    assert int(line[-3:-1], 16) == _xor(line[1:-4])
    assert AsciiLineProtocol.encode(7, 8, (-1, 0, 1, 2), checksum=False) == b"7,8,-1,0,1,2\n"
    assert max_ascii_line_bytes(4) == 74 and max_ascii_line_bytes(6) == 98
    widest = AsciiLineProtocol.encode(2**32 - 1, 2**32 - 1, [-(2**31)] * 4).replace(b"\n", b"\r\n")
    assert len(widest) - 1 == max_ascii_line_bytes(4)  # the bound is exactly the widest line


def test_ascii_range_edges_are_accepted() -> None:
    stream = _line(b"4294967295,4294967295,-2147483648,2147483647,0,-1") + _line(b"0,9999,1,2,3,4")
    proto = AsciiLineProtocol(4, discard_first_line=False)
    frames = proto.feed(stream, 0.0)
    assert [(f.seq, f.counts) for f in frames] == [
        (2**32 - 1, (-(2**31), 2**31 - 1, 0, -1)),
        (0, (1, 2, 3, 4)),
    ]
    assert proto.stats().dropped == 0


@pytest.mark.parametrize(
    "payload",
    [
        b"2,2000,1_000,2,3,4",  # underscore (Python's int() takes it)
        b"2,2000,+5,2,3,4",  # a sign where none belongs
        b"-2,2000,5,2,3,4",  # a negative sequence number
        b"2,-2000,5,2,3,4",  # a negative device time
        b"2,2000, 5,2,3,4",  # a space (int() strips it)
        b"2,2000,5 ,2,3,4",
        b"2,2000,5,2,3,4 ",
        b"2,2000,05,2,3,4",  # a leading zero
        b"2,2000,-0,2,3,4",  # minus zero
        b"4294967296,2000,5,2,3,4",  # seq beyond 32 bits
        b"2,4294967296,5,2,3,4",  # t_us beyond 32 bits
        b"2,2000,2147483648,2,3,4",  # a channel beyond int32
        b"2,2000,-2147483649,2,3,4",
        b"2,2000,99999999999,2,3,4",
        b"2,2000,5,2,3",  # too few channels
        b"2,2000,5,2,3,4,5",  # too many
        b"2,2000,5,,3,4",  # an empty field
        b"2,2000,5,2,3,4,",
        b"2,2000,0x10,2,3,4",
        b"2,2000,\xd9\xa3,2,3,4",  # a non-ASCII digit (Arabic-Indic three)
    ],
)
def test_ascii_fields_are_canonical_decimals_within_their_range(payload: bytes) -> None:
    # The checksum is right: only the grammar can reject these.
    stream = AsciiLineProtocol.encode(1, 1000, (1, 2, 3, 4)) + _line(payload)
    stream += AsciiLineProtocol.encode(3, 3000, (1, 2, 3, 4))
    seqs, stats = _parse(stream)
    assert seqs == [1, 3]
    assert (stats.malformed, stats.dropped, stats.frames_missed) == (1, 1, 1)


def test_a_huge_field_is_an_overlong_line_and_the_frames_around_it_are_kept() -> None:
    huge = _line(b"2,2000," + b"1" + b"0" * 308 + b",2,3,4")  # a count of 10^308
    stream = AsciiLineProtocol.encode(1, 1000, (1, 2, 3, 4)) + huge
    stream += AsciiLineProtocol.encode(3, 3000, (1, 2, 3, 4))
    for chunk in (1, 7, 64, 4096):
        proto = AsciiLineProtocol(4, discard_first_line=False)
        frames = []
        for i in range(0, len(stream), chunk):
            frames += proto.feed(stream[i : i + chunk], 0.0)
            assert len(proto._buf) <= proto.max_line_bytes  # memory stays bounded
        stats = proto.stats()
        assert [f.seq for f in frames] == [1, 3], f"chunks of {chunk}"
        assert (stats.overlong_lines, stats.dropped) == (1, 1)
        assert stats.bytes_discarded == len(huge)


def test_checksum_is_required_unless_the_plate_file_says_optional() -> None:
    old = b"".join(
        AsciiLineProtocol.encode(i, 1000 * i, (1, 2, 3, 4), checksum=False) for i in range(3)
    )
    seqs, stats = _parse(old)
    assert seqs == [] and stats.checksum_missing == 3 and stats.dropped == 3
    seqs, stats = _parse(old, checksum="optional")
    assert seqs == [0, 1, 2] and stats.dropped == 0
    # Optional means "may be absent", not "may be wrong".
    bad = bytearray(AsciiLineProtocol.encode(3, 3000, (1, 2, 3, 4)))
    bad[-2] = ord("0") if bad[-2] != ord("0") else ord("1")
    seqs, stats = _parse(old + bytes(bad), checksum="optional")
    assert seqs == [0, 1, 2] and stats.crc_failures == 1
    # "$" without "*HH", "*HH" without "$", lower-case hex: malformed either way.
    good = AsciiLineProtocol.encode(3, 12030000, (1731220, 1724480, 1688301, 1690120))
    assert good.endswith(b"*1F\n")  # a letter in the checksum, to lower-case
    for broken in (good[:-4] + b"\n", good[1:], good[:-3] + good[-3:-1].lower() + b"\n"):
        seqs, stats = _parse(old + broken, checksum="optional")
        assert seqs == [0, 1, 2] and stats.malformed == 1, broken
    with pytest.raises(ValueError, match="checksum must be one of required, optional; got 'no'"):
        AsciiLineProtocol(4, checksum="no")


def test_one_flipped_bit_anywhere_drops_only_its_line() -> None:
    stream = _ascii_stream(6)
    lines = stream.split(b"\n")
    start = len(lines[0]) + len(lines[1]) + 2  # line 2
    for pos in range(start, start + len(lines[2]) + 1):  # its newline included
        for bit in range(8):
            mutated = bytearray(stream)
            mutated[pos] ^= 1 << bit
            seqs, stats = _parse(bytes(mutated))
            if pos == start + len(lines[2]):  # the newline: lines 2 and 3 merge
                assert seqs == [0, 1, 4, 5], (pos, bit)
            else:
                assert seqs == [0, 1, 3, 4, 5], (pos, bit)
            # Each line on the wire counted once: a flip into "\n" ("*" ^ 0x20) makes two.
            assert stats.frames + stats.dropped == 6 + (mutated.count(b"\n") - 6)


def test_duplicate_and_backward_sequence_numbers_are_dropped_and_counted() -> None:
    enc = AsciiLineProtocol.encode
    stream = b"".join(enc(s, 1000 * s, (s, 0, 0, 0)) for s in (0, 1, 2, 2, 3, 1, 4, 4, 5))
    proto = AsciiLineProtocol(4, discard_first_line=False)
    frames = proto.feed(stream, 0.0)
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4, 5]
    stats = proto.stats()
    assert (stats.out_of_order, stats.time_reversed, stats.dropped) == (3, 0, 3)
    assert stats.sequence_gaps == 0 and stats.restarts == 0


def test_device_time_going_back_is_dropped_and_counted() -> None:
    enc = AsciiLineProtocol.encode
    stream = enc(0, 5000, (1, 2, 3, 4)) + enc(1, 4000, (1, 2, 3, 4)) + enc(2, 7000, (1, 2, 3, 4))
    proto = AsciiLineProtocol(4, discard_first_line=False)
    frames = proto.feed(stream, 0.0)
    assert [(f.seq, round(f.device_time_s * 1e6)) for f in frames] == [(0, 5000), (2, 7000)]
    stats = proto.stats()
    assert (stats.time_reversed, stats.frames_missed, stats.dropped) == (1, 1, 1)


def test_a_device_restart_is_confirmed_then_delivered_whole() -> None:
    enc = AsciiLineProtocol.encode
    before = b"".join(enc(s, 10_000 + 1000 * s, (1, 2, 3, 4)) for s in range(500, 510))
    # The plate reboots: sequence and device time start again from 0.
    after = b"".join(enc(s, 1000 * s, (1, 2, 3, 4)) for s in range(RESTART_FRAMES + 3))
    proto = AsciiLineProtocol(4, discard_first_line=False)
    frames = proto.feed(before, 0.0)
    held = proto.feed(after[: after.index(b"\n") + 1] * 1, 0.0)
    assert held == []  # one backward frame: not (yet) believed
    frames += held + proto.feed(after[after.index(b"\n") + 1 :], 0.0)
    assert [f.seq for f in frames] == [*range(500, 510), *range(RESTART_FRAMES + 3)]
    stats = proto.stats()
    assert (stats.restarts, stats.dropped, stats.frames_missed) == (1, 0, 0)
    assert frames[10].device_time_s == 0.0  # the new epoch's own clock


def test_a_replayed_burst_shorter_than_a_restart_is_dropped() -> None:
    enc = AsciiLineProtocol.encode
    seqs = [*range(20), *range(10, 10 + RESTART_FRAMES - 1), *range(20, 25)]
    stream = b"".join(enc(s, 1000 * s, (s, 0, 0, 0)) for s in seqs)
    proto = AsciiLineProtocol(4, discard_first_line=False)
    frames = proto.feed(stream, 0.0)
    assert [f.seq for f in frames] == list(range(25))
    stats = proto.stats()
    assert (stats.out_of_order, stats.restarts) == (RESTART_FRAMES - 1, 0)


@st.composite
def _mutated_ascii_stream(draw: st.DrawFn) -> tuple[bytes, list[tuple], set[int], list[int]]:
    """Up to 40 checksum-form lines, some hit by one bit flip, inserted or deleted byte.

    Returns the stream, the frames sent ``(seq, t_us, counts)``, the indices
    of the lines whose bytes or surrounding newlines were touched, and cuts.
    """
    n = draw(st.integers(2, 40))
    seq0 = draw(st.integers(0, 2**32 - 1))
    t0 = draw(st.integers(0, 2**32 - 1))
    dt = draw(st.integers(1, 20_000))
    int32 = st.integers(-(2**31), 2**31 - 1)
    sent = []
    lines = []
    for i in range(n):
        counts = tuple(draw(st.lists(int32, min_size=4, max_size=4)))
        seq, t_us = (seq0 + i) % 2**32, (t0 + i * dt) % 2**32
        sent.append((seq, t_us, counts))
        lines.append(bytearray(AsciiLineProtocol.encode(seq, t_us, counts)))
    touched: set[int] = set()
    for i in draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n)):
        line = lines[i]
        kind = draw(st.sampled_from(["flip", "insert", "delete"]))
        pos = draw(st.integers(0, len(line) - 1))
        touched.add(i)
        if pos == len(line) - 1 and kind != "insert":
            touched.add(i + 1)  # its newline flipped or deleted: the next line merges in
        if kind == "flip":
            line[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            line.insert(pos, draw(st.integers(0, 255)))
        else:
            del line[pos]
    stream = b"".join(lines)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    return stream, sent, touched, cuts


@settings(max_examples=400, deadline=None)
@given(_mutated_ascii_stream())
def test_fuzz_no_corrupted_frame_is_ever_accepted(
    case: tuple[bytes, list[tuple], set[int], list[int]],
) -> None:
    stream, sent, touched, cuts = case
    proto = AsciiLineProtocol(4, discard_first_line=False)
    frames = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        frames += proto.feed(stream[a:b], 0.0)
    by_seq = {seq: (t_us, counts) for seq, t_us, counts in sent}
    # Every accepted frame is one that was sent, unchanged, in order, once.
    for f in frames:
        t_us, counts = by_seq[f.seq]
        assert f.counts == counts
        assert round(f.device_time_s * 1e6) % 2**32 == t_us
    index = {seq: i for i, (seq, _, _) in enumerate(sent)}
    got = [index[f.seq] for f in frames]
    assert got == sorted(set(got))
    # Every line untouched (its bytes and its newline) is delivered: nothing around a
    # bad line is lost.
    intact = [i for i in range(len(sent)) if i not in touched]
    assert set(intact) <= set(got)
    # The counters stay sane: one count per line, at most one more line per mutation.
    stats = proto.stats()
    assert stats.frames == len(frames)
    assert stats.frames + stats.dropped + stats.banner_lines <= len(sent) + len(touched)
    assert stats.bytes_discarded <= len(stream)


@st.composite
def _disordered_ascii_stream(draw: st.DrawFn) -> tuple[str, bytes, list[int]]:
    """Checksum and old lines, repeats, steps back, restarts and garbage, with cuts."""
    checksum = draw(st.sampled_from(["required", "optional"]))
    seq, t_us = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))
    pieces = []
    for _ in range(draw(st.integers(1, 30))):
        step = draw(st.sampled_from([1, 1, 1, 2, 0, -1, -5, 70_000]))
        seq, t_us = (seq + step) % 2**32, (t_us + draw(st.sampled_from([1000, -1000]))) % 2**32
        old = checksum == "optional" and draw(st.booleans())
        pieces.append(AsciiLineProtocol.encode(seq, t_us, (1, -2, 3, seq % 7), checksum=not old))
        if draw(st.integers(0, 5)) == 0:
            pieces.append(draw(st.binary(max_size=90)))
    stream = b"".join(pieces)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    return checksum, stream, cuts


@settings(max_examples=150, deadline=None)
@given(_disordered_ascii_stream())
def test_any_chunking_gives_the_same_frames_and_counts(case: tuple[str, bytes, list[int]]) -> None:
    checksum, stream, cuts = case
    whole = AsciiLineProtocol(4, checksum=checksum)
    expected = whole.feed(stream, 0.0)
    proto = AsciiLineProtocol(4, checksum=checksum)
    frames = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        frames += proto.feed(stream[a:b], 0.0)
    assert frames == expected
    assert proto.stats() == whole.stats()
    seqs = [f.seq for f in frames]
    assert len(seqs) == len(set(seqs)) or proto.stats().restarts > 0  # no repeat delivered
    assert proto.stats().bytes_discarded <= len(stream)
