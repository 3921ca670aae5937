"""The `s1` command. Thin: parse the flags, call the stage, print the result.

Each stage registers its commands on `app` in its own section below. A UserError anywhere
becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import typer

from s1.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="s1: simple test-time scaling — budget forcing, evaluation, training.")


def fail(message: str) -> None:
    """Report a user error the one way the project does it."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(2)


# --- generation ----------------------------------------------------------------------------


def main() -> None:
    try:
        app()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
