"""KnowledgeBase with the fake embedder: ingest, search, save/load, incremental updates, manifest checks."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kb.chunk import RULES
from kb.embed.fake import FakeEmbedder
from kb.errors import BadQuery, IndexCorrupt, IndexMismatch, IndexNotFound, IndexWriteError
from kb.knowledgebase import KnowledgeBase
from kb.search import Filters
from kb.store import current_build, manifest_checksum
from kb.vectors import VectorIndexSettings
from tests.conftest import DEMO_REPORT, synthetic_files

POLICY_SAMPLE = 6


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A small corpus folder: the demo report, some synthetic policy documents, one GB18030 file."""
    folder = tmp_path / "docs"
    (folder / "policies").mkdir(parents=True)
    shutil.copy(DEMO_REPORT, folder / DEMO_REPORT.name)
    for path in synthetic_files()[:POLICY_SAMPLE]:
        shutil.copy(path, folder / "policies" / path.name)
    (folder / "policies" / "欠薪.txt").write_bytes(
        "关于根治拖欠农民工工资的通知\n\n用人单位拖欠劳动者工资的，由劳动保障监察机构责令限期支付。".encode("gb18030"))
    return folder


def new_kb(index: Path) -> KnowledgeBase:
    return KnowledgeBase(index, FakeEmbedder())


def test_ingest_search_and_citation_spans(tmp_path, corpus):
    kb = new_kb(tmp_path / "index")
    report = kb.ingest([corpus])
    assert len(report.added) == POLICY_SAMPLE + 2 and not report.skipped
    assert report.embedded == report.passages == len(kb.chunks) > POLICY_SAMPLE + 2
    hits = kb.search("江门 产业工人 发展党员", k=5)
    assert hits[0].doc_id == f"docs/{DEMO_REPORT.name}"
    for hit in hits:
        document = kb.document(hit.doc_id)
        assert document.text[hit.start:hit.end] == hit.text
        assert hit.title == document.title
    assert "产业工人" in hits[0].matched_terms or "发展党员" in hits[0].matched_terms
    gbk_hit = kb.search("拖欠农民工工资", mode="bm25", k=1)[0]
    assert gbk_hit.doc_id == "docs/policies/欠薪.txt"


def test_modes_and_prefix_filter(tmp_path, corpus):
    kb = new_kb(tmp_path / "index")
    kb.ingest([corpus])
    for mode in ("bm25", "vector", "hybrid"):
        hits = kb.search("复工复产 企业", mode=mode, k=4, filters=Filters(prefix="docs/policies"))
        assert hits and all(hit.doc_id.startswith("docs/policies/") for hit in hits)
        assert [hit.rank for hit in hits] == list(range(1, len(hits) + 1))
    hybrid = kb.search("产业工人队伍建设改革", mode="hybrid", k=10)
    assert {"bm25", "vector"} <= set(hybrid[0].ranks)
    with pytest.raises(BadQuery):
        kb.search("   ")
    with pytest.raises(BadQuery):
        kb.search("？！。")
    with pytest.raises(BadQuery):
        kb.search("工资", mode="magic")


def test_save_load_gives_the_same_answers(tmp_path, corpus):
    index = tmp_path / "index"
    kb = new_kb(index)
    kb.ingest([corpus])
    kb.save()
    loaded = KnowledgeBase.load(index)
    assert loaded.embedder.model_id == kb.embedder.model_id
    for query in ("江门 产业工人", "用人单位拖欠劳动者工资", "疫情防控"):
        for mode in ("bm25", "vector", "hybrid"):
            assert ([(h.doc_id, h.start) for h in loaded.search(query, mode=mode)]
                    == [(h.doc_id, h.start) for h in kb.search(query, mode=mode)])
    manifest = json.loads((current_build(index) / "manifest.json").read_text())
    assert manifest["counts"] == {"documents": len(kb.documents), "passages": len(kb.chunks),
                                  "vocabulary": manifest["counts"]["vocabulary"]}
    assert manifest["embedder"] == {"model_id": "fake/char-bigram-hash-256", "dim": 256, "spec": "fake:256"}
    assert set(manifest["files"]) >= {"passages.sqlite", "vectors.npy", "vocabulary.json"}
    assert not list(index.rglob("*.pkl"))


