"""The `qm` command line: a face over the site's HTTP API and the local agents."""
