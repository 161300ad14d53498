"""Golden model, workloads and simulation helpers."""