def test_reingest_embeds_only_new_or_changed_and_drops_deleted(tmp_path, corpus):
    index = tmp_path / "index"
    kb = new_kb(index)
    kb.ingest([corpus])
    kb.save()

    again = KnowledgeBase.load(index, FakeEmbedder())
    report = again.ingest([corpus])
    assert report.embedded == 0 and again.embedder.calls == 0
    assert len(report.unchanged) == POLICY_SAMPLE + 2 and not report.added and not report.changed

    changed = corpus / "policies" / "欠薪.txt"
    changed.write_text("关于根治欠薪的通知\n\n建筑施工企业应当按月足额支付农民工工资。", encoding="utf-8")
    deleted = sorted((corpus / "policies").glob("*.txt"))[0]
    deleted.unlink()
    report = again.ingest([corpus])
    assert report.changed == ("docs/policies/欠薪.txt",)
    assert report.removed == (f"docs/policies/{deleted.name}",)
    assert 0 < report.embedded == again.embedder.calls <= 2
    assert f"docs/policies/{deleted.name}" not in {doc.id for doc in again.documents}
    assert again.search("按月足额支付农民工工资", mode="bm25", k=1)[0].doc_id == "docs/policies/欠薪.txt"


def test_unreadable_file_is_reported_and_its_indexed_version_kept(tmp_path, corpus):
    kb = new_kb(tmp_path / "index")
    kb.ingest([corpus])
    target = corpus / "policies" / "欠薪.txt"
    target.write_bytes(b"\x00\x01binary\x00" * 20)
    (corpus / "scan.pdf").write_bytes(b"%PDF-1.4 not really")
    report = kb.ingest([corpus])
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert "binary" in reasons["欠薪.txt"] and "kept" in reasons["欠薪.txt"]
    assert "scan.pdf" in reasons
    assert "docs/policies/欠薪.txt" in {doc.id for doc in kb.documents}


def test_ingest_of_another_folder_keeps_the_first(tmp_path, corpus):
    kb = new_kb(tmp_path / "index")
    kb.ingest([corpus / "policies"])
    first = {doc.id for doc in kb.documents}
    kb.ingest([DEMO_REPORT])
    ids = {doc.id for doc in kb.documents}
    assert first < ids and DEMO_REPORT.name in ids


def test_load_refuses_other_model_tokenizer_format_and_damage(tmp_path, corpus):
    index = tmp_path / "index"
    with pytest.raises(IndexNotFound, match="kb ingest"):
        KnowledgeBase.load(index)
    kb = new_kb(index)
    kb.ingest([corpus])
    build = kb.save()

    with pytest.raises(IndexMismatch, match="fake/char-bigram-hash-256"):
        KnowledgeBase.load(index, FakeEmbedder(dim=64))

    manifest_path = build / "manifest.json"
    original = manifest_path.read_text()
    for field, value, error in (("tokenizer", "cjk-bigram@0", IndexMismatch), ("format_version", 99, IndexMismatch)):
        manifest = json.loads(original)
        manifest[field] = value
        manifest["manifest_sha256"] = manifest_checksum(manifest)  # as another kb would have written it
        manifest_path.write_text(json.dumps(manifest))
        with pytest.raises(error, match="--rebuild"):
            KnowledgeBase.load(index)
    manifest = json.loads(original)
    manifest["counts"]["passages"] += 1  # damage that is still valid JSON
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexCorrupt, match="manifest.json: checksum"):
        KnowledgeBase.load(index)
    manifest_path.write_text(original)

    vectors = build / "vectors.npy"
    payload = bytearray(vectors.read_bytes())
    payload[-5] ^= 0xFF
    vectors.write_bytes(bytes(payload))
    with pytest.raises(IndexCorrupt, match="vectors.npy"):
        KnowledgeBase.load(index)


def test_index_from_before_article_size_keeps_cutting_articles_at_its_size(tmp_path, corpus):
    """A manifest without article_size was written when law articles were cut at `size`: loading
    and updating it keeps that, so unchanged documents keep their passages and vectors."""
    from kb.knowledgebase import update_index

    index = tmp_path / "index"
    kb = new_kb(index)
    kb.ingest([corpus])
    build = kb.save()
    manifest_path = build / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["chunking"]["article_size"]
    manifest["manifest_sha256"] = manifest_checksum(manifest)
    manifest_path.write_text(json.dumps(manifest))
    assert KnowledgeBase.load(index).chunking.article_size == 400
    updated, _ = update_index(index, [corpus], model="fake")
    assert updated.chunking.as_dict() == {"size": 400, "min_size": 80, "article_size": 400, "rules": RULES}
    updated, _ = update_index(index, [corpus], model="fake", article_size=700)
    assert updated.chunking.article_size == 700


