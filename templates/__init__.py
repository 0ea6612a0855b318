"""Jinja templates that render synth output (shipped in the wheel as synth.templates)."""
