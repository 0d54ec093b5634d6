"""`python -m quartermaster` is `qm`."""

from quartermaster.cli.main import app

app()
