"""Build PR descriptions in tests the way `synth report` does, from a store and a namespace list."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from synth.app.generation import Generated, generate
from synth.base.config import Settings
from synth.render.report import Recording, Report, ReportSettings, build_report
from synth.store.coverage import observation_window, recorded_sources
from synth.store.dataset import Store


def recording(store: Store) -> Recording:
    """The window and inputs of everything in the store."""
    return Recording(observation_window(store), recorded_sources(store))


def report_of(store: Store, namespaces: Iterable[str], **kwargs: Any) -> tuple[Generated, Report]:
    """Generate the namespaces' policies and describe them with the default report settings."""
    generated = generate(store, Settings(), namespaces=list(namespaces), **kwargs)
    return generated, build_report(generated, recording(store), ReportSettings())
