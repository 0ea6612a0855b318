"""Decisions the Cilium and Calico templates are handed: a Calico `order` as YAML text."""

from __future__ import annotations

import pytest
import yaml

from synth.render.native import number_text


@pytest.mark.parametrize(("value", "text"), [
    (100.0, "100"),
    (0.0, "0"),
    (12.5, "12.5"),
    (1e-05, "0.00001"),  # `1e-05` would read back as a string
    (1 / 3, "0.3333333333333333"),
    (123456789.25, "123456789.25"),
    (1e20, "100000000000000000000"),
])
def test_an_order_reads_back_as_the_same_number(value: float, text: str) -> None:
    assert number_text(value) == text
    assert yaml.safe_load(f"order: {text}") == {"order": value}
