"""Content: packages, their immutable versions and programs, and the signed manifests served
by package hash. The library store they are kept in is site/content_library.py (below every
room: the site context opens it)."""
