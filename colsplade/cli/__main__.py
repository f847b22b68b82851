"""``python -m colsplade.cli``: kept working for scripts written before ``python -m colsplade``."""

from colsplade.cli import main

if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess
    main(prog_name="colsplade")
