"""BDS reference values: groups, units and percentiles."""

from __future__ import annotations

import numpy as np
import pytest

from vrbalance.report.reference import REFERENCE_FILE, age_group, reference_values, standing


def test_reference_file_is_the_full_data_set() -> None:
    lines = REFERENCE_FILE.read_text().splitlines()
    assert lines[0].split("\t")[:6] == ["Trial", "Subject", "Vision", "Surface", "Age", "AgeGroup"]
    assert len(lines) == 1931  # 1930 trials of 163 subjects
    assert (REFERENCE_FILE.parent / "README.md").read_text().count("CC BY 4.0") == 1


def test_age_groups_follow_the_data_set() -> None:
    assert age_group(59.9) == "Young" and age_group(60) == "Old" and age_group(None) is None
    young = reference_values("Young", "open", "firm", "COPvelo")
    old = reference_values("Old", "open", "firm", "COPvelo")
    both = reference_values(None, "open", "firm", "COPvelo")
    assert young.size + old.size == both.size == 489
    assert np.median(old) > np.median(young)  # older adults sway faster


def test_standing_converts_units_and_ranks() -> None:
    ref = reference_values("Old", "closed", "foam", "COPvelo")
    median_cm_s = float(np.median(ref))
    st = standing(
        "cop_velocity_mps", median_cm_s / 100.0, age_years=70, eyes="closed", surface="foam"
    )
    assert st is not None
    assert st.unit == "cm/s" and st.value == pytest.approx(median_cm_s)
    assert st.percentile == pytest.approx(50.0, abs=1.0)
    assert st.group == "Old, eyes closed, foam" and st.n == ref.size
    low = standing("cop_area_m2", 1e-9, age_years=30, eyes="open", surface="firm")
    assert low is not None and low.percentile == 0.0 and low.unit == "cm²"
    assert standing("cop_rms_m", 0.01, age_years=30, eyes="open", surface="firm") is None
    assert (
        standing("cop_velocity_mps", float("nan"), age_years=30, eyes="open", surface="firm")
        is None
    )
