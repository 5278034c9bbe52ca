"""The ``arcray`` command line (Typer). Thin: parse, validate, call the library."""
