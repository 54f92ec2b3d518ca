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
from typing import Annotated, TypeVar

import typer

from indexer.config import Settings
from indexer.errors import ImgcapError

app = typer.Typer(
    help="Caption, embed and search your photos by meaning (ClipCap + CLIP + SQLite + FAISS).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List and download captioning models.", no_args_is_help=False)
app.add_typer(models_app, name="models")

T = TypeVar("T")

# Options shared by several commands.
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Registry name (see `imgcap models`) or a model directory."),
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="auto, cpu, cuda or mps (default: auto).")
]
BeamsOpt = Annotated[
    int, typer.Option("--beams", min=1, help="1 = greedy (published default); N>1 = beam search.")
]
BatchOpt = Annotated[
    int, typer.Option("--batch-size", min=0, help="Images per model batch (0 = pick for device).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
DbOpt = Annotated[
    Path | None,
    typer.Option("--db", help="Database file (default: user data dir, or $IMGCAP_DB).", dir_okay=False),
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Never use the network; fail fast if a file is missing.")
]
PrecisionOpt = Annotated[
    str | None,
    typer.Option("--precision", help="auto (bf16 on GPU, fp32 on CPU), fp32, bf16 or fp16."),
]


def _err(message: str) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)


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
    images: Annotated[list[Path], typer.Argument(help="Image files to caption.", show_default=False)],
    model: ModelOpt = None,
    beams: BeamsOpt = 1,
    batch_size: BatchOpt = 0,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    offline: OfflineOpt = False,
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
            typer.echo(f"{path}\t{text}")

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
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "local", "mapping", "CLIP", "source")
    for row in rows:
        table.add_row(
            row["name"] + (" (default)" if row["default"] else ""),
            "yes" if row["local"] else "no",
            row["mapping"],
            row["clip"],
            row["source"],
        )
    Console().print(table)


@models_app.command("download")
def models_download(
    name: Annotated[str, typer.Argument(help="Registry name, e.g. clipcap-coco.")],
) -> None:
    """Fetch everything a model needs (checkpoint, CLIP weights, tokenizer) ahead of time."""
    from indexer.models import download_model

    path = _run(lambda: download_model(name, _settings()))
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


def main() -> None:  # pragma: no cover - console entry point convenience
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
