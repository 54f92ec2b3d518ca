"""What the user sees: result tables and summaries for the CLI (the progress displays that draw
while work runs are in search/cli/progress.py).

A command parses options and calls one library function; the functions here turn the result into
text. Nothing heavy is imported at module level (rich loads inside the functions), so
`imgcap --help` stays fast.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import typer

from search.display import SIGNAL_LABEL, file_size, shown_strings, timecode


def echo(message: str = "", err: bool = False) -> None:
    typer.echo(message, err=err)


def print_json(value) -> None:
    """One JSON document on one line of stdout, valid UTF-8: a file name's bytes that are not
    UTF-8 are written `\\xe9`, as in text output."""
    print(json.dumps(shown_strings(value), ensure_ascii=False))


def err(message: str) -> None:
    """An error or warning on stderr, in red on a terminal; control characters in it (from a file
    name) are shown as escapes, line breaks kept."""
    shown = "\n".join(printable(line) for line in message.split("\n"))
    typer.secho(shown, fg=typer.colors.RED, err=True)


def why(hit) -> str:
    """Each signal's score and rank: `img 0.31 #2 · cap 0.44 #1 · kw 1.20 #1`."""
    parts = []
    for name, sig in hit.signals.items():
        label = SIGNAL_LABEL[name]
        if sig.score is None and sig.rank is None:
            parts.append(f"{label} -")
            continue
        score = f"{sig.score:.2f}" if sig.score is not None else "-"
        parts.append(f"{label} {score}" + (f" #{sig.rank}" if sig.rank else ""))
    if getattr(hit, "tags", None):  # the photo's own tags that matched
        parts.append("tag " + ", ".join(printable(t) for t in hit.tags))
    if getattr(hit, "own_words_all", False):  # ranked first: its own words hold every word
        parts.append("own words")
    found = getattr(hit, "matched_in", None) or {}
    for where in ("description", "folder", "text"):  # own words, words read in the photo
        if found.get(where):
            parts.append(f"{where} " + ", ".join(printable(w) for w in found[where]))
    if getattr(hit, "place", None):  # where it was taken (GPS), for piped output too
        parts.append("place " + printable(hit.place))
    if getattr(hit, "similar", None):  # copies and look-alikes hidden behind this hit
        parts.append(similar_label(hit.similar))
    return " · ".join(parts)


def similar_label(similar) -> str:
    """`+2 similar`: how many files (copies, look-alikes) a search hit stands for besides its own
    (`imgcap search --all` lists them; --json names them)."""
    return f"+{len(similar)} similar"


# C0 and C1 controls, DEL, and the bidirectional overrides that can make a name read backwards
# ("Trojan source"); \udc80-\udcff are the bytes of a non-UTF-8 name (surrogateescape).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\udc80-\udcff]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(m: re.Match) -> str:
    c = m.group()
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """Text safe to print on a terminal: control characters are shown as escapes (`\\x1b`,
    `\\n`), so a file name can neither retitle the terminal nor split a line of output."""
    return _CONTROL.sub(_escape, text)


def print_paths(paths: list[str], null: bool = False) -> None:
    """One path per line (control characters escaped, so every line is one path), or, with
    null, the exact paths each ended by NUL (as `find -print0`), for `xargs -0`."""
    if null:
        out = sys.stdout.buffer
        for p in paths:
            out.write(os.fsencode(p) + b"\0")
        out.flush()
        return
    escaped = 0
    for p in paths:
        shown = printable(p)
        escaped += shown != p
        print(shown)
    if escaped:
        err(f"Warning: {escaped} path(s) hold control characters, shown escaped; -0 gives exact")


def short_path(path: str, root: str | None = None) -> str:
    """`path` relative to root when below it, else with the home folder as ~."""
    if root and path.startswith(root.rstrip(os.sep) + os.sep):
        return path[len(root.rstrip(os.sep)) + 1 :]
    home = os.path.expanduser("~")
    if home not in ("", os.sep) and path.startswith(home + os.sep):
        return "~" + path[len(home) :]
    return path


