"""SUMMARY.md gathers every report's verdicts, per scale and per paper."""

import json

from analysis.summary import write_summary


def write_claims(root, recipe, scale, verdicts):
    folder = root / recipe / scale
    folder.mkdir(parents=True)
    claims = [
        {"recipe": recipe, "scale": scale, "claim": f"claim {i}", "paper": "6.2 vs 6.8",
         "measured": "6.1 vs 6.3", "verdict": v, "reason": "because"}
        for i, v in enumerate(verdicts)
    ]  # fmt: skip
    (folder / "claims.json").write_text(json.dumps(claims))


def test_summary_counts_verdicts_and_groups_claims_by_paper(tmp_path):
    write_claims(tmp_path, "da_table1", "quick", ["supported", "inconclusive"])
    write_claims(tmp_path, "lrd_table1", "quick", ["not supported"])
    write_claims(tmp_path, "lrd_table1", "paper", ["supported"])
    text = write_summary(tmp_path, {"da_table1": "da", "lrd_table1": "lrd"}).read_text()
    assert "## quick scale: 3 claims — 1 supported, 1 not supported, 1 inconclusive" in text
    assert "## paper scale: 1 claims — 1 supported, 0 not supported, 0 inconclusive" in text
    assert text.index("### Drop-Activation") < text.index("### Learning Rate Dropout")
    assert "| [da_table1](da_table1/quick/README.md) | claim 0 | 6.2 vs 6.8 |" in text


def test_summary_without_reports(tmp_path):
    assert "_no reports yet_" in write_summary(tmp_path, {}).read_text()
