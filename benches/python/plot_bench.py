"""Charts for the scripts/bench-* tables: a CSV in, a PNG out, the machine in the footer.

Usage (`--help` on each subcommand lists every option). A bench script usually calls it
through scripts/common.sh: `bench_venv` (sets $BENCH_PYTHON), `bench_machine NAME` and
`bench_chart NAME bar|line CSV PNG OPTIONS...` (which adds --out and --machine, and says
why when it skips the chart). Directly:

    python3 plot_bench.py machine --out docs/bench/NAME.machine.txt \
        --server "redis-server 7.0.15" [--note "what else ran meanwhile"]
    $BENCH_PYTHON plot_bench.py bar docs/bench/tensors.csv --out docs/bench/tensors.png \
        --machine docs/bench/tensors.machine.txt --x size,clients \
        --x-format '{size} x{clients}' --y "AI.TENSORSET / SET,AI.TENSORGET / GET" \
        --ylabel "tensor / plain" --hline 1 --title "..." [--where COLUMN=VALUE|OTHER ...]
    $BENCH_PYTHON plot_bench.py line docs/bench/batching.csv --out docs/bench/batching.png \
        --x clients --log-x --y "batched / unbatched" --series "module args" --title "..."

`machine` needs only the standard library (run it with any python3): it writes the
sidecar file of "key: value" lines (CPU model, cores, RAM, kernel, server, date, git
commit, load average, note). `bar` and `line` need matplotlib (the bench venv, see
bench_venv in scripts/common.sh); they read the CSV (first row: column names), keep the
rows that match every --where, and draw: `bar` one group per row (labelled by the --x
columns) with one bar per --y column and its value on top, or, with --series, one group
per --x label with one bar per value of the --series column; `line` one line per --y
column and per value of --series, against the numeric --x column. Without matplotlib
they exit with status 3 and say so, so that a script can keep the CSV and skip the chart.
"""

import argparse
import csv
import datetime
import os
import platform
import subprocess
import sys
import textwrap

MISSING_MATPLOTLIB = 3
DPI = 100


def read_first(path, prefix):
    """The text after `prefix` on the first line of `path` that starts with it, or None."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
    except OSError:
        pass
    return None


def cpu_model():
    model = read_first("/proc/cpuinfo", "model name")
    if model:
        return model.lstrip(": ").strip()
    return platform.processor() or platform.machine() or "unknown"


def memory_gib():
    total = read_first("/proc/meminfo", "MemTotal:")
    if not total:
        return "unknown"
    kib = int(total.split()[0])
    return f"{kib / (1 << 20):.1f} GiB"


def git_commit(repo):
    def git(*args):
        return subprocess.run(
            ["git", "-C", repo, *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (" + uncommitted changes" if dirty else "")


def load_average():
    try:
        with open("/proc/loadavg", encoding="utf-8") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def write_machine(args):
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    now = datetime.datetime.now(datetime.timezone.utc)
    fields = [
        ("cpu", cpu_model()),
        ("cores", str(os.cpu_count() or "unknown")),
        ("memory", memory_gib()),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("server", args.server or "unknown"),
        ("date", now.strftime("%Y-%m-%d %H:%M UTC")),
        ("commit", git_commit(repo)),
        ("load average at start", load_average()),
    ]
    if args.note:
        fields.append(("note", args.note))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for key, value in fields:
            f.write(f"{key}: {' '.join(value.split())}\n")


def read_machine(path):
    """The sidecar's fields in order, as (key, value) pairs; none when there is no file."""
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as err:
        sys.exit(f"plot_bench: cannot read the machine file: {err}")
    return [tuple(part.strip() for part in line.split(":", 1)) for line in lines if ":" in line]


HARDWARE = ("cpu", "cores", "memory", "kernel")


def footer_text(machine):
    if not machine:
        return ""
    fields = dict(machine)
    first = "; ".join(
        fields[key] if key == "cpu" else f"{key} {fields[key]}" for key in HARDWARE if key in fields
    )
    rest = "; ".join(f"{key} {value}" for key, value in machine if key not in HARDWARE)
    return "Measured on " + first + ". " + rest


def read_rows(path, wheres):
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        sys.exit(f"plot_bench: cannot read the CSV: {err}")
    for where in wheres:
        column, sep, values = where.partition("=")
        if not sep:
            sys.exit(f"plot_bench: --where wants COLUMN=VALUE, got {where!r}")
        if rows and column not in rows[0]:
            sys.exit(f"plot_bench: {path} has no column {column!r} (has {list(rows[0])})")
        rows = [row for row in rows if row[column] in values.split("|")]
    if not rows:
        sys.exit(f"plot_bench: no rows to plot in {path} (after --where {wheres})")
    return rows


def number(row, column, path):
    try:
        return float(row[column])
    except KeyError:
        sys.exit(f"plot_bench: {path} has no column {column!r} (has {list(row)})")
    except ValueError:
        return float("nan")


def columns(text):
    return [c.strip() for c in text.split(",") if c.strip()]


def import_pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        print(f"plot_bench: matplotlib is not installed here ({err}): no chart", file=sys.stderr)
        sys.exit(MISSING_MATPLOTLIB)
    return plt


def new_figure(plt, args):
    fig, ax = plt.subplots(figsize=(args.width, args.height), dpi=DPI)
    ax.set_title(args.title, fontsize=11)
    ax.set_ylabel(args.ylabel or ", ".join(columns(args.y)))
    ax.grid(axis="y", alpha=0.3)
    if args.log_y:
        ax.set_yscale("log")
    return fig, ax