def common_root(paths: list[str]) -> str | None:
    """The deepest folder holding every path (None when that is only / or they differ in kind)."""
    folders = [os.path.dirname(p) for p in paths if os.path.isabs(p)]
    if len(folders) != len(paths) or not folders:
        return None
    root = os.path.commonpath(folders)
    return root if root not in ("", os.sep) else None


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def print_hits(hits, mode: str, full_why: bool = False, terminal: bool | None = None) -> None:
    """Search results. On a terminal: a table sized to it, paths relative to the folder they
    share, one rank column per signal (with --why: score and rank). Piped: one tab-separated
    line per hit (rank, score, full path, caption, why), nothing boxed."""
    if not hits:
        return
    if terminal is None:
        terminal = stdout_is_terminal()
    if not terminal:
        for hit in hits:
            at = getattr(hit, "at_seconds", None)
            fields = [
                str(hit.rank),
                f"{hit.score:.3f}",
                hit.path,  # the path alone, so `cut -f3` still opens the file
                hit.caption if at is None else f"@ {timecode(at)} {hit.caption}",
                why(hit),
            ]
            print("\t".join(printable(f) for f in fields))
        return
    _hits_table(hits, mode, full_why)


def _hits_table(hits, mode: str, full_why: bool) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    root = common_root([h.path for h in hits])
    title = f"in {printable(short_path(root))}" if root else None
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    signals = list(hits[0].signals) if mode == "hybrid" or full_why else []
    for name in signals:
        table.add_column(SIGNAL_LABEL[name], justify="right", no_wrap=True)
    table.add_column("caption", ratio=3, overflow="fold")
    table.add_column("path", ratio=2, overflow="fold")  # never elide a path: users act on it
    for hit in hits:
        caption = Text(printable(hit.caption))
        for word in hit.matched:
            caption.highlight_regex(rf"(?i)\b{re.escape(word)}\b", "bold yellow")
        if getattr(hit, "place", None):  # named from the photo's GPS
            caption.append("\n" + printable(hit.place), style="dim")
        link = Path(hit.path).as_uri() if Path(hit.path).is_absolute() else None
        path = Text(printable(short_path(hit.path, root)), style=f"link {link}" if link else "")
        if getattr(hit, "at_seconds", None) is not None:  # a video, at its best moment
            path.append(f" @ {timecode(hit.at_seconds)}", style="bold")
        if getattr(hit, "similar", None):  # one row per group: say that there is more
            path.append("\n" + similar_label(hit.similar), style="dim")
        cells = []
        for name in signals:
            sig = hit.signals[name]
            rank = f"#{sig.rank}" if sig.rank else "-"
            score = f"{sig.score:.2f} " if full_why and sig.score is not None else ""
            cells.append(score + rank)
        table.add_row(str(hit.rank), f"{hit.score:.3f}", *cells, caption, path)
    Console(soft_wrap=False).print(table)


def print_understood(label: str) -> None:
    """What the query was read as (`understood: after 2019-01-01, place Paris`), on stderr so
    piped results stay results."""
    shown = f"understood: {printable(label)}  (--literal: the words as typed)"
    typer.secho(shown, dim=True, err=True)


def print_language(language: str, tower: str | None, tower_name: str) -> None:
    """Which language a non-English query was read in and by which text tower, on stderr."""
    if tower == "clip":
        shown = (
            f"language: {printable(language)}, read by CLIP's English text tower: the"
            f" multilingual one ({printable(tower_name)}) is not available here (`imgcap models"
            f" download {printable(tower_name)}`)"
        )
    else:
        how = "multilingual text tower" if tower == "multilingual" else "keywords"
        shown = f"language: {printable(language)} ({how}; --lang en: read as English)"
    typer.secho(shown, dim=True, err=True)


