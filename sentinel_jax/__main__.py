"""``python -m sentinel_jax``: the interactive menu."""

from __future__ import annotations

import sys


def main() -> int:
    from sentinel_jax.cli import setup_logging
    from sentinel_jax.menu import run_menu

    setup_logging()
    return run_menu()


if __name__ == "__main__":
    sys.exit(main())
