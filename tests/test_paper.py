"""The shipped paper tables parse into the published numbers."""

from svip.eval.paper import format_paper_table, load_paper_tables


def test_all_six_tables_parse():
    tables = load_paper_tables()
    assert sorted(tables) == [1, 2, 3, 4, 5, 6]
    table1 = tables[1]
    assert table1.columns == ["MT-Bench", "Trans.", "Sum.", "QA", "Math", "RAG", "Avg."]
    qwen_svip = next(row for row in table1.rows if row[0].startswith("Qwen2.5") and row[1] == "SVIP")
    assert qwen_svip[2][-1] == "1.29 (+20.6%)"
    assert len(tables[4].rows) == 8 and tables[4].columns[-1] == "Avg."
    assert "Vicuna 13B +SVIP" in format_paper_table(tables[4])
