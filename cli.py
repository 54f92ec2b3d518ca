"""imgcap command line: parse options -> build Settings -> call one library function -> print.

Nothing heavy is imported at module level, so `imgcap --help` never imports torch. Every expected
error is an `ImgcapError`; `_run` turns it into one red line and its exit code, never a traceback.

Exit codes (documented in README):
  0  success (for index: the run completed, even if some files were reported as failed)
  1  some inputs failed (e.g. `caption` could not read one of the images) / generic error
  2  usage error (bad options)
  3  model not available (offline, download failed, bad model directory)
  4  database problem (locked by another run, unreadable)
  130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from indexer.config import Settings
from indexer.errors import ImgcapError
from search import output
from search.output import err as _err

# The order people meet the commands in: the main job first, then what follows from it.
_COMMAND_ORDER = (
    "index", "search", "caption", "export", "status", "failures", "models", "train", "eval",
)  # fmt: skip


class _Commands(TyperGroup):
    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(_COMMAND_ORDER)}
        return sorted(names, key=lambda n: rank.get(n, len(rank)))

    def get_command(self, ctx, name: str):
        cmd = super().get_command(ctx, name)
        for param in getattr(cmd, "params", ()):
            if param.param_type_name == "argument":
                _plain_argument(param)
            else:
                _plain_option(param)
        return cmd


# typer's type placeholders, as the words click users know.
_PLACEHOLDER = {
    "int": "N", "int range": "N", "float": "X", "float range": "X", "str": "TEXT",
    "file": "FILE", "dir": "DIR", "path": "PATH", "bool": None,
}  # fmt: skip


def _plain_option(param) -> None:
    shown = param.display_type_rich

    def display(ctx):
        text = shown(ctx)
        if not text or not text.startswith("<") or not text.endswith(">"):
            return text
        inner = text[1:-1]
        return f"[{inner}]" if "|" in inner else _PLACEHOLDER.get(inner, inner.upper())

    param.display_type_rich = display


def _plain_argument(param) -> None:
    """Show an argument as click does (`PATH...`), not typer's `{paths}... <list[Path]>`."""
    name = param.metavar or param.name.upper()
    dots = "..." if param.nargs != 1 else ""
    param.display_type_rich = lambda ctx: None
    param._rich_display_name = lambda: name + dots
    param._usage_display_name = lambda: (name if param.required else f"[{name}]") + dots


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"imgcap {version('imgcap')}")
        raise typer.Exit()


