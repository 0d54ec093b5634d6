"""Deployments: schedules, pause and cancel, phased rollouts, the client policy that carries
them, status ingestion with its roll-ups, and read-only reports across objects. Deployments of
packages' programs and of applications both live here; which clients they reach is
site/targeting/'s (above this room)."""
