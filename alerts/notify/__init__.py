"""The dispatch half of the notify path, as small stages assembled in one place
(:func:`alerts.notify.builder.build`). The intake half, which plans, suppresses and records the
outbox rows these stages send, is :class:`alerts.pipeline.Intake`."""