def finish(fig, ax, args):
    if args.hline is not None:
        ax.axhline(args.hline, color="black", linewidth=0.8, linestyle="--")
    if args.legend == "above":
        # Between the title and the plot, in rows of up to 4, over no bar or line.
        entries = len(ax.get_legend_handles_labels()[1])
        rows = -(-entries // 4)
        ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                  ncol=min(entries, 4), frameon=False)
        ax.set_title(args.title, fontsize=11, pad=6 + 15 * rows)
    else:
        ax.legend(fontsize=8, loc=args.legend)
    footer = footer_text(read_machine(args.machine))
    lines = textwrap.wrap(footer, width=int(args.width * 17)) if footer else []
    # Room at the bottom for the footer's lines (inches to a fraction of the height).
    bottom = (0.08 + 0.13 * len(lines)) / args.height
    fig.tight_layout(rect=(0, bottom, 1, 1))
    if lines:
        fig.text(0.01, 0.01, "\n".join(lines), fontsize=7, color="dimgray", va="bottom")
    fig.savefig(args.out, dpi=DPI)


def bar_groups(args, rows):
    """The group labels and, per bar series, its name and one value per group (NaN where a
    group has no row of that series)."""
    xs, ys = columns(args.x), columns(args.y)
    label_of = (lambda row: args.x_format.format(**row)) if args.x_format else (
        lambda row: " / ".join(row[x] for x in xs))
    labels = list(dict.fromkeys(label_of(row) for row in rows))
    if not args.series:
        return labels, [(y, [number(row, y, args.csv) for row in rows]) for y in ys]
    if len(ys) != 1:
        sys.exit("plot_bench: bar --series draws one --y column")
    names = list(dict.fromkeys(row[args.series] for row in rows))
    series = []
    for name in names:
        by_label = {label_of(row): number(row, ys[0], args.csv)
                    for row in rows if row[args.series] == name}
        series.append((name, [by_label.get(label, float("nan")) for label in labels]))
    return labels, series


def plot_bar(args):
    plt = import_pyplot()
    rows = read_rows(args.csv, args.where)
    labels, series = bar_groups(args, rows)
    fig, ax = new_figure(plt, args)
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series):
        positions = [g + (i - (len(series) - 1) / 2) * width for g in range(len(labels))]
        bars = ax.bar(positions, values, width, label=name)
        ax.bar_label(bars, fmt=args.value_format, fontsize=args.value_size, padding=1)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(
        labels, fontsize=8, rotation=args.rotate, ha="right" if args.rotate else "center"
    )
    ax.set_xlabel(args.xlabel or " x ".join(columns(args.x)))
    ax.margins(y=0.12)
    finish(fig, ax, args)


def plot_line(args):
    plt = import_pyplot()
    rows = read_rows(args.csv, args.where)
    ys = columns(args.y)
    series = {}
    for row in rows:
        series.setdefault(row[args.series] if args.series else "", []).append(row)
    fig, ax = new_figure(plt, args)
    for name, members in series.items():
        members.sort(key=lambda row: number(row, args.x, args.csv))
        xs = [number(row, args.x, args.csv) for row in members]
        for y in ys:
            label = ": ".join(part for part in (name, y if len(ys) > 1 else "") if part)
            ax.plot(xs, [number(row, y, args.csv) for row in members], marker="o",
                    label=label or y)
    if args.log_x:
        ax.set_xscale("log", base=2)
        ticks = sorted({number(row, args.x, args.csv) for row in rows})
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_xlabel(args.xlabel or args.x)
    finish(fig, ax, args)


def chart_options(parser):
    parser.add_argument("csv", help="the table: a header row, then one row per measurement")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--x", required=True, help="column(s) that label a bar group / the x axis")
    parser.add_argument("--y", required=True, help="comma-separated numeric columns to draw")
    parser.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                        help="keep only the rows with this value, or one of 'A|B' (repeatable)")
    parser.add_argument("--machine", help="the sidecar written by `machine`, for the footer")
    parser.add_argument("--title", default="")
    parser.add_argument("--xlabel")
    parser.add_argument("--ylabel")
    parser.add_argument("--hline", type=float, help="a dashed reference line, e.g. 1 for ratios")
    parser.add_argument("--log-y", action="store_true")
    parser.add_argument("--legend", default="above",
                        help="matplotlib legend location, or 'above' (between title and plot)")
    parser.add_argument("--width", type=float, default=9.0, help="inches (at 100 dpi)")
    parser.add_argument("--height", type=float, default=5.0, help="inches (at 100 dpi)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)

    machine = sub.add_parser("machine", help="write the machine sidecar (standard library only)")
    machine.add_argument("--out", required=True)
    machine.add_argument("--server", help="server name and version, e.g. `redis-server --version`")
    machine.add_argument("--note", help="anything else a reader should know about the run")
    machine.set_defaults(run=write_machine)

    bar = sub.add_parser("bar", help="grouped bars, one group per row")
    chart_options(bar)
    bar.add_argument("--series", help="column whose values are the bars of a group (one --y)")
    bar.add_argument("--value-format", default="%.2f", help="printf format of the bar labels")
    bar.add_argument("--value-size", type=float, default=7, help="font size of the bar labels")
    bar.add_argument("--x-format", help="group label from the row, e.g. '{size} x{clients}'")
    bar.add_argument("--rotate", type=float, default=0, help="degrees to turn the group labels")
    bar.set_defaults(run=plot_bar)

    line = sub.add_parser("line", help="lines against a numeric x column")
    chart_options(line)
    line.add_argument("--series", help="column whose values split the rows into lines")
    line.add_argument("--log-x", action="store_true", help="log2 x axis (client counts)")
    line.set_defaults(run=plot_line)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