# Plain click-style help (rich_markup_mode=None), as sqlite-utils and llm print it: choices as
# [a|b], no <bool> or <list[Path]> type placeholders, paragraphs rewrapped to the terminal.
_HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    cls=_Commands,
    help="Caption, embed and search your photos by meaning (ClipCap + CLIP + SQLite + FAISS).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=_HELP,
)
models_app = typer.Typer(
    cls=_Commands,
    help="List and download captioning models.",
    no_args_is_help=False,
    rich_markup_mode=None,
    context_settings=_HELP,
)
app.add_typer(models_app, name="models")


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Caption, embed and search your photos by meaning (ClipCap + CLIP + SQLite + FAISS)."""


T = TypeVar("T")

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
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
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
DbOpt = Annotated[
    Path | None,
    typer.Option(
        "--db",
        metavar="FILE",
        help="Database file (default: user data dir, or $IMGCAP_DB).",
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
        help="auto = bf16 on a GPU, fp32 on a CPU.",
    ),
]


def _run(fn: Callable[[], T]) -> T:
    """Call fn; turn expected errors into a message + exit code (the one place this happens)."""
    try:
        return fn()
    except ImgcapError as e:
        _err(f"Error: {e}")
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        _err("Interrupted.")
        raise typer.Exit(130) from None


def _settings(**overrides) -> Settings:
    return Settings.from_env(**overrides)


# --------------------------------------------------------------------------------------- caption
@app.command()
def caption(
    images: Annotated[
        list[Path], typer.Argument(help="Image files to caption.", show_default=False)
    ],
    model: ModelOpt = None,
    beams: BeamsOpt = 1,
    batch_size: BatchOpt = 0,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    offline: OfflineOpt = False,
    max_megapixels: MaxMpOpt = 0.0,
    json_out: JsonOpt = False,
) -> None:
    """Caption image files and print one caption per image (nothing is stored).

    Exit status 0 when every image was captioned, 1 when some could not be read (each named).
    """
    from indexer.caption_files import caption_files

    settings = _settings(
        model=model,
        beams=beams,
        batch_size=batch_size,
        device=device,
        precision=precision,
        offline=offline or None,
        max_megapixels=max_megapixels or None,
    )
    failed = 0

    def emit(path: Path, text: str | None, error: str | None) -> None:
        nonlocal failed
        if error is not None:
            failed += 1
            if json_out:
                print(json.dumps({"path": str(path), "caption": None, "error": error}))
            else:
                _err(f"{path}: {error}")
            return
        if json_out:
            print(json.dumps({"path": str(path), "caption": text}, ensure_ascii=False))
        else:
            typer.echo(f"{output.printable(str(path))}\t{output.printable(text or '')}")

    _run(lambda: caption_files(images, settings, emit))
    raise typer.Exit(1 if failed else 0)


# ---------------------------------------------------------------------------------------- models
@models_app.callback(invoke_without_command=True)
def models_list(
    ctx: typer.Context,
    json_out: JsonOpt = False,
) -> None:
    """List the captioning models and whether each is available locally."""
    if ctx.invoked_subcommand is not None:
        return
    from indexer.models import list_models

    rows = _run(lambda: list_models(_settings()))
    if json_out:
        for row in rows:
            print(json.dumps(row))
        return
    output.print_models(rows)


@models_app.command("download")
def models_download(
    name: Annotated[str, typer.Argument(help="Registry name, e.g. clipcap-coco.")],
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            exists=True,
            dir_okay=False,
            help="Checkpoint you downloaded yourself, for models with no hub mirror "
            "(clipcap-coco-transformer).",
        ),
    ] = None,
) -> None:
    """Fetch everything a model needs (checkpoint, CLIP weights, tokenizer) ahead of time."""
    from indexer.models import download_model

    path = _run(lambda: download_model(name, _settings(), checkpoint_file=file))
    typer.echo(f"{name}: ready ({path})")


@models_app.command("tiny")
def models_tiny(
    out: Annotated[Path, typer.Argument(help="Directory to write the tiny model into.")],
    seed: Annotated[int, typer.Option(help="Random seed for the weights.")] = 0,
) -> None:
    """Write a tiny random-weight model (for tests and smoke runs; its captions are nonsense)."""
    from indexer.models import write_tiny_model

    _run(lambda: write_tiny_model(out, seed=seed))
    typer.echo(f"tiny model written to {out} (use --model {out})")


# ------------------------------------------------------------------------- search, export, status
ModeOpt = Annotated[
    Literal["hybrid", "image", "caption", "keyword"],
    typer.Option(
        "--mode",
        help="hybrid (image + caption + keyword, rank-fused), image, caption or keyword.",
    ),
]


def _db_path(db: Path | None) -> Path:
    return _settings(db_path=db).db_path


def _file_filter(in_dir: Path | None, after: str | None, before: str | None, camera: str | None):
    import os

    from indexer.store import FileFilter
    from search.query import date_range_warning, parse_date

    if in_dir is not None and not in_dir.is_dir():
        _err(f"Warning: --in {output.printable(str(in_dir))}: no such folder")
    flt = FileFilter(
        # abspath, not resolve: stored paths are absolute with symlinks kept, as the user typed.
        folder=os.path.abspath(in_dir) if in_dir is not None else None,
        after=parse_date(after, "--after"),
        before=parse_date(before, "--before"),
        camera=camera.strip() if camera and camera.strip() else None,
    )
    warning = date_range_warning(flt.after, flt.before)
    if warning:
        _err(f"Warning: {warning}")
    return flt


# Marks a word that starts with "-" but is no option of ours (`imgcap search -car`): click would
# otherwise read it as the options -c -a -r. The mark never reaches the search.
_TEXT_MARK = "\x00"


class _QueryCommand(TyperCommand):
    """A command whose free text may start with "-" (`imgcap search -car`, `--not -red`)."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        params = self.get_params(ctx)  # with -h, which is not in self.params
        shorts = {o for p in params for o in (*p.opts, *p.secondary_opts) if o[1:2] != "-"}
        marked = []
        for i, arg in enumerate(args):
            if arg == "--":
                marked.extend(args[i:])
                break
            option_like = arg[:2] in shorts and (len(arg) == 2 or arg[2:].isdigit())
            if len(arg) > 1 and arg[0] == "-" and arg[1] != "-" and not option_like:
                arg = _TEXT_MARK + arg
            marked.append(arg)
        return super().parse_args(ctx, marked)


