"""Calibration (simulation-based calibration, coverage) and posterior diagnostics."""