def print_index_summary(s) -> None:
    """The text form of IndexSummary: every number is one of its fields, named alike, so the
    text and `--json` always agree."""
    for warning in s.warnings:
        err(f"Warning: {warning}")
    counts = [f"{s.new} new", f"{s.changed} changed"]
    if s.model_added:
        counts.append(f"{s.model_added} captioned with {s.model}")
    counts.append(f"{s.moved} moved")
    if s.dry_run:
        echo(
            f"Dry run ({s.model}): would index {', '.join(counts)}; "
            f"skip {s.unchanged} unchanged, remove {s.removed}"
            + (f"; {s.failed_this_run} would fail." if s.failed_this_run else ".")
        )
        for path in s.would_process:
            echo(f"  + {printable(path)}")
        for move in s.would_move:
            echo(f"  > {printable(move['from'])} -> {printable(move['to'])}")
        for path in s.would_remove:
            echo(f"  - {printable(path)}")
    else:
        counts += [f"{s.unchanged} unchanged", f"{s.removed} removed"]
        counts.append(f"{s.failed_this_run} failed")
        # A run that captioned nothing has no rate to report ("0 captioned at 0.0 images/s").
        work = f"{s.captioned} captioned at {s.images_per_s:.1f} images/s" if s.captioned else ""
        work = ", ".join(x for x in (work, f"{s.reused} reused" if s.reused else "") if x)
        echo(f"{s.model}: {', '.join(counts)}  ({work or 'nothing to caption'}; {s.seconds:.1f} s)")
    for reason, n in list(s.failed_reasons.items())[:5]:
        echo(f"  failed: {n} × {printable(reason)}")
    if s.failed_this_run and not s.dry_run:
        echo("  (`imgcap failures` lists them; `imgcap index --retry-failed` retries)")
    if s.failures_standing:
        echo(
            f"  {s.failures_standing} failure{'' if s.failures_standing == 1 else 's'} standing "
            "(unchanged since they failed), see "
            "`imgcap failures`; `--retry-failed` tries them again"
        )
    if getattr(s, "captioned_from_vectors", 0):
        echo(f"  {s.captioned_from_vectors} captioned from their stored image vectors")
    if getattr(s, "captions_pending", 0):
        echo(
            f"  {s.captions_pending} still without a caption, searchable by their image vectors"
            " (`imgcap caption-pending` captions them)"
        )
    if getattr(s, "places_named", 0):
        n = s.places_named
        echo(f"  {n} photo{'' if n == 1 else 's'} placed from GPS (city, region, country)")
    if getattr(s, "text_read", 0):
        n = s.text_read
        echo(f"  {n} photo{'' if n == 1 else 's'} read for text ({s.text_found} with text)")
    if getattr(s, "perceptual_hashed", 0):
        n = s.perceptual_hashed
        echo(f"  {n} photo{'' if n == 1 else 's'} indexed before hashed for `imgcap duplicates`")
    if s.unsupported:  # not silently ignored: a folder of .mov files must not look empty
        n = sum(s.unsupported.values())
        kinds = ", ".join(f"{ext} {k}" for ext, k in list(s.unsupported.items())[:5])
        more = ", ..." if len(s.unsupported) > 5 else ""
        echo(f"  {n} unsupported file{'' if n == 1 else 's'} skipped ({kinds}{more})")


def train_summary(result) -> dict:
    from dataclasses import asdict

    return {
        "out": str(result.out),
        "name": result.name,
        "images": result.n_images,
        "captions": result.n_captions,
        "val_captions": result.n_val_captions,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "best_val_cider": getattr(result, "best_val_cider", None),  # SCST
        "selected_by": result.selected_by,  # val_loss, or last_epoch without validation data
        "resumed_from": result.resumed_from,
        "history": [asdict(h) for h in result.history],
        "problems": result.problems,
    }


def print_models(rows: list[dict], terminal: bool | None = None) -> None:
    """The registry's models. Piped: one tab-separated line per model (name, default, local,
    mapping, CLIP, source), nothing boxed. On a terminal: a table, then each model's source on a
    line of its own: names, hub repositories and Drive ids are copied, so none is ever cut or
    folded, at any width."""
    if terminal is None:
        terminal = stdout_is_terminal()
    yes_no = {True: "yes", False: "no"}
    if not terminal:
        for row in rows:
            fields = [row["name"], yes_no[row["default"]], yes_no[row["local"]]]
            print("\t".join([*fields, row["mapping"], row["clip"], row["source"]]))
        return
    from rich.console import Console
    from rich.table import Table

    names = [row["name"] + (" (default)" if row["default"] else "") for row in rows]
    # No box, two spaces between columns: the registry's rows fit 80 columns.
    table = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False, header_style="bold")
    table.add_column("name", no_wrap=True, min_width=max(map(len, names), default=4))
    table.add_column("local", no_wrap=True)
    table.add_column("mapping", no_wrap=True)
    table.add_column("CLIP", overflow="fold", min_width=12)  # read, not copied: may wrap
    for name, row in zip(names, rows, strict=True):
        table.add_row(name, yes_no[row["local"]], row["mapping"], row["clip"])
    console = Console(soft_wrap=False)
    console.print(table, crop=False)  # narrower than the table: the terminal wraps, nothing lost
    width = max((len(row["name"]) for row in rows), default=0)
    beside = all(4 + width + len(row["source"]) <= console.width for row in rows)
    echo("source (`imgcap models download NAME` fetches one ahead of time):")
    for row in rows:  # plain lines, never cut: each source is one unbroken string to copy
        if beside:
            echo(f"  {row['name']:<{width}}  {row['source']}")
        else:
            echo(f"  {row['name']}\n      {row['source']}")


