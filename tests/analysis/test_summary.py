"""SUMMARY.md gathers every report's verdicts, per scale and per paper."""

import json

from analysis.summary import write_summary


def write_claims(root, recipe, scale, verdicts, counted_in=""):
    folder = root / recipe / scale
    folder.mkdir(parents=True)
    claims = [
        {"recipe": recipe, "scale": scale, "claim": f"claim {i}", "paper": "6.2 vs 6.8",
         "measured": "6.1 vs 6.3", "verdict": v, "reason": "because", "counted_in": counted_in}
        for i, v in enumerate(verdicts)
    ]  # fmt: skip
    (folder / "claims.json").write_text(json.dumps(claims))


def test_summary_counts_paper_scale_first_and_pilot_verdicts_apart(tmp_path):
    write_claims(tmp_path, "da_table1", "quick", ["pilot supported", "pilot inconclusive"])
    write_claims(tmp_path, "lrd_table1", "quick", ["pilot not supported"])
    write_claims(tmp_path, "lrd_table1", "paper", ["supported", "too few seeds"])
    text = write_summary(tmp_path, {"da_table1": "da", "lrd_table1": "lrd"}).read_text()
    paper = "## Paper-scale verdicts: 2 claims: 1 supported, 1 too few seeds"
    pilot = "## Pilot verdicts: 3 claims: 1 supported, 1 not supported, 1 inconclusive"
    assert paper in text and pilot in text and text.index(paper) < text.index(pilot)
    assert text.index("### Drop-Activation") < text.index(
        "### Learning Rate Dropout", text.index(pilot)
    )
    assert "| [da_table1/quick](da_table1/quick/README.md) | claim 0 | 6.2 vs 6.8 |" in text


def test_a_claim_shown_by_several_recipes_is_counted_once(tmp_path):
    write_claims(tmp_path, "lrd_table1", "paper", ["supported"])
    write_claims(tmp_path, "lrd_table2", "paper", ["supported"], counted_in="lrd_table1")
    text = write_summary(tmp_path, {"lrd_table1": "lrd", "lrd_table2": "lrd"}).read_text()
    assert "1 claims: 1 supported (and 1 shown again from another recipe)" in text
    assert "**supported** (counted in lrd_table1)" in text


def test_summary_without_reports(tmp_path):
    assert "_no reports yet_" in write_summary(tmp_path, {}).read_text()


def test_a_recipe_with_several_pilot_scales_is_counted_at_its_largest(tmp_path):
    write_claims(tmp_path, "vcl_uci", "quick", ["pilot inconclusive", "pilot supported"])
    write_claims(tmp_path, "vcl_uci", "large", ["pilot supported", "pilot supported"])
    write_claims(tmp_path, "vcl_uci", "paper", ["supported"])
    scales = {"vcl_uci": ["quick", "large", "paper"]}
    text = write_summary(tmp_path, {"vcl_uci": "vcl"}, scales).read_text()
    assert "## Pilot verdicts: 2 claims: 2 supported (and 2 shown again" in text
    assert "**pilot inconclusive** (counted in vcl_uci/large)" in text
    assert "## Paper-scale verdicts: 1 claims: 1 supported" in text


def test_without_scale_order_a_named_pilot_scale_outranks_quick(tmp_path):
    write_claims(tmp_path, "vcl_uci", "large", ["pilot not supported"])
    write_claims(tmp_path, "vcl_uci", "quick", ["pilot supported"])
    text = write_summary(tmp_path, {"vcl_uci": "vcl"}).read_text()
    assert "1 claims: 1 not supported (and 1 shown again" in text
    assert "**pilot supported** (counted in vcl_uci/large)" in text


def test_a_claim_another_recipe_counts_keeps_that_recipe_over_the_larger_scale(tmp_path):
    write_claims(tmp_path, "da_table2", "quick", ["pilot supported"], counted_in="da_table1")
    write_claims(tmp_path, "da_table2", "large", ["pilot supported"])
    text = write_summary(tmp_path, {"da_table2": "da"}).read_text()
    assert "**pilot supported** (counted in da_table1)" in text
    assert "**pilot supported** (counted in da_table2/large)" not in text


def test_a_claim_the_larger_scale_has_not_measured_yet_is_counted_at_the_smaller(tmp_path):
    write_claims(tmp_path, "vcl_uci", "quick", ["pilot supported", "pilot inconclusive"])
    write_claims(tmp_path, "vcl_uci", "large", ["pilot not supported"])  # claim 1 not run yet
    scales = {"vcl_uci": ["quick", "large", "paper"]}
    large = tmp_path / "vcl_uci" / "large" / "claims.json"
    large.write_text(large.read_text().replace('"counted_in": ""', '"counted_in": "", "n": 0'))
    text = write_summary(tmp_path, {"vcl_uci": "vcl"}, scales).read_text()
    assert "**pilot not supported** (counted in vcl_uci/quick)" in text
    assert "2 claims: 1 supported, 1 inconclusive (and 1 shown again" in text