def test_an_index_cut_by_other_rules_is_cut_again_by_the_next_ingest(tmp_path, corpus):
    """The manifest names the chunker's rules: a build from before them keeps its passages until `kb
    ingest`, which cuts every document again (unchanged passages come from the embedding cache)."""
    from kb.knowledgebase import update_index

    (corpus / "条例.md").write_text("# 某市工资支付条例\n\n<!-- INFO END -->\n\n## 第一章 总则\n\n"
                                  "第一条 用人单位应当按月足额支付工资。\n", encoding="utf-8")
    index = tmp_path / "index"
    kb, _ = update_index(index, [corpus], model="fake")
    passages = [chunk.text for chunk in kb.chunks]
    assert "## 第一章 总则\n\n第一条 用人单位应当按月足额支付工资。" in passages
    assert not any("INFO END" in text or text == "# 某市工资支付条例" for text in passages)
    manifest_path = current_build(index) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["chunking"]["rules"] == RULES
    del manifest["chunking"]["rules"]
    manifest["manifest_sha256"] = manifest_checksum(manifest)
    manifest_path.write_text(json.dumps(manifest))
    assert [chunk.text for chunk in KnowledgeBase.load(index).chunks] == passages
    again, report = update_index(index, [corpus], model="fake")
    assert report.updated and report.embedded == 0 and [chunk.text for chunk in again.chunks] == passages
    assert json.loads((current_build(index) / "manifest.json").read_text())["chunking"]["rules"] == RULES
    assert not update_index(index, [corpus], model="fake")[1].updated


def test_save_swaps_builds_and_keeps_one_previous(tmp_path, corpus):
    index = tmp_path / "index"
    kb = new_kb(index)
    kb.ingest([corpus])
    first = kb.save()
    second = kb.save()
    third = kb.save()
    assert current_build(index) == third
    assert not first.exists() and second.exists()
    assert np.load(third / "vectors.npy", allow_pickle=False).shape == (len(kb.chunks), 256)


def test_failed_write_keeps_the_previous_index(tmp_path, corpus, monkeypatch):
    index = tmp_path / "index"
    kb = new_kb(index)
    kb.ingest([corpus])
    kb.save()
    before = [(h.doc_id, h.start) for h in KnowledgeBase.load(index).search("产业工人")]

    (corpus / "新增.txt").write_text("新增文件：关于产业工人技能培训补贴的通知。", encoding="utf-8")
    kb.ingest([corpus])

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", disk_full)  # the first array of the new build
    with pytest.raises(IndexWriteError, match="No space left.*previous index is unchanged"):
        kb.save()
    assert [p.name for p in (index / "builds").iterdir() if p.name.startswith(".tmp")] == []
    assert [(h.doc_id, h.start) for h in KnowledgeBase.load(index).search("产业工人")] == before


def test_workers_build_the_same_index(tmp_path, corpus):
    single, parallel = new_kb(tmp_path / "one"), new_kb(tmp_path / "two")
    report_one = single.ingest([corpus])
    report_two = parallel.ingest([corpus], workers=2)
    assert report_two.added == report_one.added and set(report_two.stage_seconds) >= {"parse", "tokenize", "embed"}
    assert parallel.chunks == single.chunks
    arrays_one, vocabulary_one = single.bm25.to_arrays()
    arrays_two, vocabulary_two = parallel.bm25.to_arrays()
    assert vocabulary_two == vocabulary_one
    for name, array in arrays_one.items():
        assert np.array_equal(arrays_two[name], array), name
    assert [(h.doc_id, h.start, h.score) for h in parallel.search("复工复产 补贴", mode="bm25")] == \
        [(h.doc_id, h.start, h.score) for h in single.search("复工复产 补贴", mode="bm25")]


def test_large_index_uses_hnsw_and_stores_its_graph(tmp_path, corpus):
    index = tmp_path / "index"
    small = KnowledgeBase(index, FakeEmbedder(), vector_index=VectorIndexSettings(ann_threshold=20))
    small.ingest([corpus])
    build = small.save()
    assert (build / "ann.npy").is_file()
    loaded = KnowledgeBase.load(index)
    assert loaded.info()["vector_index"] == "hnsw"
    queries = ["江门 产业工人", "疫情防控 复工复产", "用人单位拖欠劳动者工资", "税收优惠 政策", "职业技能培训"]
    agree = 0
    for query in queries:
        vector = loaded.embedder.embed_queries([query])[0]
        approximate, _ = loaded.vectors.top(vector, 5)
        exact, _ = loaded.vectors.top(vector, 5, exact=True)
        agree += len(set(approximate) & set(exact))
    assert agree / (5 * len(queries)) >= 0.9
    assert [h.doc_id for h in loaded.search("产业工人", mode="vector")] == \
        [h.doc_id for h in small.search("产业工人", mode="vector")]
    filtered = loaded.search("复工复产", mode="vector", k=3, filters=Filters(prefix="docs/policies"))
    assert len(filtered) == 3 and all(h.doc_id.startswith("docs/policies/") for h in filtered)


