"""Deployments: schedules, pause and cancel, phased rollouts, the client policy that carries
them, status ingestion with its roll-ups, and read-only reports across objects."""
