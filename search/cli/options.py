"""The CLI's parsing rules, shared by every command module: option types, choices, the group
class that lists commands in order, prints help plainly (as sqlite-utils and llm do) and is the one
place expected errors become messages and exit codes, and the command class that lets a query
start with "-".

Only typer and the standard library load here, so `imgcap --help` stays fast and never
imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from typer.core import TyperCommand, TyperGroup

from indexer.config import Settings
from indexer.errors import ImgcapError
from search.cli import output
from search.cli.output import err

# The order people meet the commands in: the main job first, then what follows from it.
COMMAND_ORDER = (
    "index", "search", "serve", "caption", "caption-set", "export", "write-back", "status",
    "failures", "duplicates", "roots", "merge", "models", "train", "eval",
)  # fmt: skip


@dataclass(frozen=True)
class Services:
    """What a command can be handed instead of loading it itself, as click's context object:
    `CliRunner().invoke(app, args, obj=Services(encoder_loader=...))` runs `search` and
    `caption-set` with another CLIP text tower (the tests' fake one, which needs no weights)."""

    # (model source, Settings) -> encoder; None: search.query_encoder.load_encoder
    encoder_loader: Callable[[str, Settings], Any] | None = None


def services(ctx: typer.Context) -> Services:
    return ctx.obj if isinstance(ctx.obj, Services) else Services()


# -h as well as --help, on every command.
HELP_SETTINGS = {"help_option_names": ["-h", "--help"]}


class Commands(TyperGroup):
    """imgcap and its command groups: commands in COMMAND_ORDER (typer lists mounted groups after
    all commands), help without typer's type placeholders, and expected errors as one red line
    and an exit code, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except typer.BadParameter as e:
            e.message = plain_message(e.message)
            raise
        except ImgcapError as e:
            err(f"Error: {e}" if e.exit_code else str(e))
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            err("Interrupted.")
            raise typer.Exit(130) from None

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: rank.get(n, len(rank)))

    def get_command(self, ctx, name: str):
        cmd = super().get_command(ctx, name)
        for param in getattr(cmd, "params", ()):
            if param.param_type_name == "argument":
                plain_argument(param)
            else:
                plain_option(param)
        return cmd


def plain_message(message: str) -> str:
    """A bad option value's message without the validation library's wording (typer checks
    values with pydantic): "must be a whole number", not "Input should be a valid integer,
    unable to parse string as an integer"; no "Value error," prefix."""
    message = message.removeprefix("Value error, ")
    if message.startswith("Input should be a valid integer"):
        return "must be a whole number"
    if message.startswith("Input should be a valid number"):
        return "must be a number"
    message = message.replace("greater than or equal to ", "at least ")
    return message.replace("Input should be ", "must be ", 1)


def command_group(help: str, **options) -> typer.Typer:
    """A Typer app for imgcap or one of its command groups: plain click-style help
    (rich_markup_mode=None, as sqlite-utils and llm print it: choices as [a|b], no <bool> or
    <list[Path]> placeholders, paragraphs rewrapped), -h, and `Commands` (order, error boundary)."""
    return typer.Typer(
        cls=Commands,
        help=help,
        rich_markup_mode=None,
        context_settings=HELP_SETTINGS,
        **options,
    )


# typer's type placeholders, as the words click users know.
PLACEHOLDER = {
    "int": "N", "int range": "N", "float": "X", "float range": "X", "str": "TEXT",
    "file": "FILE", "dir": "DIR", "path": "PATH", "bool": None,
}  # fmt: skip


def plain_option(param) -> None:
    shown = param.display_type_rich

    def display(ctx):
        text = shown(ctx)
        if not text or not text.startswith("<") or not text.endswith(">"):
            return text
        inner = text[1:-1]
        return f"[{inner}]" if "|" in inner else PLACEHOLDER.get(inner, inner.upper())

    param.display_type_rich = display


def plain_argument(param) -> None:
    """Show an argument as click does (`PATH...`), not typer's `{paths}... <list[Path]>`."""
    name = param.metavar or param.name.upper()
    dots = "..." if param.nargs != 1 else ""
    param.display_type_rich = lambda ctx: None
    param._rich_display_name = lambda: name + dots
    param._usage_display_name = lambda: (name if param.required else f"[{name}]") + dots


def print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"imgcap {version('imgcap')}")
        raise typer.Exit()


