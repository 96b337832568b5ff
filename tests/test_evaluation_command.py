"""`caresignal evaluate` from the command line: the report, its plots, re-runs."""

from pathlib import Path

from services.cli import main
from services.evaluation.report import BEGIN, END
from tests.test_evaluation_replay import POLICY


def evaluate(tmp_path: Path, *extra: str) -> int:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    args = ["evaluate", "--seeds", "7,8", "--locations", "20", "--days", "40", "--warmup-days", "10"]
    args += ["--policy", str(policy), "--out", str(tmp_path / "evaluation.md"), "--img", str(tmp_path / "img")]
    return main([*args, "--cache", str(tmp_path / "cache"), *extra])


def results(text: str) -> str:
    """The generated part without the measured speeds (CPU time varies run to run)."""
    return text.split(BEGIN, 1)[1].split("### Pooled", 1)[1].split(END, 1)[0]


def test_writes_the_report_and_plots_and_a_rerun_keeps_the_hand_written_part(tmp_path: Path) -> None:
    assert evaluate(tmp_path) == 0
    doc = tmp_path / "evaluation.md"
    first = doc.read_text()
    assert "| recall at Moderate+ |" in first and "region 7" in first and "region 8" in first
    assert "caresignal evaluate --seeds 7,8 --locations 20 --days 40" in first
    for name in ("time-to-detect", "recall-precision", "levels-regional"):
        png = tmp_path / "img" / f"evaluation-{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"
        assert f"(img/evaluation-{name}.png)" in first
    assert len(list((tmp_path / "cache").glob("region-seed7-*.json"))) == 1

    doc.write_text("# Mine\n\nBefore.\n\n" + first[first.index(BEGIN) :] + "\n## Explanations\n\nAfter.\n")
    # From the cache, then replayed again: the same results each time.
    assert evaluate(tmp_path) == 0
    cached = doc.read_text()
    assert cached.startswith("# Mine\n\nBefore.\n\n") and cached.endswith("## Explanations\n\nAfter.\n")
    assert results(cached) == results(first)
    assert evaluate(tmp_path, "--no-cache") == 0
    assert results(doc.read_text()) == results(first)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    assert evaluate(tmp_path, "--workers", "0") == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: x\n")
    assert main(["evaluate", "--policy", str(bad), "--out", str(tmp_path / "e.md")]) == 2
    assert not (tmp_path / "e.md").exists()