def _text(value: str | None) -> str | None:
    return None if value is None else value.replace(_TEXT_MARK, "")


@app.command(cls=_QueryCommand)
def search(
    query: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="QUERY",
            help="What to look for, in words (quotes optional; a word may start with -).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="Number of photos (at most).")
    ] = 20,
    mode: ModeOpt = "hybrid",
    like: Annotated[
        Path | None,
        typer.Option("--like", exists=True, dir_okay=False, help="Find photos like this image."),
    ] = None,
    not_: Annotated[
        str | None, typer.Option("--not", help="Push down photos that match this text.")
    ] = None,
    in_dir: Annotated[
        Path | None, typer.Option("--in", file_okay=False, help="Only photos below this folder.")
    ] = None,
    after: Annotated[
        str | None,
        typer.Option("--after", metavar="DATE", help="Taken on or after DATE (YYYY[-MM[-DD]])."),
    ] = None,
    before: Annotated[
        str | None,
        typer.Option("--before", metavar="DATE", help="Taken before DATE (YYYY[-MM[-DD]])."),
    ] = None,
    camera: Annotated[
        str | None, typer.Option("--camera", help="Camera make/model contains TEXT.")
    ] = None,
    min_score: Annotated[
        float | None,
        typer.Option(
            "--min-score",
            help="Minimum CLIP similarity of the photo to the query (of its caption in caption"
            " mode); about 0.2-0.3 is typical for a real match with ViT-B/32.",
        ),
    ] = None,
    model: ModelOpt = None,
    db: DbOpt = None,
    device: DeviceOpt = None,
    offline: OfflineOpt = False,
    json_out: JsonOpt = False,
    paths: Annotated[
        bool, typer.Option("--paths", help="Print only paths, one per line (for piping).")
    ] = False,
    null: Annotated[
        bool,
        typer.Option(
            "--null", "-0", help="With --paths: end each path with NUL, not a newline (xargs -0)."
        ),
    ] = False,
    why: Annotated[
        bool,
        typer.Option("--why", help="Show each signal's score and rank (img, cap, kw) in full."),
    ] = False,
) -> None:
    """Search indexed photos by meaning; every hit says why it matched.

    Example: imgcap search dog on a park bench --after 2019 --before 2020 -n 20

    Output: a table on a terminal, tab-separated lines when piped (rank, score, path, caption,
    why), --paths for paths alone, --json for one JSON object per line.
    """
    import os

    # One query is a few tiny matmuls: BLAS worker threads only spin, and on a busy 2-core
    # machine they tripled the cold search (3.2 s -> 1.1 s wall, bench_search.py cold). Must be
    # set before numpy loads; an explicit user setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from search.query import SearchRequest
    from search.query import search as run_search

    if json_out and paths:
        _run(_raise_usage("--json and --paths cannot be combined"))
    if null and not paths:
        _run(_raise_usage("-0/--null goes with --paths"))
    text = " ".join(_text(w) for w in query) if query else None
    settings = _settings(db_path=db, device=device, offline=offline or None)
    req = _run(
        lambda: SearchRequest(
            text=text,
            like=like,
            negative=_text(not_),
            limit=limit,
            mode=mode,
            filters=_file_filter(in_dir, after, before, _text(camera)),
            min_score=min_score,
            model=model,
        )
    )
    hits = _run(lambda: run_search(settings.db_path, req, settings))
    if json_out:
        for hit in hits:
            print(json.dumps(hit.to_dict(), ensure_ascii=False))
    elif paths:
        output.print_paths([hit.path for hit in hits], null=null)
    else:
        output.print_hits(hits, mode, full_why=why)
    if not hits:
        _err("No photos matched.")


def _raise_usage(message: str) -> Callable[[], None]:
    def fail() -> None:
        from indexer.errors import UsageError

        raise UsageError(message)

    return fail


@app.command()
def export(
    out: Annotated[str, typer.Argument(help="Output file (.csv or .jsonl), or - for stdout.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or jsonl (default: from the extension).")
    ] = None,
    in_dir: Annotated[
        Path | None, typer.Option("--in", file_okay=False, help="Only photos below this folder.")
    ] = None,
    model: ModelOpt = None,
    db: DbOpt = None,
    no_neutralise: Annotated[
        bool,
        typer.Option(
            "--no-neutralise",
            help="Write CSV cells starting with = + - @ as they are (by default they get a leading"
            " ' so spreadsheets never run them as formulas).",
        ),
    ] = False,
) -> None:
    """Export captions, one row per photo: path, caption, model, width, height, taken_at,
    camera, indexed_at (UTF-8)."""
    from search.export import export as run_export

    settings = _settings(db_path=db)
    n = _run(
        lambda: run_export(
            settings.db_path,
            out,
            settings,
            fmt=fmt,
            model=model,
            flt=_file_filter(in_dir, None, None, None),
            neutralise_formulas=not no_neutralise,
        )
    )
    if out != "-":
        _err_plain(f"exported {n} photo{'s' if n != 1 else ''} to {out}")