# Options shared by several commands. Choices are Literal types, so a bad value is refused by the
# parser (exit 2) before anything heavy (torch) is imported.
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        metavar="NAME|DIR",
        help="Registry name (see `imgcap models`) or a model directory.",
    ),
]
DeviceOpt = Annotated[
    Literal["auto", "cpu", "cuda", "mps"] | None,
    typer.Option(
        "--device", metavar="[auto|cpu|cuda|mps]", help="Where models run (default: auto)."
    ),
]
BeamsOpt = Annotated[
    int,
    typer.Option(
        "--beams", min=1, metavar="N", help="1 = greedy (published default); N>1 = beam search."
    ),
]
BatchOpt = Annotated[
    int,
    typer.Option(
        "--batch-size", min=0, metavar="N", help="Images per model batch (0 = pick for device)."
    ),
]
# --json prints JSON lines (one object per line) where a command lists things, and one JSON
# document where it reports on one thing (docs/reference.md: "--json").
JsonOpt = Annotated[
    bool, typer.Option("--json", help="JSON lines: one JSON object per line (for scripts).")
]
JsonDocOpt = Annotated[
    bool, typer.Option("--json", help="One JSON document instead of text (for scripts).")
]
MaxMpOpt = Annotated[
    float,
    typer.Option(
        "--max-megapixels",
        min=0,
        metavar="MP",
        help="Skip images larger than this (default: from free memory and workers, 24-120).",
        show_default=False,
    ),
]
ResizeOpt = Annotated[
    Literal["fast", "exact"] | None,
    typer.Option(
        "--resize",
        metavar="[fast|exact]",
        help="How a photo is shrunk for the model: fast (read at a reduced size; looks the same"
        " as exact) or exact (the whole photo, resized as CLIP does; slower; with --precision"
        " fp32, scores that other CLIP tools reproduce exactly).",
        show_default=False,
    ),
]
DbOpt = Annotated[
    Path | None,
    typer.Option(
        "--db",
        metavar="FILE",
        help="Database file (default: $IMGCAP_DB, else a --db-here database in or above the"
        " current folder, else the user data dir).",
        dir_okay=False,
    ),
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Never use the network; fail fast if a file is missing.")
]
PrecisionOpt = Annotated[
    Literal["auto", "fp32", "bf16", "fp16"] | None,
    typer.Option(
        "--precision",
        metavar="[auto|fp32|bf16|fp16]",
        help="auto = bf16 on a GPU and on CPUs with native bf16 (AVX-512 BF16, AMX), else"
        " fp32. fp32 computes as the reference ClipCap does, bit for bit.",
    ),
]


ModeOpt = Annotated[
    Literal["hybrid", "image", "caption", "keyword", "text"],
    typer.Option(
        "--mode",
        help="hybrid: how the photo looks, its caption and your own words (tags, descriptions,"
        " file and folder names) together, and the text read in photos (index --ocr); or image,"
        " caption, keyword or text alone.",
    ),
]


def db_path(db: Path | None) -> Path:
    return Settings.from_env(db_path=db).db_path


def database_model(settings: Settings) -> Settings:
    """`settings` for a command that runs a model: without --model or IMGCAP_MODEL, the model the
    database already holds (as a search reads it), said on stderr."""
    from indexer.run.run_model import model_for_run

    chosen = model_for_run(settings)
    if chosen.model != settings.model:
        message = f"model {chosen.model} (the one this database holds; --model picks another)"
        typer.echo(message, err=True)
    return chosen


def file_filter(
    in_dir: Path | None,
    after: str | None,
    before: str | None,
    camera: str | None,
    tags: list[str] | None = None,
    place: str | None = None,
):
    """The search's filters from its options; warnings go to stderr."""
    from search import filters

    def warn(message: str) -> None:
        err(f"Warning: {output.printable(message)}")  # a folder name may hold a line break

    return filters.file_filter(in_dir, after, before, camera, tags, place, warn=warn)


# Marks a word that starts with "-" but is no option of ours (`imgcap search -car`): click would
# otherwise read it as the options -c -a -r. The mark never reaches the search.
TEXT_MARK = "\x00"


class QueryCommand(TyperCommand):
    """A command whose free text may start with "-" (`imgcap search -car`, `--not -red`)."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        params = self.get_params(ctx)  # with -h, which is not in self.params
        shorts = {o for p in params for o in (*p.opts, *p.secondary_opts) if o[1:2] != "-"}
        # Options that take a value: the word after one is that value (`-n -1`, `--after -5`),
        # for click to check and refuse in its own words, never free text.
        valued = {
            o
            for p in params
            if getattr(p, "param_type_name", "") == "option" and not p.is_flag and not p.count
            for o in p.opts
        }
        marked = []
        for i, arg in enumerate(args):
            if arg == "--":
                marked.extend(args[i:])
                break
            option_like = arg[:2] in shorts and (len(arg) == 2 or arg[2:].isdigit())
            value = i > 0 and args[i - 1] in valued
            if len(arg) > 1 and arg[0] == "-" and arg[1] != "-" and not option_like and not value:
                arg = TEXT_MARK + arg
            marked.append(arg)
        return super().parse_args(ctx, marked)


def query_text(value: str | None) -> str | None:
    return None if value is None else value.replace(TEXT_MARK, "")
