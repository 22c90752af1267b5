"""Benchmark helpers: the CPU's fp32 peak (:mod:`.peak`), the training step timed by stage (:mod:`.step`)."""
