"""The `s1` command: a small entry point. Each stage registers its own commands from
`s1/<stage>/cli.py` (`register(app)`); a new stage adds one import and one call below.

A UserError anywhere becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import typer

from s1.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="s1: simple test-time scaling — budget forcing, evaluation, training.")


def _show_version(value: bool) -> None:
    if value:
        from s1 import __version__
        print(f"s1 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                        help="Print the version and exit.")) -> None:
    """s1: simple test-time scaling — budget forcing, evaluation, training."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0, 2 for a user error, 130 interrupted)."""
    try:
        app(args=argv, prog_name="s1")   # click reports its own usage errors and exits
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


from s1.evaluation.cli import register as register_evaluation  # noqa: E402
from s1.generation.cli import register as register_generation  # noqa: E402
from s1.training.cli import register as register_training  # noqa: E402
from s1.curation.cli import register as register_curation  # noqa: E402
from s1.serving.cli import register as register_serving  # noqa: E402

register_generation(app)
register_evaluation(app)
register_training(app)
register_curation(app)
register_serving(app)

if __name__ == "__main__":
    sys.exit(main())
