"""The molexp command line: thin Typer commands over :mod:`molexp.core`."""
