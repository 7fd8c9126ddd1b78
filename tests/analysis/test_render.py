"""Reports written to files: Markdown, CSV, Parquet, PNG, claims."""

import json

import matplotlib.pyplot as plt
import pandas as pd

from analysis.render import Report, markdown_table, mean_std, write_report
from analysis.verdicts import Claim


def test_mean_std_formatting():
    assert mean_std(6.381, 0.1234, 3) == "6.38 ± 0.12"
    assert mean_std(6.381, float("nan"), 1) == "6.38"
    assert mean_std(float("nan"), float("nan"), 0) == "n/a"


def test_markdown_table():
    text = markdown_table(pd.DataFrame({"a": [1, None], "b": ["**x**", "y"]}))
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1.0 | **x** |", "|  | y |"]
    assert markdown_table(pd.DataFrame()) == "_no rows_"


def test_write_report_writes_every_file_with_its_contents(tmp_path):
    report = Report("demo", "quick", "Demo", "An intro.")
    report.add_table(
        "results",
        pd.DataFrame({"arm": ["relu", "da"], "error": ["**6.1**", "6.3"]}),
        "Results",
        "Bold is best.",
    )
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    report.add_figure("curve", fig, "A curve")
    report.claims.append(
        Claim("demo", "quick", "DA helps", "6.2 vs 6.8", "6.1 vs 6.3", "supported", "CI excludes 0")
    )
    written = {p.name for p in write_report(report, tmp_path / "out")}
    assert written == {"results.csv", "results.parquet", "curve.png", "claims.json", "README.md"}
    out = tmp_path / "out"
    assert pd.read_csv(out / "results.csv")["error"].tolist() == [6.1, 6.3]
    assert pd.read_parquet(out / "results.parquet")["arm"].tolist() == ["relu", "da"]
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "claims.json").read_text())[0]["verdict"] == "supported"
    readme = (out / "README.md").read_text()
    assert readme.startswith("# Demo\n\nAn intro.")
    assert "| DA helps | directional | 6.2 vs 6.8 | 6.1 vs 6.3 | 0 |  | **supported** |" in readme
    assert "| relu | **6.1** |" in readme and "![A curve](curve.png)" in readme
