"""Privacy: PII detection (detect) and redaction; see docs/benchmarks.md for how detection
was chosen and measured."""
