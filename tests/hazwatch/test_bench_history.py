"""``hazwatch bench history`` runs the real writer into a real VictoriaMetrics and reads back what
the store holds: all of it."""

from __future__ import annotations

from hazwatch.bench_history import bench_history


def test_every_reading_is_stored_and_counted() -> None:
    result = bench_history(readings=1500, shape="batch", sites=5, log=lambda _m: None)
    assert (result["readings"], result["records"], result["stored"]) == (1500, 30, 1500)
    assert result["readings_per_s"] > 0  # (its CPU may be below one clock tick at this size)
