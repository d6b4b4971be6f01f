"""clir-ot: optimal-transport vs standard distillation for zero-shot MIRACL retrieval.

Run ``clir-ot --help`` for the commands; ``make reproduce`` runs the whole experiment.
"""

__version__ = "0.1.0"
