"""Background jobs: long work (snapshots, distribution, validation) recorded in the
database and run by one site process at a time (records.py, runner.py, kinds.py)."""
