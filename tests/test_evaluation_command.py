"""`caresignal evaluate` from the command line: the report, its plots, re-runs."""

from pathlib import Path

from services.cli import main
from services.evaluation.report import BEGIN, END
from services.evaluation.scenarios import variant_names
from tests.test_evaluation_replay import POLICY


def evaluate(tmp_path: Path, *extra: str, variants: str = "standard") -> int:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    args = ["evaluate", "--variants", variants, "--seeds", "7,8", "--locations", "20", "--days", "40"]
    args += ["--warmup-days", "10", "--policy", str(policy)]
    args += ["--out", str(tmp_path / "evaluation.md"), "--img", str(tmp_path / "img")]
    return main([*args, "--cache", str(tmp_path / "cache"), *extra])


def results(text: str) -> str:
    """The generated part without the measured times (they vary run to run)."""
    body = text.split(BEGIN, 1)[1].split(END, 1)[0]
    body = body.split("### Headline", 1)[1]
    return body.split("### Scenarios", 1)[0]


def test_writes_the_report_and_plots_and_a_rerun_keeps_the_hand_written_part(tmp_path: Path) -> None:
    assert evaluate(tmp_path) == 0
    doc = tmp_path / "evaluation.md"
    first = doc.read_text()
    assert "| recall within 270 days |" in first and "#### Moderate+" in first and "#### Minor+" in first
    assert "caresignal evaluate --variants standard --seeds 7,8 --locations 20 --days 40" in first
    assert "| region | standard | 7 |" in first and "| region | standard | 8 |" in first
    for name in ("frontier", "frontier-days"):
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


def test_every_variant_is_a_scenario_and_the_headline_names_the_worst(tmp_path: Path) -> None:
    names = variant_names()
    chosen = ",".join(names[:2])
    assert evaluate(tmp_path, variants=chosen) == 0
    text = (tmp_path / "evaluation.md").read_text()
    for name in names[:2]:
        assert f"| region | {name} | 7 |" in text
    headline = text.split("### Headline", 1)[1].split("###", 1)[0]
    assert any(f"({name})" in headline for name in names[:2])


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    assert evaluate(tmp_path, "--workers", "0") == 2
    assert evaluate(tmp_path, variants="no-such-world") == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: x\n")
    assert main(["evaluate", "--policy", str(bad), "--out", str(tmp_path / "e.md")]) == 2
    assert not (tmp_path / "e.md").exists()
