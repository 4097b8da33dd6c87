"""Hypothesis strategies shared by the property tests of the fast input checks."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Small objects of JSON-like values, some of which no JSON column takes (integers past 64
# bits, NaN and infinite floats): what a caller may pass as a job's parameters or a result.
SMALL_OBJECTS: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.text(max_size=3),
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats()
    | st.text(max_size=3)
    | st.lists(st.integers(), max_size=2),
    max_size=3,
)