def _err_plain(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def status(db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Show the database: location and size, photos per model, failures, last run, vector index."""
    from search.status import status as run_status

    info = _run(lambda: run_status(_db_path(db)))
    if json_out:
        print(json.dumps(info, ensure_ascii=False))
        return
    output.print_status(info)


# ------------------------------------------------------------------------------ index, failures
_INDEX_HELP = (
    "Caption and embed every photo under PATHS into the database, incrementally.\n\n"
    "Unchanged files are skipped without being opened; moved, renamed and duplicated files "
    "reuse their results; files gone from under PATHS leave the index. Bad files are reported "
    "(see `imgcap failures`) and never stop the run.\n\n"
    "Exit status: 0 when the run completed (even with bad files), 130 when interrupted "
    "(committed batches stay; run again to resume), 4 when another run holds the database."
)


@app.command(help=_INDEX_HELP)
def index(
    paths: Annotated[
        list[Path], typer.Argument(help="Folders (or files) to index.", show_default=False)
    ],
    db: DbOpt = None,
    model: ModelOpt = None,
    beams: BeamsOpt = 1,
    batch_size: BatchOpt = 0,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="Decode processes (0 = one per CPU core).")
    ] = 0,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Say what would be done, counted as a run counts it; write nothing.",
        ),
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Try again the files that failed before.")
    ] = False,
    include_hidden: Annotated[
        bool, typer.Option("--include-hidden", help="Also index hidden files and folders.")
    ] = False,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            metavar="GLOB",
            help="Skip files and folders matching GLOB (repeatable), besides @eaDir, .git, "
            "node_modules, .thumbnails, #recycle and $RECYCLE.BIN.",
            show_default=False,
        ),
    ] = None,
    max_megapixels: MaxMpOpt = 0.0,
    offline: OfflineOpt = False,
    json_out: JsonOpt = False,
) -> None:
    from indexer.pipeline import index_paths

    settings = _settings(
        db_path=db,
        model=model,
        beams=beams,
        batch_size=batch_size,
        device=device,
        precision=precision,
        workers=workers,
        include_hidden=include_hidden or None,
        exclude=tuple(exclude) if exclude else None,
        max_megapixels=max_megapixels or None,
        offline=offline or None,
    )
    stopped: list[ImgcapError] = []  # a run stopped by a full disk (say) still reports its work

    def run():
        try:
            return index_paths(
                paths, settings, dry_run=dry_run, retry_failed=retry_failed, on_progress=show
            )
        except ImgcapError as e:
            if getattr(e, "summary", None) is None:
                raise
            stopped.append(e)
            return e.summary

    with output.IndexProgress(enabled=not dry_run) as show:
        summary = _run(run)
    if not dry_run and not stopped:
        _sync_vectors(settings.db_path)
    if json_out:
        for warning in summary.warnings:  # stdout stays one JSON document; people see these
            _err(f"Warning: {warning}")
        print(json.dumps(summary.to_dict(), ensure_ascii=False))
    else:
        output.print_index_summary(summary)
    if stopped:
        _run(lambda: _raise(stopped[0]))  # the error after the summary, with its exit code
    if summary.interrupted:
        _err("Interrupted: committed batches are kept; run the same command again to resume.")
        raise typer.Exit(130)


def _raise(error: Exception) -> None:
    raise error


def _sync_vectors(db_path: Path) -> None:
    """Bring the FAISS cache in line with what this run committed (searches rebuild it anyway)."""
    try:
        from search.vectors import sync_indexes
    except ImportError:  # search/ not installed alongside: the cache is rebuilt on first search
        return
    _run(lambda: sync_indexes(db_path))


@app.command()
def failures(
    db: DbOpt = None,
    json_out: JsonOpt = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
) -> None:
    """List every file that could not be indexed, with the reason."""
    from indexer.store import Store

    def read() -> list[dict]:
        with Store.open(_db_path(db), create=False) as store:
            return store.failures()

    rows = _run(read)
    if json_out:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
    elif csv_out:
        from search.export import write_csv  # the one CSV writer: quoting, formula escapes

        write_csv(rows, sys.stdout, _FAILURE_COLUMNS, plain_columns=("size", "mtime_ns"))
    elif not rows:
        typer.echo("No failures.")
    else:
        for row in rows:
            typer.echo(output.printable(row["path"]) + "\t" + output.printable(row["reason"]))


_FAILURE_COLUMNS = ("path", "reason", "size", "mtime_ns", "failed_at", "model")


# ------------------------------------------------------------------------------------ train, eval
DataArg = Annotated[
    Path,
    typer.Argument(
        help="Captioned images: COCO captions JSON, Karpathy split JSON, CSV of path,caption, "
        "or a folder of photos with .txt captions.",
        show_default=False,
    ),
]


@app.command()
def train(
    data: DataArg,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", file_okay=False, help="Run folder; becomes the model directory."
        ),
    ],
    from_model: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Start from this model (registry name or directory): its GPT-2, mapper, CLIP "
            "and tokenizer. Default: GPT-2 small from the hub and a new mapper.",
        ),
    ] = None,
    mapping: Annotated[
        str | None,
        typer.Option(
            "--mapping", help="mlp or transformer (default: the base model's; a change = new)."
        ),
    ] = None,
    prefix_only: Annotated[
        bool, typer.Option("--prefix-only", help="Freeze GPT-2; train only the mapping network.")
    ] = False,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the data.")] = 10,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Captions per optimiser step.")
    ] = 40,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate (AdamW).")] = 2e-5,
    warmup: Annotated[
        int | None,
        typer.Option("--warmup", min=0, help="Warm-up steps (default: min(5000, 10% of steps))."),
    ] = None,
    val: Annotated[
        Path | None,
        typer.Option("--val", help="Validation data (default: DATA's val split, if any)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace a model already in OUT (even --from's own), or start over a run there "
            "with other settings.",
        ),
    ] = False,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    offline: OfflineOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Fine-tune a captioner on your captioned photos (ClipCap recipe), keeping the best epoch.

    Running the same command again after an interruption resumes the run. The result loads
    everywhere with --model OUT.
    """
    from indexer.train import TrainConfig
    from indexer.train import train as run_train

    settings = _settings(device=device, precision=precision, offline=offline or None)
    cfg = _run(
        lambda: TrainConfig(
            data=data,
            out=out,
            base=from_model,
            mapping=mapping,
            prefix_only=prefix_only,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            warmup=warmup,
            val=val,
            seed=seed,
            force=force,
        )
    )
    with output.TrainProgress() as show:
        result = _run(lambda: run_train(cfg, settings, show))
    if json_out:
        print(json.dumps(output.train_summary(result), ensure_ascii=False))
        return
    output.print_train_summary(result)


@app.command("eval")
def eval_(
    data: DataArg,
    model: ModelOpt = None,
    split: Annotated[
        str, typer.Option("--split", help="Split to score (formats without splits: all).")
    ] = "test",
    beams: BeamsOpt = 1,
    batch_size: BatchOpt = 0,
    captions: Annotated[
        Path | None,
        typer.Option(
            "--captions",
            exists=True,
            dir_okay=False,
            help='Score these captions instead ([{"image_id": ..., "caption": ...}]).',
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", dir_okay=False, help="Write scores + per-image captions."),
    ] = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    offline: OfflineOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Score captions with BLEU-1..4, METEOR, ROUGE-L, CIDEr-D and SPICE (coco-caption).

    Captions the images of DATA's split with the model, or scores --captions made elsewhere.
    METEOR and SPICE need Java; without it they are listed as unavailable.
    """
    from indexer.evaluate import evaluate, write_results

    settings = _settings(
        model=model,
        beams=beams,
        batch_size=batch_size,
        device=device,
        precision=precision,
        offline=offline or None,
    )
    result = _run(lambda: evaluate(data, settings, split=split, captions_file=captions))
    for warning in result.warnings:  # also with --json: stderr never mixes into the document
        _err(f"Warning: {warning}")
    if out is not None:
        _run(lambda: write_results(result, out))
    if json_out:
        summary = {k: v for k, v in result.to_dict().items() if k != "images"}
        print(json.dumps(summary, ensure_ascii=False))
        return
    output.print_eval(result)
    if out is not None:
        typer.echo(f"results written to {out}")


def main() -> None:  # pragma: no cover - console entry point convenience
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
