"""Content: the content library (the only reader of live source folders), packages, their
immutable versions and programs, and the signed manifests served by package hash."""
