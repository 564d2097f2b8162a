"""The kb command in-process: ingest summary, search output and JSON, info, eval JSON, one-line errors."""
import json
import re
import shutil

import pytest

from kb.cli import main
from kb.store import write_lock
from tests.conftest import DEMO_REPORT, synthetic_files, textless_pdf


@pytest.fixture
def index(tmp_path, capsys):
    """An index (fake embedder) of the demo report and a few synthetic policy documents, plus a PDF without text."""
    docs = tmp_path / "corpus"
    docs.mkdir()
    shutil.copy(DEMO_REPORT, docs)
    # No local regulation among them: a search for the type 地方性法规 must find nothing.
    for path in [path for path in synthetic_files() if "regulation" not in path.name][:5]:
        shutil.copy(path, docs)
    textless_pdf(docs / "scanned_strips_zh.pdf")
    index = tmp_path / "index"
    assert main(["ingest", str(docs), "--index", str(index), "--model", "fake", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "indexed 6 files (6 new" in out and "skipped 1" in out
    assert "scanned_strips_zh.pdf: PDF has no text layer" in out
    return index


def test_reingest_embeds_nothing(index, tmp_path, capsys):
    assert main(["ingest", str(tmp_path / "corpus"), "--index", str(index), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "6 unchanged" in out and " 0 embedded now" in out


def test_search_json_and_text(index, capsys):
    assert main(["search", "江门 产业工人 发展党员", "--index", str(index), "--json", "-k", "3"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 3 and hits[0]["doc"] == f"corpus/{DEMO_REPORT.name}"
    text = DEMO_REPORT.read_text(encoding="utf-8")
    for field in ("doc", "title", "score", "text", "page", "start", "end", "section"):
        assert field in hits[0]
    assert hits[0]["text"] in text and hits[0]["end"] - hits[0]["start"] == len(hits[0]["text"])

    assert main(["search", "产业工人", "--index", str(index), "--mode", "bm25", "-k", "2"]) == 0
    out = capsys.readouterr().out
    # The answer first: sentences quoted from the passages, each with the number of its passage.
    answer, passages = out.split("\n\n", 1)
    assert answer.startswith("answer (") and re.search(r"产业工人.*。 \[[12]\]$", answer)
    assert all(line.split(" [")[0].strip() in text for line in answer.splitlines()[1:])
    assert passages.startswith("[1] 《") and "[2] 《" in passages and "字符 " in passages
    assert main(["search", "产业工人", "--index", str(index), "--mode", "bm25", "-k", "2", "--no-answer"]) == 0
    assert capsys.readouterr().out.startswith("[1] 《")


def test_search_filters_and_metadata_fields(index, capsys):
    assert main(["search", "产业工人", "--index", str(index), "--json", "--place", "广东", "--since", "2022"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits and {hit["doc"] for hit in hits} == {f"corpus/{DEMO_REPORT.name}"}
    assert (hits[0]["place"], hits[0]["date"]) == ("广东省/江门市", "2022-01-21")
    for field in ("issuer", "doc_number", "doc_type"):
        assert field in hits[0]
    assert "广东省/江门市 · 2022-01-21" in hits[0]["citation"]
    assert main(["search", "产业工人", "--index", str(index), "--json", "--until", "2021"]) == 0
    assert all(hit["date"] <= "2021-12-31" for hit in json.loads(capsys.readouterr().out))
    assert main(["search", "产业工人", "--index", str(index), "--type", "地方性法规"]) == 0
    assert "no passages found" in capsys.readouterr().out
    assert main(["info", "--index", str(index)]) == 0
    assert "places:     " in capsys.readouterr().out


def test_index_from_environment_and_info(index, monkeypatch, capsys):
    monkeypatch.setenv("KB_INDEX", str(index))
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["documents"] == 6 and info["model"].startswith("fake/") and info["tokenizer"].startswith("cjk")


def test_eval_json_prints_every_mode(index, tmp_path, capsys):
    queries, qrels = tmp_path / "q.jsonl", tmp_path / "qrels.tsv"
    queries.write_text(json.dumps({"_id": "1", "text": "江门市产业工人发展党员计划"}, ensure_ascii=False) + "\n",
                       encoding="utf-8")
    qrels.write_text(f"query-id\tcorpus-id\tscore\n1\t{DEMO_REPORT.name}\t1\n", encoding="utf-8")
    assert main(["eval", "--queries", str(queries), "--qrels", str(qrels), "--index", str(index),
                 "--all-modes", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results) == {"bm25", "vector", "hybrid"}
    assert results["bm25"]["MRR@10"] == 1.0 and results["hybrid"]["Recall@10"] == 1.0


def test_eval_writes_its_block_into_a_markdown_file_and_keeps_the_rest(index, tmp_path, capsys):
    folder = tmp_path / "demo-set"
    folder.mkdir()
    queries, qrels = folder / "queries.jsonl", folder / "qrels.tsv"
    queries.write_text(json.dumps({"_id": "1", "text": "江门市产业工人发展党员计划"}, ensure_ascii=False) + "\n",
                       encoding="utf-8")
    qrels.write_text(f"query-id\tcorpus-id\tscore\n1\t{DEMO_REPORT.name}\t1\n", encoding="utf-8")
    doc = tmp_path / "eval.md"
    doc.write_text("# Quality\n\nAnalysis above.\n\n<!-- kb eval demo-set -->\nold table\n<!-- /kb eval demo-set -->\n\n"
                   "Analysis below.\n", encoding="utf-8")
    argv = ["eval", "--queries", str(queries), "--qrels", str(qrels), "--index", str(index), "--all-modes",
            "--write", str(doc)]
    for _ in range(2):  # the second run replaces the first run's block, nothing else changes
        assert main(argv) == 0
        text = doc.read_text(encoding="utf-8")
        assert "old table" not in text and text.count("<!-- kb eval demo-set -->") == 1
        assert text.startswith("# Quality\n\nAnalysis above.\n\n") and text.endswith("\n\nAnalysis below.\n")
    block = text.split("<!-- kb eval demo-set -->")[1].split("<!-- /kb eval demo-set -->")[0]
    assert "1 queries, evidence located for 0" in block and "6 documents" in block
    assert "model `fake/char-bigram-hash-256`" in block and "law articles packed to 600" in block
    assert [line.split(" | ")[0] for line in block.splitlines() if line.startswith("| ") and "---" not in line] == \
        ["| mode", "| bm25", "| vector", "| hybrid"]
    assert "| hybrid | 1.000 | 1.000 |" in block
    # No markers yet: the block is appended under a heading of its name.
    assert main(argv + ["--name", "other"]) == 0
    assert doc.read_text(encoding="utf-8").split("Analysis below.\n", 1)[1].startswith("\n## other\n\n<!-- kb eval other -->")
    capsys.readouterr()
    assert main(argv + ["--name", "bad name"]) == 1
    assert "report name 'bad name'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["search", "工资", "--index", "{tmp}/nothing"], "no index at"),
    (["ingest", "{tmp}/no-such-folder", "--index", "{tmp}/i2", "--model", "fake"], "no-such-folder"),
    (["search", "？？", "--index", "{index}"], "no words"),
    (["search", "工资", "--index", "{index}", "-k", "0"], "k must be"),
    (["search", "工资", "--index", "{index}", "--since", "去年"], "--since '去年' is not a date"),
    (["ingest", "{tmp}/corpus", "--index", "{index}", "--model", "fake:64"], "built with model"),
])
def test_errors_are_one_line_with_exit_code_1(index, tmp_path, capsys, argv, message):
    argv = [arg.format(tmp=tmp_path, index=index) for arg in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("kb: error: ") and message in err and err.count("\n") == 1


def test_second_writer_is_refused(index, tmp_path, capsys):
    with write_lock(index):
        assert main(["ingest", str(tmp_path / "corpus"), "--index", str(index), "--quiet"]) == 1
    assert "another kb ingest" in capsys.readouterr().err
