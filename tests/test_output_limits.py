"""Output limits, on real kernels: a cell printing far more than the cap is cut where its output
arrives (head + marker + tail kept, a warning names the cell, the build goes on), the total limit
works across cells, and a CLI build printing 100 MB stays bounded in memory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

import handoff
from handoff.cli import main
from handoff.errors import OptionError
from handoff.output_limits import MB, OutputLimits, _CellOutputs
from handoff.store import Store
from helpers import ROOT, TRAIN_IRIS, build, local_path

# 20 MB of 8-byte lines, in 1 MB prints (fast in the kernel), between recognisable first/middle/last lines
PRINT_20MB = (
    "print('HEAD-LINE')\n"
    "chunk = ''.join('%07d\\n' % i for i in range(125_000))\n"
    "for i in range(20):\n"
    "    print(chunk, end='')\n"
    "    if i == 10:\n"
    "        print('MIDDLE-LINE')\n"
    "print('TAIL-LINE')"
)


def _stored_notebook(store: Store, result: handoff.BuildResult) -> tuple[bytes, nbformat.NotebookNode]:
    raw = store.read_artifact(result.run_id, "notebook/executed.ipynb")
    return raw, nbformat.reads(raw.decode(), as_version=4)


def _texts(cell: nbformat.NotebookNode) -> list[str]:
    return [o.text for o in cell.outputs if o.output_type == "stream"]


def _output_bytes(cell: nbformat.NotebookNode) -> int:
    return sum(
        len(o.get("text", "").encode()) + sum(len(str(v)) for v in o.get("data", {}).values()) for o in cell.outputs
    )


def test_cell_over_the_cap_keeps_head_marker_tail_and_warns(write_notebook, store: Store, tmp_path: Path) -> None:
    path = write_notebook([("md", "# prints a lot"), PRINT_20MB, TRAIN_IRIS])
    result = build(path, store)
    assert result.ok, result.error
    cut = [w for w in result.warnings if "cut by handoff" in w]
    assert len(cut) == 1 and cut[0].startswith("cell 2: ") and "(per-cell limit 5 MB)" in cut[0]
    raw, kept = _stored_notebook(store, result)
    assert len(raw) < 5 * MB * 1.2  # 20 MB printed; short lines cost an escaped "\n" each in JSON
    texts = _texts(kept.cells[1])
    joined = "".join(texts)
    assert joined.startswith("HEAD-LINE\n0000000\n") and joined.endswith("0124999\nTAIL-LINE\n")
    assert "MIDDLE-LINE" not in joined
    markers = [t for t in texts if "cut by handoff" in t]
    assert (
        len(markers) == 1
        and markers[0].startswith("… 1")
        and markers[0].endswith(" MB of output cut by handoff (per-cell limit 5 MB) …\n")
    )
    head, tail = joined.split(markers[0])
    assert head.endswith("\n") and tail.split("\n", 1)[0].isdigit()  # both cut at line boundaries
    assert 4 * MB < len(head) + len(tail) <= 5 * MB
    # the package holds the capped notebook and verifies
    exported = handoff.export(result.name, result.version, tmp_path / "out", store=store)
    with zipfile.ZipFile(exported.path) as archive:
        sizes = {info.filename.split("/", 1)[1]: info.file_size for info in archive.infolist()}
    assert sizes["notebook/executed.ipynb"] < 5 * MB * 1.2 and sizes["notebook/report.html"] < 5 * MB * 1.2
    assert main(["verify", str(exported.path)]) == 0


def test_total_limit_applies_across_cells(write_notebook, store: Store) -> None:
    # four cells of 0.4 MB each under a 1 MB total: two whole, the third cut, the fourth left with a few bytes
    cell = (
        "print('START-{n}')\nprint('x' * 99 + '\\n', end='' )\nprint(('%09d\\n' % 0) * 40_000, end='')\n"
        "print('END-{n}')"
    )
    path = write_notebook([cell.format(n=n) for n in range(1, 5)] + [TRAIN_IRIS])
    result = build(path, store, max_cell_output_mb=1, max_output_mb=1)
    assert result.ok, result.error
    cut = [w for w in result.warnings if "cut by handoff" in w]
    assert [w.split(":")[0] for w in cut] == ["cell 3", "cell 4"]
    assert all("(total limit 1 MB)" in w for w in cut)
    _, kept = _stored_notebook(store, result)
    for n in (1, 2):
        assert not any("cut by handoff" in t for t in _texts(kept.cells[n - 1]))
        assert "".join(_texts(kept.cells[n - 1])).endswith(f"END-{n}\n")
    third = "".join(_texts(kept.cells[2]))
    assert third.startswith("START-3\n") and third.endswith("END-3\n") and "(total limit 1 MB)" in third
    fourth = "".join(_texts(kept.cells[3]))  # at most a few bytes were left for it
    assert "(total limit 1 MB)" in fourth and "x" * 99 not in fourth and "END-4" not in fourth
    assert sum(_output_bytes(c) for c in kept.cells) <= 1 * MB + 1000  # plus the two marker lines


def test_rich_outputs_past_the_cap_are_dropped_and_a_late_error_is_kept(write_notebook, store: Store) -> None:
    # five 300 kB "images" under a 1 MB cap, then the cell raises: the error still names the cell
    cell = (
        "import base64, os\n"
        "from IPython.display import display\n"
        "for i in range(5):\n"
        "    display({'image/png': base64.b64encode(os.urandom(225_000)).decode()}, raw=True)\n"
        "raise ValueError('after the images')"
    )
    result = build(write_notebook(["x = 1", cell, TRAIN_IRIS]), store, max_cell_output_mb=1)
    assert result.status == "failed" and result.error.cell == 2 and result.error.type == "CellExecutionFailure"
    assert "ValueError: after the images" in result.error.message
    assert any(w.startswith("cell 2: ") and "3 images or other rich outputs dropped" in w for w in result.warnings)
    _, kept = _stored_notebook(store, result)
    kinds = [o.output_type for o in kept.cells[1].outputs]
    assert kinds == ["display_data", "display_data", "stream", "error"]
    assert kept.cells[1].outputs[2].text == (
        "… 900.0 KB of output cut by handoff (per-cell limit 1 MB; 3 images or other rich outputs dropped) …\n"
    )


def test_cleared_output_does_not_count(write_notebook, store: Store) -> None:
    # 5 MB printed in all, but each print replaces the last (a live-updating cell): nothing to cut
    cell = (
        "from IPython.display import clear_output\n"
        "for i in range(50):\n"
        "    clear_output(wait=True)\n"
        "    print(f'step {i} ' + 'x' * 100_000)"
    )
    result = build(write_notebook([cell, TRAIN_IRIS]), store, max_cell_output_mb=1)
    assert result.ok, result.error
    assert not [w for w in result.warnings if "cut by handoff" in w]
    _, kept = _stored_notebook(store, result)
    assert "".join(_texts(kept.cells[0])).startswith("step 49 ")


def test_a_cut_cell_is_saved_before_the_kernel_dies(write_notebook, store: Store) -> None:
    # papermill saves after every cell: the failed build's notebook has the first cell's marker and tail
    result = build(write_notebook([PRINT_20MB, "import os\nos._exit(1)", TRAIN_IRIS]), store, max_cell_output_mb=1)
    assert result.status == "failed" and result.error.type == "KernelDiedFailure" and result.error.cell == 2
    _, kept = _stored_notebook(store, result)
    first = "".join(_texts(kept.cells[0]))
    assert first.startswith("HEAD-LINE\n") and first.endswith("TAIL-LINE\n") and "(per-cell limit 1 MB)" in first


def test_memory_stays_bounded_for_100_mb_of_output(write_notebook, tmp_path: Path) -> None:
    # Without the cap this build peaks above 1.2 GB (and stores a 100 MB notebook); with it, the
    # building process peaks at 550-600 MB (its own warm-ups, e.g. the report's, run beside the
    # flood of output). Measured in a wrapper process so that other tests' children do not count:
    # RUSAGE_CHILDREN is the largest of the CLI and the processes it waited for (kernel, checker).
    path = write_notebook(
        [
            "chunk = ''.join('%07d\\n' % i for i in range(125_000))\nfor i in range(100):\n    print(chunk, end='')",
            TRAIN_IRIS,
        ]
    )
    handoff_cli = Path(sys.executable).parent / "handoff"
    measure = (
        "import json, resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(json.dumps({'rc': done.returncode, 'out': done.stdout, 'err': done.stderr[-3000:],\n"
        "                  'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            measure,
            str(handoff_cli),
            "build",
            str(path),
            "--json",
            "--store",
            str(tmp_path / "store"),
            "--timeout",
            "300",
            "--cell-timeout",
            "240",
        ],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=ROOT,
    )
    report = json.loads(done.stdout)
    assert report["rc"] == 0, report["err"]
    result = json.loads(report["out"])
    assert any(re.match(r"cell 1: 95(\.0)? MB of output cut by handoff", w) for w in result["warnings"]), result[
        "warnings"
    ]
    assert local_path(result["executed_notebook_uri"]).stat().st_size < 5 * MB * 1.2
    assert report["maxrss_kb"] < 700 * 1024, f"peak RSS {report['maxrss_kb'] // 1024} MB"


@pytest.mark.parametrize(
    "options",
    [{"max_cell_output_mb": 0}, {"max_output_mb": -1}, {"max_output_mb": float("nan")}, {"max_cell_output_mb": True}],
)
def test_bad_limits_are_refused_before_anything_runs(options: dict, iris_notebook: Path, store: Store) -> None:
    with pytest.raises(OptionError, match="must be a positive number of MB"):
        handoff.build(iris_notebook, store=store, **options)
    assert store.list_builds() == []


def test_cli_flags_set_the_limits(iris_notebook: Path, store: Store) -> None:
    from handoff.cli import _parser

    args = _parser().parse_args(["build", str(iris_notebook), "--max-cell-output", "2.5", "--max-output", "20"])
    assert (args.max_cell_output, args.max_output) == (2.5, 20.0)
    assert handoff.BuildOptions(max_cell_output_mb=2.5, max_output_mb=20).output_limits == OutputLimits(
        2_500_000, 20_000_000
    )


def test_tail_buffer_stays_bounded_and_keeps_the_last_whole_lines() -> None:
    state = _CellOutputs(cell_index=0, limit=40_000, scope="per-cell", limit_bytes=40_000)
    assert state.tail_budget == 10_000
    for i in range(100_000):
        state.push_tail("stdout", f"line {i}\n")
        assert state.tail_size <= 2 * state.tail_budget + 20
    tail = "".join(text for _, text in state.final_tail())
    assert tail.endswith("line 99999\n") and tail.startswith("line ") and len(tail) <= 10_000
    assert state.overflow_bytes - state.tail_size == sum(len(f"line {i}\n") for i in range(100_000)) - len(tail)
