"""The formats the services exchange over Kafka, each encoded and decoded in exactly one place.

- :mod:`formats.readings`: ``hazwatch.readings``, one columnar record per site and micro-batch
  (written by ingest; read by the rules worker, the console and the history writer);
- :mod:`formats.warning`: ``hazwatch.warnings``, the warning event (written by the rules worker;
  read by alerts, the console, the history writer and the demo);
- :mod:`formats.health`: ``hazwatch.health``, a sensor's data-quality or maintenance event (rules
  worker) or a device's presence (ingest), as typed records (read by alerts, the console and the
  history writer);
- :mod:`formats.maintenance`: ``hazwatch.maintenance``, a maintenance window made at run time
  (written from a maintenance silence; read by the rules worker).

This package imports nothing of hazwatch: every service may import it, and it depends on none.
"""
