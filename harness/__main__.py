"""``python -m harness`` is the ``harness`` command."""

from harness.cli import main

if __name__ == "__main__":  # not when a spawned worker process imports this module as its parent's main
    raise SystemExit(main())