def print_status(info: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"database  {info['db']}  ({file_size(info['db_bytes'])})")
    console.print(f"vectors   {info['index_dir']}  ({file_size(info['index_bytes'])})")
    console.print(f"photos    {info['files']}    failures {info['failures']}")
    for i, root in enumerate(info.get("roots", [])):
        n = root["photos"]
        here = "" if root["exists"] else ", not here"  # the "missing on disk" line says what to do
        label = "roots     " if i == 0 else " " * 10
        line = f"{label}{printable(root['path'])}  ({n} photo{'s' if n != 1 else ''}{here})"
        console.print(line, markup=False, highlight=False)
    if info.get("files_under_no_root"):
        console.print(f"          {info['files_under_no_root']} photos under no root")
    review = info.get("captions_to_review", 0)
    if review:
        console.print(
            f"review    {review} photo{'s' if review != 1 else ''} changed since a person"
            " captioned them (`imgcap caption-set PATH` keeps or replaces the caption):",
            markup=False,
            highlight=False,
        )
        for path in info["captions_to_review_paths"]:
            console.print(f"  {printable(path)}", markup=False, highlight=False)
        if review > len(info["captions_to_review_paths"]):
            console.print(f"  ... {review - len(info['captions_to_review_paths'])} more")
    for root, n in info["missing_on_disk"].items():
        where = f"under {printable(root)}" if root else "under no root"
        gone = root and not os.path.isdir(root)  # mount it, or `roots move` / `roots remove`
        hint = ": not here (`imgcap roots move` or `imgcap roots remove`)" if gone else ""
        console.print(f"          {n} photos missing on disk ({where}{hint})", markup=False)
    if info["kept_captions"]:
        n = info["kept_captions"]
        console.print(f"          {n} captions you wrote for photos no longer in the library")
    table = Table("model", "photos", "results", "vector index")
    for name, m in info["models"].items():
        idx = m["index"]
        state = idx["state"] + (f" ({idx['type']}, {idx['vectors']})" if idx.get("type") else "")
        table.add_row(name, str(m["photos"]), str(m["results"]), state)
    console.print(table)
    for name, m in info["models"].items():
        if m.get("captioned", m["results"]) < m["results"]:
            console.print(
                f"captions  {m['captioned']:,} of {m['results']:,} captioned ({printable(name)};"
                " the rest are searchable by their image vectors until `imgcap caption-pending`"
                " or the next `imgcap index` captions them)",
                markup=False,
                highlight=False,
            )
    if any(m["photos"] != m["results"] for m in info["models"].values()):
        # "photos 373, results 360" reads as 13 photos left out: say what a result is
        console.print(
            "          results: one per distinct picture (copies share one; a video has one"
            " per keyframe)"
        )
    run = info["last_run"]
    if run:
        from search.status import duration, local_time

        took = duration(run["started_at"], run["finished_at"])
        console.print(
            f"last run  #{run['id']} {run['status']}  {run['model']}  "
            f"started {local_time(run['started_at'])}" + (f", took {took}" if took else "")
        )


def print_train_summary(result) -> None:
    for problem in result.problems[:10]:
        err(f"skipped: {problem}")
    if len(result.problems) > 10:
        err(f"skipped: ... {len(result.problems)} problems in all")
    if result.resumed_from:
        echo(f"resumed after epoch {result.resumed_from[0]}")
    if not result.best_epoch:
        best = "no epoch finished"
    elif result.selected_by == "last_epoch":
        best = f"kept the last epoch, {result.best_epoch} (no validation data to pick the best)"
    elif result.selected_by == "val_cider":
        best = f"best epoch {result.best_epoch} (val CIDEr-D {result.best_val_cider:.4f})"
    else:
        best = f"best epoch {result.best_epoch} (val loss {result.best_val_loss:.4f})"
    what = "sampled captions per epoch" if getattr(result, "scst", False) else "training captions"
    echo(
        f"{result.name}: {result.n_images} images, {result.n_captions} {what}, "
        f"{len(result.problems)} skipped; {best}. Use it with --model {result.out}"
    )


