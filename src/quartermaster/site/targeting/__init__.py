"""Targeting: clients (registration, approval, re-keying, notification), collections and
their evaluated membership. A membership change gives new members their rows in the
deployments aimed at the collection and re-evaluates phased rollouts, so this room sits
above site/deployments/. The collection rule language is site/collection_rules.py (shared
with application requirements)."""
