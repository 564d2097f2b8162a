"""kb.tokenize: grams and words of real Chinese text, normalisation, determinism, one function."""
import re

import pytest

from kb.lexical import BM25Index
from kb.tokenize import DEFAULT_TOKENIZER, TOKENIZERS, normalize, tokenize, tokenizer_id


def test_demo_report_gives_unigrams_bigrams_and_numbers(demo_text):
    tokens = set(tokenize(demo_text, "cjk-bigram"))
    assert {"产业", "工人", "队伍", "江门", "产", "业", "工", "人"} <= tokens
    assert {"2022", "01", "21", "2019", "4"} <= tokens
    # Digits stay whole numbers, never characters or pairs of them.
    assert tokenize("2022-01-21，2019年4月", "cjk-bigram") == ["2022", "01", "21", "2019", "4", "年", "月"]


def test_document_number_and_ascii_words():
    tokens = tokenize("粤府〔2021〕12号 BM25 Word-Embedding", "cjk-bigram")
    assert sorted(tokens) == sorted(["2021", "12", "bm25", "word", "embedding", "粤", "府", "粤府", "号", "粤府〔2021〕12号"])


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_document_numbers_are_whole_tokens_in_any_bracket_style(name):
    """文号 in any bracket style (also full-width, after NFKC) is one token per issuer ending."""
    for written in ("国办发〔2020〕4号", "国办发[2020]4号", "国办发（2020）4号", "国办发【2020】04号", "国办发 〔 2020 〕 4 号"):
        numbers = [token for token in tokenize(f"关于印发的通知（{written}）", name) if "〔" in token]
        assert numbers == ["办发〔2020〕4号", "国办发〔2020〕4号"], written
    # The issuer is the ideographs right before the bracket, at most six.
    assert [t for t in tokenize("的通知京政办发〔2020〕7号", name) if "〔" in t][-1] == "通知京政办发〔2020〕7号"
    assert [t for t in tokenize("〔2020〕3号", name) if "〔" in t] == ["〔2020〕3号"]
    assert not [t for t in tokenize("第3号 2020年4号", name) if "〔" in t]


def test_document_number_query_finds_the_documents_that_carry_it(shared):
    """Over the real policy documents in 400-character passages, each of these numbers (cited or
    the document's own) ranks the documents that carry it exactly first, in every bracket style;
    the grams alone do not."""
    docs = [normalize(path.read_text(encoding="utf-8")).replace(" ", "")
            for path in sorted((shared / "corpus" / "policies").glob("*.txt"))]
    # Overlapping windows, so no number is cut in two.
    windows = [(i, text[start:start + 400]) for i, text in enumerate(docs) for start in range(0, len(text), 200)]
    index = BM25Index.build(tokenize(text) for _, text in windows)
    grams_only = BM25Index.build([token for token in tokenize(text) if "〔" not in token] for _, text in windows)

    def top_documents(bm25: BM25Index, tokens: list[str], count: int) -> set[int]:
        rows, _ = bm25.top(tokens, 200)
        return set(list(dict.fromkeys(windows[row][0] for row in rows.tolist()))[:count])

    wrong_with_grams = 0
    for number in ("国办发〔2020〕4号", "京政办发〔2020〕7号", "财税〔2019〕24号", "肺炎机制发〔2020〕23号"):
        carrying = {i for i, text in enumerate(docs) if number in text}
        assert carrying
        for written in (number, number.replace("〔", "[").replace("〕", "]"), number.replace("〔", "（").replace("〕", "）")):
            assert top_documents(index, tokenize(written), len(carrying)) == carrying, written
        grams = [token for token in tokenize(number) if "〔" not in token]
        wrong_with_grams += top_documents(grams_only, grams, len(carrying)) != carrying
    assert wrong_with_grams


def test_punctuation_and_whitespace_dropped(demo_text):
    for name in TOKENIZERS:
        tokens = tokenize(demo_text[:3000], name)
        assert tokens
        assert all(re.fullmatch(r"\w+", re.sub(r"[.%〔〕]", "", token)) for token in tokens), name
        assert not {"，", "。", "、", "：", " ", "\n", "《", "》"} & set(tokens)


def test_bigrams_do_not_cross_punctuation():
    tokens = tokenize("工资，社保。", "cjk-bigram")
    assert "资社" not in tokens
    assert tokens == ["工", "资", "工资", "社", "保", "社保"]


def test_normalize_folds_width_case_and_kangxi_radicals():
    assert normalize("⽤⼈单位") == "用人单位"  # U+2F64, U+2F08: Kangxi radicals from broken PDFs
    assert normalize("ＡＢＣ１２３") == "abc123"
    assert normalize("Ⅻ") == "xii"


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_variants_tokenize_like_the_ordinary_form(name):
    assert tokenize("⽤⼈单位应当⽀付⼯资", name) == tokenize("用人单位应当支付工资", name)
    assert tokenize("ＢＭ２５，２０２１年", name) == tokenize("bm25,2021年", name)


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_deterministic(demo_text, name):
    assert tokenize(demo_text, name) == tokenize(demo_text, name)


def test_empty_text():
    for name in TOKENIZERS:
        assert tokenize("", name) == []
        assert tokenize(" ，。\n", name) == []