def print_eval(result) -> None:
    for problem in result.problems[:10]:
        err(f"skipped: {problem}")
    from rich.console import Console
    from rich.table import Table

    table = Table("metric", "score", "x100 (papers)", title=f"{result.n_images} images")
    for name, value in result.scores.items():
        if value is None:
            table.add_row(name, "-", result.unavailable.get(name, "not computed"))
        else:
            table.add_row(name, f"{value:.4f}", f"{value * 100:.2f}")
    Console().print(table)
    if result.caption_stats:
        echo(caption_stats_line(result.caption_stats))


def caption_stats_line(st: dict) -> str:
    """Length, vocabulary and distinct captions in one line (indexer/train/caption_stats.py)."""
    return (
        f"captions: {st['length_mean']:.1f} words on average (median {st['length_median']:g}, "
        f"{st['length_min']}-{st['length_max']}), vocabulary {st['vocabulary']} words, "
        f"{st['distinct_captions']:.0%} distinct, distinct-2 {st['distinct_2']:.2f}, "
        f"{st['ends_with_period']:.0%} end with '.'"
    )


def print_compare(result) -> None:
    """`imgcap eval --compare A B`: both scores, B - A and its bootstrap interval per metric."""
    for problem in result.problems[:10]:
        err(f"skipped: {problem}")
    from rich.console import Console
    from rich.table import Table

    a, b = (printable(m) for m in result.models)
    table = Table(
        "metric", f"A {a}", f"B {b}", "B - A", "95% interval",
        title=f"{result.n_images} images, {result.bootstrap} bootstrap resamples (seed "
        f"{result.seed})",
    )  # fmt: skip
    for m in result.metrics:
        mark = " *" if m.significant else ""
        table.add_row(m.name, f"{m.a:.4f}", f"{m.b:.4f}", f"{m.diff:+.4f}{mark}",
                      f"[{m.low:+.4f}, {m.high:+.4f}]")  # fmt: skip
    for name, why in result.unavailable.items():
        table.add_row(name, "-", "-", "-", why)
    Console().print(table)
    echo("* the interval excludes 0")
    echo(f"A: {caption_stats_line(result.caption_stats[0])}")
    echo(f"B: {caption_stats_line(result.caption_stats[1])}")


def print_retrieval(report) -> None:
    """`imgcap eval --retrieval`: one row per mode (each signal alone, then the fusion), the same
    by query tag, the --min-score rates and the --sweep grid's best points."""
    from rich.console import Console
    from rich.table import Table

    metrics = ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10")
    console = Console()

    def table(title: str, scores: dict) -> Table:
        t = Table("mode", *metrics, title=title)
        for mode, s in scores.items():
            t.add_row(mode, *(f"{s[m]:.3f}" if m in s else "-" for m in metrics))
        return t

    title = (
        f"{report.n_answerable} queries with an answer ({report.n_queries} in all), "
        f"{printable(report.format)}; MRR@{report.depth}"
    )
    console.print(table(title, report.scores))
    for tag, group in report.by_tag.items():
        console.print(table(f"tag {printable(tag)}: {group['n']} queries", group["scores"]))
    ms = report.min_score
    if ms is not None:
        if ms["no_answer_correct"] is not None:
            echo(f"--min-score {ms['min_score']}: {ms['no_answer_correct']:.0%} of "
                 f"{ms['no_answer_queries']} queries with no answer got nothing")  # fmt: skip
        if ms["answer_dropped"] is not None:
            echo(f"--min-score {ms['min_score']}: dropped the answer of "
                 f"{ms['answer_dropped']:.0%} of {ms['answerable_found']} answerable queries "
                 "hybrid search found")  # fmt: skip
    if report.sweep:
        t = Table("k", "weights (image, caption, keyword)", *metrics, title="fusion sweep")
        for point in report.sweep[:10]:
            s = point["scores"]
            w = ", ".join(f"{v:g}" for v in point["weights"].values())
            t.add_row(str(point["k"]), w, *(f"{s[m]:.3f}" if m in s else "-" for m in metrics))
        console.print(t)
        best = report.sweep[0]
        weights = ",".join(f"{k}={v:g}" for k, v in best["weights"].items())
        echo(f"best: IMGCAP_FUSION_K={best['k']} IMGCAP_FUSION_WEIGHTS={weights}")
