"""``python -m colsplade``: the same command line as the ``colsplade`` console script."""

from colsplade.cli import main

if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess
    main(prog_name="colsplade")