def test_query_tokens_are_found_in_the_document_that_contains_the_query(demo_text):
    # Queries and documents go through the same function: a phrase copied from a document
    # yields only tokens that document has.
    query = "打造高素质产业工人队伍"
    assert query in demo_text
    assert set(tokenize(query)) <= set(tokenize(demo_text))


def test_question_words_removed_from_queries_and_documents_alike():
    name = "cjk-bigram-noquestion"
    assert tokenize("老板拖欠工资怎么办？", name) == tokenize("老板拖欠工资", name)
    assert tokenize("有哪些补贴？能领取吗", name) == tokenize("有 补贴 能领取", name)
    assert "资怎" not in tokenize("拖欠工资怎么办", name)  # no bigram across the removed word
    # 吗 and 呢 are particles only at a clause end: 吗啡 (morphine) keeps its characters.
    assert {"吗", "啡", "吗啡"} <= set(tokenize("吗啡的管理", name))
    passage = "劳动者是否可以申请劳动仲裁，由仲裁委员会审查。"
    assert tokenize(passage, name) == tokenize(passage.replace("是否", "，"), name)


def test_jieba_words_and_union():
    words = tokenize("中华人民共和国劳动合同法", "jieba")
    assert {"劳动", "合同", "合同法", "中华人民共和国"} <= set(words)
    union = tokenize("中华人民共和国劳动合同法", "cjk-bigram+jieba")
    grams = tokenize("中华人民共和国劳动合同法", "cjk-bigram")
    # The union adds only the words grams cannot represent, so no gram's frequency doubles.
    assert union[:len(grams)] == grams
    assert sorted(union[len(grams):]) == sorted(w for w in words if len(w) > 2)


def test_unknown_tokenizer_is_a_value_error():
    with pytest.raises(ValueError, match="unknown tokenizer"):
        tokenize("工资", "whitespace")
    with pytest.raises(ValueError):
        tokenizer_id("whitespace")


def test_tokenizer_id_carries_the_version():
    assert DEFAULT_TOKENIZER in TOKENIZERS
    assert tokenizer_id() == f"{DEFAULT_TOKENIZER}@{TOKENIZERS[DEFAULT_TOKENIZER]}"
    assert tokenizer_id("jieba") == f"jieba@{TOKENIZERS['jieba']}"


@pytest.mark.parametrize("name", ["cjk-bigram", DEFAULT_TOKENIZER])
def test_paraphrased_wage_question_finds_the_wage_passage(name):
    passages = [
        "个体工商户的老板应当依法办理营业执照，并按照规定办理税务登记。",
        "用人单位拖欠工资的，劳动者可以向劳动保障监察机构投诉，也可以依法申请劳动争议仲裁。",
        "对恶意欠薪的企业，人力资源社会保障部门责令其限期支付劳动者工资，逾期不支付的依法处罚。",
        "企业组织职工参加线上职业技能培训的，按规定给予职业培训补贴。",
        "受疫情影响生产经营困难的中小企业，可以申请缓缴社会保险费。",
        "老年人可以到社区服务中心办理养老服务补贴申请手续。",
        "各地要做好农民工返岗复工的交通保障，实行点对点运输。",
        "对不裁员或少裁员的企业，返还失业保险费。",
    ]
    index = BM25Index.build([tokenize(p, name) for p in passages])
    best, _ = index.top(tokenize("老板拖欠工资怎么办", name), k=3)
    assert best[0] == 1
    # The 欠薪 passage shares only 欠 and 工资; lexical matching alone ranks the passage sharing
    # 老板 and 办(理) before it, the kind of paraphrase the vector side has to catch.
    assert list(best) == [1, 0, 2]


def test_to_simplified_converts_traditional_queries_only():
    from kb.tokenize import to_simplified

    assert to_simplified("老闆拖了三個月工資不發怎麼辦") == "老板拖了三个月工资不发怎么办"
    assert to_simplified("《勞動合同法》第三十條") == "《劳动合同法》第三十条"
    # OpenCC's phrase table rewrites this simplified phrase (坏 → 坯); a simplified query is left alone.
    assert to_simplified("未破坏土地的") == "未破坏土地的"
    assert to_simplified("根治欠薪 ABC ｆｕｌｌ") == "根治欠薪 ABC ｆｕｌｌ"


def test_a_long_traditional_text_is_simplified_in_pieces_as_line_by_line(demo_text):
    """simplify() hands OpenCC pieces cut at line ends (a 200 MB text in one call took gigabytes):
    the result is that of converting each line alone, of the same length."""
    import opencc

    from kb.tokenize import simplify

    traditional = opencc.OpenCC("s2t").convert(demo_text) * 40  # about 160,000 characters
    assert len(traditional) > 150_000 and traditional != demo_text * 40
    simplified = simplify(traditional)
    assert len(simplified) == len(traditional)
    assert simplified == "".join(simplify(line) for line in traditional.splitlines(keepends=True))
    assert simplified.count("劳动") == (demo_text * 40).count("劳动") > 0
    no_lines = "勞動合同" * 60_000  # no line end to cut at: cut at the size, still whole
    assert simplify(no_lines) == "劳动合同" * 60_000
