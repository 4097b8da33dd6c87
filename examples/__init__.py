"""Examples to copy: ``python -m examples.api`` runs the example HTTP service."""
