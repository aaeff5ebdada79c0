"""``struct input_event`` parsing: real records, reports, SYN_DROPPED, any chunking."""

from __future__ import annotations

import struct

import pytest
from evdev_streams import CORE_AXES, HAT0X, HAT1X, BoardStream, button, dropped
from hypothesis import given, settings
from hypothesis import strategies as st

from vrbalance.config.plates import ABS_CODES
from vrbalance.devices.input_events import (
    BTN_A,
    EV_ABS,
    EV_KEY,
    EV_SYN,
    EVENT_SIZE,
    SYN_DROPPED,
    SYN_REPORT,
    InputEventProtocol,
    encode_event,
    encode_report,
)


def test_constants_are_the_kernels_as_python_evdev_knows_them() -> None:
    ecodes = pytest.importorskip("evdev.ecodes")
    assert (EV_SYN, EV_KEY, EV_ABS) == (ecodes.EV_SYN, ecodes.EV_KEY, ecodes.EV_ABS)
    assert (SYN_REPORT, SYN_DROPPED, BTN_A) == (
        ecodes.SYN_REPORT,
        ecodes.SYN_DROPPED,
        ecodes.BTN_A,
    )
    for name, code in ABS_CODES.items():
        assert ecodes.ecodes[name] == code, name


def test_record_layout_is_struct_input_event() -> None:
    # timeval (two native longs), __u16 type, __u16 code, __s32 value.
    assert 2 * struct.calcsize("l") + 8 == EVENT_SIZE
    record = encode_event(12.000250, EV_ABS, HAT0X, -5)
    sec, usec, ev_type, code, value = struct.unpack("@llHHi", record)
    assert (sec, usec, ev_type, code, value) == (12, 250, EV_ABS, HAT0X, -5)


def test_one_frame_per_report_in_channel_order_with_the_kernel_time() -> None:
    proto = InputEventProtocol(CORE_AXES)
    data = encode_report(5.5, {0x10: 100, 0x11: 200, 0x12: 300, 0x13: 400})
    (frame,) = proto.feed(data, 7.25)
    # Core order FL, FR, BL, BR = HAT1X, HAT0X, HAT1Y, HAT0Y.
    assert frame.counts == (300, 100, 400, 200)
    assert frame.device_time_s == pytest.approx(5.5)
    assert frame.received_time_s == 7.25
    assert frame.seq == 0
    # Only HAT0X changes: the other cells keep their values.
    (frame2,) = proto.feed(encode_report(5.51, {HAT0X: 150}), 7.26)
    assert frame2.counts == (300, 150, 400, 200)
    assert frame2.seq == 1
    assert proto.stats().frames == 2


def test_nothing_until_every_cell_is_known_unless_primed() -> None:
    proto = InputEventProtocol(CORE_AXES)
    assert proto.feed(encode_report(1.0, {HAT0X: 5}), 1.0) == []
    assert proto.frames_withheld == 1
    primed = InputEventProtocol(CORE_AXES, initial=(1, 2, 3, 4))
    (frame,) = primed.feed(encode_report(1.0, {HAT0X: 5}), 1.0)
    assert frame.counts == (1, 5, 3, 4)


def test_syn_dropped_discards_until_the_next_report_then_waits_for_every_cell() -> None:
    proto = InputEventProtocol(CORE_AXES, initial=(10, 10, 10, 10))
    stream = (
        encode_report(1.00, {HAT0X: 20})
        + dropped(1.01)
        + encode_event(1.02, EV_ABS, HAT1X, 999)  # part of a damaged report: discarded
        + encode_event(1.02, EV_SYN, SYN_REPORT, 0)
        + encode_report(1.03, {HAT0X: 30})  # one cell: the others are unknown now
        + encode_report(1.04, {0x10: 31, 0x11: 32, 0x12: 33, 0x13: 34})
    )
    frames = proto.feed(stream, 2.0)
    assert [f.counts for f in frames] == [(10, 20, 10, 10), (33, 31, 34, 32)]
    assert proto.needs_resync
    assert proto.frames_withheld == 1
    stats = proto.stats()
    assert stats.sequence_gaps == 1
    assert stats.bytes_discarded == 3 * EVENT_SIZE  # SYN_DROPPED, the ABS, its SYN_REPORT


def test_resync_from_the_device_state_makes_a_frame_at_once() -> None:
    proto = InputEventProtocol(CORE_AXES, initial=(1, 1, 1, 1))
    proto.feed(dropped(1.0) + encode_event(1.0, EV_SYN, SYN_REPORT, 0), 1.0)
    assert proto.needs_resync and None in proto.values
    frame = proto.set_state([7, 8, 9, 10], 1.5)
    assert frame.counts == (7, 8, 9, 10)
    assert frame.device_time_s is None and frame.received_time_s == 1.5
    assert not proto.needs_resync
    (after,) = proto.feed(encode_report(1.6, {HAT1X: 70}), 1.6)
    assert after.counts == (70, 8, 9, 10)


def test_button_changes_are_reported_once_each_and_make_no_plate_frame() -> None:
    proto = InputEventProtocol(CORE_AXES, initial=(0, 0, 0, 0))
    frames = proto.feed(button(3.0, True) + button(3.1, True) + button(3.5, False), 4.0)
    assert frames == []
    changes = proto.take_button_changes()
    assert [(c.pressed, c.device_time_s) for c in changes] == [(True, 3.0), (False, 3.5)]
    assert proto.button_pressed is False
    assert proto.take_button_changes() == []


def _simulated_stream(n: int = 120) -> bytes:
    # A person of about 70 kg swaying: every cell changes by tens of grams per report.
    import math

    board = BoardStream()
    loads = []
    for i in range(n):
        s = math.sin(i / 9.0)
        loads.append((170 + 25 * s, 175 - 25 * s, 165 + 20 * s, 176 - 20 * s))
    return board.stream(100.0, 100.0, loads)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=60))
def test_any_chunking_parses_to_the_same_frames(cuts: list[int]) -> None:
    data = _simulated_stream()
    whole = InputEventProtocol(CORE_AXES).feed(data, 0.0)
    proto = InputEventProtocol(CORE_AXES)
    frames = []
    pos = 0
    for cut in cuts:
        frames += proto.feed(data[pos : pos + cut], 0.0)
        pos += cut
    frames += proto.feed(data[pos:], 0.0)
    assert frames == whole
    assert len(whole) > 100


def test_a_recorded_stream_file_replays_to_the_loads_it_recorded(tmp_path) -> None:
    # A recording is the raw bytes `cat /dev/input/eventN > file` keeps.
    path = tmp_path / "board.events"
    path.write_bytes(_simulated_stream())
    proto = InputEventProtocol(CORE_AXES)
    frames = proto.feed(path.read_bytes(), 0.0)
    first = frames[0]
    assert first.counts == tuple(int(f / 9.80665 * 100) for f in (170, 175, 165, 176))
    times = [f.device_time_s for f in frames]
    assert times == sorted(times)
    assert times[0] == pytest.approx(100.0)
