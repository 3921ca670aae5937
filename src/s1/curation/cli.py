"""`s1 curate`: one command per registered step, `run` for a recipe, `report`, `steps`."""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from s1.errors import UserError

class _StepGroup(TyperGroup):
    """An unknown step name is one line and exit 2, like every other user error."""

    def resolve_command(self, ctx, args):
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            from s1.curation.steps import get_step

            get_step(args[0])   # raises the UserError that names the registered steps
        return super().resolve_command(ctx, args)


curate_app = typer.Typer(add_completion=False, no_args_is_help=True, cls=_StepGroup,
                         pretty_exceptions_enable=False,
                         help="Curate an s1K-style training set: pool, decontaminate, filter, select.")

OVERRIDES = typer.Argument(None, metavar="[KEY=VALUE]...",
                           help="Step config fields, e.g. size=500 strategy=random, "
                                "teacher.base_url=http://host:8000/v1 (YAML values).")


def _step_values(overrides: list[str] | None) -> dict:
    from s1.config import parse_override

    from s1.curation.pipeline import set_nested

    values = {}
    for text in overrides or []:
        keys, value = parse_override(text)
        set_nested(values, keys, value, text)   # teacher.base_url=URL: a model's settings nest
    return values


def _make_command(name: str):
    def command(
        input: str = typer.Argument(..., metavar="IN",
                                    help="A step's --out directory, a .parquet or a .jsonl file "
                                         "(pool: sources, comma-separated: offline, math, a hub id, a path)."),
        out: str = typer.Option(..., "--out", "-o", help="Directory of this step's output."),
        overrides: list[str] = OVERRIDES,
        show: bool = typer.Option(False, "--show", help="Print the resolved config and exit."),
        shard_rows: int = typer.Option(None, help="Rows per stored shard (rowwise steps)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    ) -> None:
        import json

        from s1.curation.steps import config_dict, get_step, load_input, make_config, run_step

        s = get_step(name)
        values = _step_values(overrides)
        if s.source:
            values.setdefault("sources", [p for p in input.split(",") if p.strip()])
        config = make_config(s, values, name)
        if show:
            print(json.dumps(config_dict(config), indent=2))
            return
        if shard_rows is not None and shard_rows < 1:
            raise UserError("--shard-rows must be at least 1")
        data, fp = (None, "source") if s.source else load_input(input)
        run = run_step(name, data, fp, config, out, progress=not quiet, shard_rows=shard_rows)
        print(run.out_dir)

    return command


def _add_step_commands() -> None:
    from s1.curation.steps import STEPS, get_step

    get_step("pool")   # imports the step modules, filling STEPS
    for name, s in STEPS.items():
        curate_app.command(name, help=f"{s.help} (needs: {', '.join(s.needs) or 'nothing'})")(
            _make_command(name))


@curate_app.command("run")
def run(
    recipe: str = typer.Option(..., "--recipe", "-r",
                               help="configs/curate-*.yaml name (curate-offline) or a .yaml path."),
    overrides: list[str] = typer.Argument(None, metavar="[KEY=VALUE]...",
                                          help="out=DIR or STEP.FIELD=VALUE, e.g. select.size=200"),
    show: bool = typer.Option(False, "--show", help="Print the resolved recipe and exit."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip report.md / report.html."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Run a curation recipe end to end; re-run to resume (finished steps are reused)."""
    import yaml

    from s1.curation.pipeline import load_recipe, run_recipe

    resolved = load_recipe(recipe, overrides or [])
    if show:
        print(yaml.safe_dump(resolved.to_dict(), sort_keys=False), end="")
        return
    record = run_recipe(resolved, progress=not quiet, report=not no_report)
    final = record["stages"][-1]
    print(f"{record['stages'][0]['rows_out']} pool questions -> {final['rows_out']} curated "
          f"({', '.join(s['step'] for s in record['stages'])})", file=sys.stderr)
    print(resolved.out)


@curate_app.command("report")
def report(out: str = typer.Argument(..., help="The `out` directory of a curation run.")) -> None:
    """report.md + report.html + PNGs of a curation run, with the s1K reference beside it."""
    from s1.curation.report import write_report

    for p in write_report(out):
        print(p)


@curate_app.command("steps")
def steps() -> None:
    """List the registered steps and the columns each needs."""
    from s1.curation.steps import STEPS

    for name, s in STEPS.items():
        kind = "source" if s.source else ("rowwise" if s.rowwise else "whole")
        print(f"{name:15s} {kind:8s} needs {', '.join(s.needs) or '-':40s} {s.help}")


def register(app: typer.Typer) -> None:
    _add_step_commands()
    app.add_typer(curate_app, name="curate")
