"""Data shipped with the simulators: the Prahl hemoglobin table and the tissue simulation tables."""
