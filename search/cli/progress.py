"""Progress displays for the CLI: the rich progress bar, `IndexProgress` (index runs),
`ModelLoading` (the spinner while a model loads) and `TrainProgress` (training epochs). They draw
on stderr while work runs, unlike search/cli/output.py, which turns a finished result into text.
rich loads inside the functions, so `imgcap --help` stays fast."""

from __future__ import annotations


def progress_bar(console, spinner: bool = False):
    """A started rich progress bar on `console` (stderr): description, bar, n/m, ETA."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    bar = Progress(
        *([SpinnerColumn()] if spinner else []),
        *columns,
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    bar.start()
    return bar


class IndexProgress:
    """Rich progress on stderr (only on a terminal): found, done, skipped, failed, images/s, ETA."""

    def __init__(self, enabled: bool):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self.bar = None

    def __enter__(self) -> IndexProgress:
        if self.enabled:
            self.bar = progress_bar(self.console, spinner=True)
            self.task = self.bar.add_task("scanning", total=None)
        return self

    def __call__(self, p) -> None:
        if self.bar is None:
            return
        if p.phase == "captioning":  # from stored image vectors: nothing found or skipped
            self.captioning(p.done, p.todo)
            return
        text = (
            f"{p.phase}: found {p.found}  skipped {p.skipped}  failed {p.failed}"
            f"  {p.images_per_s():.1f} img/s"
        )
        total = p.todo if p.phase != "scanning" else None
        self.bar.update(self.task, description=text, total=total, completed=p.done)

    def captioning(self, done: int, total: int) -> None:
        """Captions from stored image vectors: "captioning: 12,400 of 50,000 captioned"."""
        if self.bar is not None:
            text = f"captioning: {done:,} of {total:,} captioned"
            self.bar.update(self.task, description=text, total=total, completed=done)

    def loading(self, step: str) -> None:
        """A load_model step (`indexer.models.loading.loading_steps`): the bar says what it
        waits for."""
        if self.bar is not None:
            self.bar.update(self.task, description=f"loading model: {step}")

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


class ModelLoading:
    """'loading model: <step>' with a spinner on stderr (only on a terminal) while a model loads,
    for commands without a progress bar; call done() (or leave the block) once it is ready."""

    def __init__(self):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = self.console.is_terminal
        self.status = None

    def __enter__(self) -> ModelLoading:
        return self

    def __call__(self, step: str) -> None:
        if not self.enabled:
            return
        if self.status is None:
            self.status = self.console.status("loading model")
            self.status.start()
        self.status.update(f"loading model: {step}")

    def done(self) -> None:
        if self.status is not None:
            self.status.stop()
        self.enabled = False  # a later load (none today) stays quiet rather than flickering

    def __exit__(self, *exc: object) -> None:
        self.done()


class TrainProgress:
    """Rich progress on stderr: features, then per epoch steps with loss, lr and samples/s; one
    line per finished epoch (printed also when stderr is not a terminal)."""

    def __init__(self):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.bar = None
        self.task = None

    def __enter__(self) -> TrainProgress:
        if self.console.is_terminal:
            self.bar = progress_bar(self.console)
            self.task = self.bar.add_task("starting", total=None)
        return self

    def __call__(self, p) -> None:
        if p.phase == "epoch":
            s = p.stats
            val = f"  val loss {s.val_loss:.4f}" if s.val_loss is not None else ""
            if s.reward is not None:  # SCST: reward, stops and variety instead of a loss
                val = (f"  reward {s.reward:.3f}  ends with '.' {s.ends_with_period:.0%}  "
                       f"distinct-2 {s.distinct_2:.2f}")  # fmt: skip
                val += f"  val CIDEr-D {s.val_cider:.3f}" if s.val_cider is not None else ""
            self.console.print(
                f"epoch {s.epoch}/{p.epochs}: train loss {s.train_loss:.4f}{val}  "
                f"{s.samples_per_s:.1f} captions/s  {s.seconds:.0f} s"
                + ("  (best)" if s.best else "")
            )
            return
        if self.bar is None:
            return
        if p.phase == "features":
            text = f"CLIP features  {p.samples_per_s:.1f} img/s"
        elif p.phase == "train" and p.reward is not None:
            text = (
                f"SCST epoch {p.epoch}/{p.epochs}  reward {p.reward:.3f}  lr {p.lr:.2e}  "
                f"{p.samples_per_s:.1f} captions/s"
            )
        elif p.phase == "train":
            text = (
                f"epoch {p.epoch}/{p.epochs}  loss {p.loss:.4f}  lr {p.lr:.2e}  "
                f"{p.samples_per_s:.1f} captions/s"
            )
        else:
            text = f"epoch {p.epoch}/{p.epochs}  validating" + (
                f"  loss {p.loss:.4f}" if p.loss is not None else ""
            )
        self.bar.update(self.task, description=text, total=p.steps, completed=p.step)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
