"""``python -m clir_ot`` runs the command-line interface (the same as the ``clir-ot`` script)."""

from .cli import app

app()