def test_hybrid_trusts_vectors_less_when_bm25_covers_the_query(tmp_path, corpus, monkeypatch):
    """Adaptive fusion on real text: a query copied from a passage gets the smallest vector weight,
    a paraphrase sharing few bigrams with any passage a large one; adaptive=False keeps 1 : 1."""
    import kb.search as search_module

    kb = new_kb(tmp_path / "index")
    kb.ingest([corpus])
    seen = []
    fuse = search_module.reciprocal_rank_fusion
    monkeypatch.setattr(search_module, "reciprocal_rank_fusion",
                        lambda rankings, weights, k: seen.append(dict(weights)) or fuse(rankings, weights, k))
    kb.search("用人单位拖欠劳动者工资的，由劳动保障监察机构责令限期支付")
    kb.search("老板拖了三个月薪水不发怎么办")
    kb.search("老板拖了三个月薪水不发怎么办", settings=search_module.SearchSettings(adaptive=False))
    copied, paraphrase, fixed = (weights["vector"] for weights in seen)
    assert copied == pytest.approx(0.1)
    assert paraphrase > 1.0
    assert fixed == 1.0


def test_hybrid_lifts_the_notice_that_matches_the_whole_question_but_not_statutes(tmp_path):
    """Two versions of one notice share their first section; only one also answers the question's
    second half. Hybrid lifts that document's passages more than the other's, and does not re-rank
    the same texts filed as local regulations (the hierarchy of legal force orders those). A notice
    without the query's words gains nothing."""
    title = "关于做好疫情防控期间就业和社会保险工作的通知"
    shared = "一、发放失业保险金\n对受疫情影响暂时失业的参保人员，由参保地经办机构按规定及时发放失业保险金，不得以任何理由拖延。"
    answers = ("二、吸纳就业补贴\n企业吸纳失业人员并签订一年以上劳动合同的，按规定给予一次性吸纳就业补贴，"
               "补贴资金从就业补助资金列支。")
    unrelated = "二、防疫物资保障\n各地要统筹口罩、消毒液等防疫物资的生产和调配，优先保障医疗机构和重点企业复工需要。"
    question = "参保人员失业了怎么领取失业保险金，企业吸纳失业人员有补贴吗"
    from kb.search import SearchSettings

    for folder, lifted in (("notices", True), ("地方性法规", False)):
        docs = tmp_path / folder / "docs"
        for name, second in (("a", unrelated), ("b", answers)):
            (docs / folder / name).mkdir(parents=True)
            (docs / folder / name / "通知.txt").write_text(f"{title}\n\n{shared}\n\n{second}\n", encoding="utf-8")
        kb = new_kb(tmp_path / folder / "index")
        kb.ingest([docs])
        without = {(h.doc_id, h.ordinal): h.score for h in kb.search(question, k=20, settings=SearchSettings(document_weight=0))}
        gains = {key: hit.score - without[key] for hit in kb.search(question, k=20)
                 for key in [(hit.doc_id, hit.ordinal)]}
        assert len(gains) == len(kb.chunks) >= 4
        by_doc = {name: {round(gain, 9) for (doc, _), gain in gains.items() if doc == f"docs/{folder}/{name}/通知.txt"}
                  for name in ("a", "b")}
        if lifted:
            # Every passage of a document gains the same; the whole-question match gains most.
            (gain_a,), (gain_b,) = by_doc["a"], by_doc["b"]
            assert gain_b > gain_a > 0
            # A term neither notice holds: vectors still return their passages, unlifted.
            hits = kb.search("欠薪", k=20)
            assert hits and [hit.score for hit in hits] == [hit.score for hit in kb.search(
                "欠薪", k=20, settings=SearchSettings(document_weight=0))]
        else:
            assert set(gains.values()) == {0.0}


