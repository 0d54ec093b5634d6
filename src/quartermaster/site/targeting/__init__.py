"""Targeting: clients (registration, approval, re-keying), collections, the collection rule
language, and evaluated membership."""
