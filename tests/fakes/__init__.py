"""Fakes of our own ports and of the inference container, for tests and benchmarks."""