def test_document_match_lifts_only_documents_holding_the_query_words(tmp_path, corpus):
    """On real notices: a passage gains from the document match only if its document holds some
    of the query's character pairs, and more when it holds more of them."""
    from kb.search import SearchSettings
    from kb.tokenize import normalize, tokenize

    kb = new_kb(tmp_path / "index")
    kb.ingest([corpus])
    lifted = 0
    for query in ("欠薪", "用人单位拖欠劳动者工资怎么办", "疫情防控期间企业复工复产有哪些支持措施", "江门 产业工人"):
        pairs = {token for token in tokenize(query) if len(token) == 2}
        without = {(h.doc_id, h.ordinal): h.score for h in kb.search(query, k=50, settings=SearchSettings(document_weight=0))}
        for hit in kb.search(query, k=50):
            gain = hit.score - without[(hit.doc_id, hit.ordinal)]
            held = sum(pair in normalize(kb.document(hit.doc_id).text + hit.title) for pair in pairs)
            assert gain >= -1e-12
            if gain > 1e-12:
                lifted += 1
                assert held, (query, hit.doc_id)
    assert lifted


def test_traditional_or_variant_query_finds_what_its_ordinary_form_finds(tmp_path, corpus):
    kb = new_kb(tmp_path / "index")
    kb.ingest([corpus])
    for traditional, simplified in (("用人單位拖欠勞動者工資", "用人单位拖欠劳动者工资"),
                                    ("江門 產業工人 發展黨員", "江门 产业工人 发展党员"),
                                    # Kangxi radicals ⽤ ⼈ ⽋ ⼯ and full-width letters
                                    ("⽤⼈单位拖⽋劳动者⼯资", "用人单位拖欠劳动者工资"),
                                    ("ＧＢ１８０３０ 欠薪", "GB18030 欠薪")):
        for mode in ("bm25", "hybrid", "vector"):
            got = [(h.doc_id, h.start, h.matched_terms) for h in kb.search(traditional, mode=mode, k=5)]
            assert got == [(h.doc_id, h.start, h.matched_terms) for h in kb.search(simplified, mode=mode, k=5)]
            assert got


def test_a_character_of_the_query_does_not_lift_passages_above_those_with_its_words(tmp_path):
    """欠薪 searched among a wage rule and a report that hold it once, and tax answers full of its character 欠
    (欠税, 欠缴), which plain BM25 ranks above the report. In bm25 mode they now come after every passage
    holding 欠薪; in hybrid mode BM25 does not bring them (the vectors may, below)."""
    from tests.conftest import TAX_ARREARS, WAGE_ARREARS, without_arrears

    docs = tmp_path / "docs"
    docs.mkdir()
    for path in without_arrears():
        shutil.copy(path, docs / path.name)
    for name, title, text in (("wages", "工资支付保障规定", WAGE_ARREARS[0]), ("report", "区就业工作总结", WAGE_ARREARS[1]),
                              ("tax-1", "欠税公告问答", TAX_ARREARS[0]), ("tax-2", "欠缴税款问答", TAX_ARREARS[1])):
        (docs / f"{name}.txt").write_text(f"{title}\n\n{text}\n", encoding="utf-8")
    kb = new_kb(tmp_path / "index")
    kb.ingest([docs])
    wage = ["docs/wages.txt", "docs/report.txt"]
    bm25 = [hit.doc_id for hit in kb.search("欠薪", mode="bm25", k=6)]
    assert bm25[:4] == [*wage, "docs/tax-1.txt", "docs/tax-2.txt"]
    hybrid = kb.search("欠薪", mode="hybrid", k=10)
    assert [hit.doc_id for hit in hybrid[:2]] == wage
    assert {hit.doc_id for hit in hybrid if "bm25" in hit.ranks} == set(wage)


def test_an_index_of_one_passage_finds_it_in_bm25_mode(tmp_path):
    # Each of its terms is in every passage there is: Okapi's idf is negative, and so was rank_bm25's floor.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "工资支付.txt").write_text("第五十条　工资应当以货币形式按月支付给劳动者本人。不得克扣或者无故拖欠劳动者的工资。\n",
                                     encoding="utf-8")
    kb = new_kb(tmp_path / "index")
    kb.ingest([docs])
    assert len(kb.chunks) == 1
    for query in ("拖欠工资", "工资", "劳动者本人"):
        hits = kb.search(query, mode="bm25", k=5)
        assert [hit.doc_id for hit in hits] == ["docs/工资支付.txt"] and hits[0].score > 0
