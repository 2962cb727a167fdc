"""Benchmark harness for the evidence ledger: ``python -m benchmarks`` (or ``make bench``).

Every figure is printed beside a baseline measured in the same run on the same PostgreSQL server, so the
ratio says something even when the machine changes.  Results go to ``benchmarks/results.json`` and
``BENCHMARKS.md`` at the repository root.
"""
