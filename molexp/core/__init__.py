"""The core of molexp: identity, records, profiles, lifecycle and execution.

Nothing in this package imports typer or rich; the CLI in ``molexp.cli`` is a thin
layer over it, and so is the Python API in ``molexp``.
"""
