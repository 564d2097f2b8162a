"""KnowledgeBase: the one entry object — ingest files, search them, save and load the index."""
from __future__ import annotations

import bisect
import itertools
import multiprocessing
import os
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from kb import __version__, store
from kb.answer import Answerer, AnswerSettings
from kb.chunk import ChunkSettings, chunk_document, indexed_text, preamble_end
from kb.embed import DEFAULT_MODEL, Embedder, make_embedder
from kb.errors import BadSettings, IndexCorrupt, IndexMismatch, IndexWriteError, ModelUnavailable, UnreadableFile
from kb.ingest import SourceFile, discover, file_digest, is_under, read_document, shown
from kb.lexical import BM25Index, TermCounts, count_terms
from kb.metadata import METADATA_VERSION, with_metadata
from kb.records import AnswerSentence, Chunk, Document, Hit, IngestReport, Skipped
from kb.search import Filters, Searcher, SearchSettings, prepare_query
from kb.tokenize import DEFAULT_TOKENIZER, TOKENIZERS, tokenize, tokenizer_id
from kb.vectors import VectorIndex, VectorIndexSettings

Progress = Callable[[str, int, int], None]  # (stage, done, total)
EMBED_BATCH = 16


class KnowledgeBase:
    """Documents, their passages and the BM25 and vector indexes over them, bound to an index directory."""

    _live: dict[Path, "KnowledgeBase"] = {}  # resolved index directory -> its live build, for live()
    _live_lock = threading.Lock()

    def __init__(self, index_dir: str | Path | None = None, embedder: Embedder | str | None = None,
                 chunking: ChunkSettings | None = None, tokenizer: str = DEFAULT_TOKENIZER,
                 vector_index: VectorIndexSettings | None = None):
        self.index_dir = Path(index_dir) if index_dir is not None else None
        if embedder is None or isinstance(embedder, str):
            embedder = make_embedder(embedder or DEFAULT_MODEL)
        self.embedder = embedder
        self.chunking = chunking or ChunkSettings()
        self.tokenizer = tokenizer
        self.vector_index = vector_index or VectorIndexSettings()
        self.manifest: store.Manifest | None = None  # of the build loaded or saved; None before either
        self.sources: list[str] = []
        self._build_seconds: float | None = None  # of the last ingest that changed the index
        self._unsaved = True  # a new index is written even when empty
        self.build: Path | None = None  # the build directory this state was loaded from or saved as
        self._set_state({}, [], np.zeros((0, self.embedder.dim), dtype=np.float32),
                        BM25Index.build([]))

    # --- loading and saving -------------------------------------------------------------------

    @classmethod
    def load(cls, index_dir: str | Path, embedder: Embedder | str | None = None,
             verify: bool = True) -> "KnowledgeBase":
        """Open a saved index; refuses one built with another model, tokenizer or format."""
        index_dir = Path(index_dir)
        data = store.load(index_dir, verify=verify)
        manifest = data.manifest
        try:
            chunking = ChunkSettings.from_dict(manifest.chunking)
            vector_index = _vector_index_settings(manifest)
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexCorrupt(f"{index_dir}: manifest lacks or garbles {exc}; {store.REBUILD_HINT}") from None
        recorded, tokenizer = manifest.embedder, manifest.tokenizer
        if embedder is None:
            embedder = make_embedder(recorded.spec)
        elif isinstance(embedder, str):
            embedder = make_embedder(embedder)
        if embedder.model_id != recorded.model_id or embedder.dim != recorded.dim:
            raise IndexMismatch(
                f"index at {index_dir} was built with model {recorded.model_id} (dim {recorded.dim}),"
                f" not {embedder.model_id} (dim {embedder.dim}): search it without --model, or rebuild it with"
                f" `kb ingest --rebuild --model ... PATH...`")
        tokenizer_name = tokenizer.partition("@")[0]
        if tokenizer_name not in TOKENIZERS or tokenizer_id(tokenizer_name) != tokenizer:
            raise IndexMismatch(
                f"index at {index_dir} was built with tokenizer {tokenizer}, which this kb"
                f" ({__version__}) no longer produces: {store.REBUILD_HINT}")
        kb = cls(index_dir, embedder, chunking, tokenizer_name, vector_index)
        kb.manifest = manifest
        kb.build = data.build
        kb.sources = list(manifest.sources)
        kb._build_seconds = manifest.build_seconds
        kb._unsaved = False
        try:
            # Checksums verified means these are the arrays kb wrote and checked when building.
            bm25 = BM25Index.from_arrays(data.bm25_arrays, data.vocabulary, **manifest.bm25, check_postings=not verify)
            kb._set_state({doc.id: doc for doc in data.documents}, data.chunks, data.vectors, bm25, data.ann)
        except ValueError as exc:
            raise IndexCorrupt(f"{index_dir}: inconsistent index files ({exc}); {store.REBUILD_HINT}") from None
        return kb

    def save(self) -> Path:
        """Write the index as a new build and swap it in atomically, under the writer lock (the caller's,
        as in update_index, or taken for the save: IndexBusy while another writer has it)."""
        if self.index_dir is None:
            raise ValueError("this KnowledgeBase has no index directory to save to")
        arrays, vocabulary = self._bm25.to_arrays()
        manifest = store.Manifest(
            embedder=store.EmbedderRecord(self.embedder.model_id, self.embedder.dim, self.embedder.spec),
            tokenizer=tokenizer_id(self.tokenizer),
            chunking=self.chunking.as_dict(),
            bm25=self._bm25.params(),
            vector_index=store.VectorIndexRecord(self._vectors.kind, self.vector_index.as_dict()),
            counts=store.Counts(len(self._documents), len(self._chunks), len(vocabulary)),
            metadata_version=METADATA_VERSION,
            sources=tuple(self.sources),
            build_seconds=self._build_seconds,
        )
        data = store.IndexData(manifest, list(self._documents.values()), self._chunks, self._vectors.vectors,
                               arrays, vocabulary, self._vectors.ann_bytes())
        build = store.save(self.index_dir, data)
        self.manifest = data.manifest
        self._unsaved = False
        self.build = build
        return build

    @classmethod
    def live(cls, index_dir: str | Path) -> "KnowledgeBase":
        """The index's live build, loaded once per process and shared by every caller; loaded again
        when another build has been swapped in, and then only the new one is kept.

        For long-running readers such as the app: a replaced build is released (its memory-mapped
        files closed, so a deleted build frees its disk) as soon as the searches still using it
        finish, instead of staying loaded beside every later build. The model is kept across builds
        made with it.
        """
        index_dir = Path(index_dir).resolve()
        with cls._live_lock:
            held = cls._live.get(index_dir)
            build = store.current_build(index_dir)
            if build is None:  # the index is gone: let its build go, and load() says so
                cls._live.pop(index_dir, None)
            if held is None or build is None:
                cls._live[index_dir] = kb = cls.load(index_dir)
                return kb
            if held.build == build:
                return held
            same_model = store.read_manifest(index_dir, build).embedder.model_id == held.embedder.model_id
            cls._live[index_dir] = kb = cls.load(index_dir, held.embedder if same_model else None)
        return kb

    @classmethod
    def forget_live(cls) -> None:
        """Let go of every build `live` holds (a process done with its indexes; tests between runs)."""
        with cls._live_lock:
            cls._live.clear()

    # --- ingesting ----------------------------------------------------------------------------

    def ingest(self, paths: Iterable[str | Path], progress: Progress | None = None,
               workers: int = 1, follow_links: bool = False) -> IngestReport:
        """Add, update and drop documents under `paths`; embeds only passages not embedded before.

        Files that no longer exist under a given folder are dropped. A file or folder that exists
        but cannot be read (permissions, a broken link, a FIFO, a parse error) is reported, and what
        was indexed from it is kept. `workers` > 1 parses files and counts terms in that many
        processes; `follow_links` follows symbolic links that leave the given paths.
        """
        started = time.monotonic()
        progress = progress or (lambda stage, done, total: None)
        timings: dict[str, float] = {}
        paths = list(paths)
        sources, skipped = discover(paths, follow_links)
        skipped = list(skipped)
        documents = dict(self._documents)
        roots = sorted({shown(source.root) for source in sources} | {shown(os.path.abspath(p)) for p in paths})
        clashes = [source for source in sources if self._clash(source, roots)]
        skipped += [Skipped(shown(source.path), f"{source.doc_id} is indexed from {documents[source.doc_id].path},"
                            " which is still there: ingest both from their common parent folder, rename one,"
                            " or start afresh with --rebuild", source.doc_id) for source in clashes]
        sources = [source for source in sources if source not in clashes]
        added: list[str] = []
        changed: list[str] = []
        unchanged: list[str] = []
        with _timed(timings, "parse"), _pool(workers) as pool:
            jobs = []
            for source in sources:
                old = documents.get(source.doc_id)
                jobs.append((source, old.sha256 if old else None, old.path if old else None))
            for done, (source, result) in enumerate(zip(sources, pool(_read_source, jobs)), 1):
                progress("parse", done, len(sources))
                if result is None:
                    unchanged.append(source.doc_id)
                elif isinstance(result, Skipped):
                    skipped.append(Skipped(result.path, result.reason, source.doc_id))
                else:
                    (changed if source.doc_id in documents else added).append(source.doc_id)
                    documents[source.doc_id] = result
        seen = {source.doc_id for source in sources}
        # Kept: indexed documents whose file or folder is there but could not be read or parsed now.
        covered = _covered(sorted(self._documents), skipped)
        kept: set[str] = set().union(*covered.values())
        removed = [doc_id for doc_id, doc in documents.items() if doc_id not in seen and doc_id not in kept
                   and any(is_under(doc.path, root) for root in roots)]
        skipped = [_with_kept_note(skip, covered.get(skip.doc_id, set())) for skip in skipped]
        for doc_id in removed:
            del documents[doc_id]
        sources_now = sorted(set(self.sources) | set(roots))
        recorded = self.manifest
        stale_metadata = recorded is not None and recorded.metadata_version not in (None, METADATA_VERSION)
        if not (added or changed or removed or stale_metadata or self._unsaved or sources_now != self.sources
                or recorded is None or recorded.chunking != self.chunking.as_dict()):
            # Nothing to re-chunk or re-embed, and nothing for save() to write (see update_index).
            return IngestReport(tuple(added), tuple(changed), tuple(unchanged), tuple(removed), tuple(skipped),
                                len(self._chunks), 0, time.monotonic() - started, timings, tuple(sorted(kept)), False)
        if stale_metadata:
            # Extraction changed since these documents were indexed: their text is here, re-read it.
            parsed = set(added) | set(changed)
            with _timed(timings, "parse"):
                documents = {doc_id: doc if doc_id in parsed else with_metadata(doc)
                             for doc_id, doc in documents.items()}
        documents = dict(sorted(documents.items()))

        with _timed(timings, "chunk"):
            chunks = [chunk for doc in documents.values() for chunk in chunk_document(doc, self.chunking)]
            texts = [indexed_text(chunk, documents[chunk.doc_id].title) for chunk in chunks]
        with _timed(timings, "tokenize"), _pool(workers) as pool:
            progress("tokenize", 0, len(texts))
            step = max(1, -(-len(texts) // max(1, workers * 4)))
            slices = [(texts[i:i + step], self.tokenizer) for i in range(0, len(texts), step)]
            counts = list(pool(_count_slice, slices))
            progress("tokenize", len(texts), len(texts))
        with _timed(timings, "embed"):
            vectors, embedded = self._embed(texts, progress)
        with _timed(timings, "index"):
            bm25 = BM25Index.from_counts(counts)
            self.sources = sources_now
            self._set_state(documents, chunks, vectors, bm25)
            self._unsaved = True
        seconds = time.monotonic() - started
        self._build_seconds = round(seconds, 2)  # saved with the build; the stages are in the report
        return IngestReport(tuple(added), tuple(changed), tuple(unchanged), tuple(removed), tuple(skipped),
                            len(chunks), embedded, seconds, timings, tuple(sorted(kept)))

    def _clash(self, source: SourceFile, roots: list[str]) -> bool:
        """True when `source` would take the id of an indexed document from another folder that is
        still there (`kb ingest a/docs`, then `kb ingest b/docs`): one would silently replace the
        other. A document whose file has gone (its folder was moved) is replaced, as it should be."""
        old = self._documents.get(source.doc_id)
        return (old is not None and old.path != shown(source.path) and os.path.lexists(old.path)
                and not any(is_under(old.path, root) for root in roots))

    @property
    def unsaved(self) -> bool:
        """True when the state in memory differs from the saved build (or there is none yet)."""
        return self._unsaved

    def _embed(self, texts: list[str], progress: Progress) -> tuple[np.ndarray, int]:
        """Vectors for `texts`: from the embedding cache where present, else from the model (then cached)."""
        vectors = np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
        keys = [store.EmbeddingCache.key(text) for text in texts]
        cache = store.EmbeddingCache(self.index_dir / "embeddings.sqlite", self.embedder.model_id,
                                     self.embedder.dim) if self.index_dir is not None else None
        try:
            cached = cache.get_many(keys) if cache else {}
            missing: dict[str, list[int]] = {}
            for row, key in enumerate(keys):
                if key in cached:
                    vectors[row] = cached[key]
                else:
                    missing.setdefault(key, []).append(row)
            todo = list(missing)
            progress("embed", 0, len(todo))
            for start in range(0, len(todo), EMBED_BATCH):
                batch = todo[start:start + EMBED_BATCH]
                embedded = self.embedder.embed_passages([texts[missing[key][0]] for key in batch])
                if not all(store.usable_vector(vector) for vector in embedded):
                    # Never into the cache or a build: a build with them would fail its check forever.
                    raise ModelUnavailable(f"model {self.embedder.model_id} returned vectors that are not finite"
                                           " or not of unit length; the previous index is unchanged")
                for key, vector in zip(batch, embedded):
                    vectors[missing[key]] = vector
                if cache:
                    cache.put_many(batch, embedded)  # committed now: a killed ingest keeps what it paid for
                progress("embed", min(start + EMBED_BATCH, len(todo)), len(todo))
        finally:
            if cache:
                cache.close()
        return vectors, len(missing)

    # --- searching and reading ----------------------------------------------------------------

    def search(self, query: str, mode: str = "hybrid", k: int = 10, *, filters: Filters | None = None,
               settings: SearchSettings = SearchSettings(), terms: bool = True) -> list[Hit]:
        """The k best passages for `query` in mode hybrid, bm25 or vector; `filters` (folder prefix,
        place, dates, document type) restrict the documents."""
        return self._searcher.search(query, mode, k, filters=filters, settings=settings, terms=terms)

    def answer(self, query: str, hits: list[Hit], settings: AnswerSettings = AnswerSettings()) -> list[AnswerSentence]:
        """The sentences of the top `hits` that best answer `query`, quoted and citing their hit: the
        model's query-sentence similarity plus the query's words (kb.answer.extractive_answer). A query
        in traditional characters gets the answer of its simplified form."""
        query = prepare_query(query)
        return self._answerer.answer(query, hits, settings)

    def document(self, doc_id: str) -> Document:
        """The document with this id (KeyError if it is not indexed)."""
        return self._documents[doc_id]

    @property
    def documents(self) -> list[Document]:
        return list(self._documents.values())

    @property
    def chunks(self) -> list[Chunk]:
        return self._chunks

    @property
    def bm25(self) -> BM25Index:
        """The BM25 index over the passages (row i is `chunks[i]`)."""
        return self._bm25

    @property
    def vectors(self) -> VectorIndex:
        """The passage vectors and their search (exact or HNSW; `vector_index` holds its settings)."""
        return self._vectors

    @property
    def searcher(self) -> Searcher:
        """What answers `search`: for benchmarks that need its query cache (Searcher.clear_query_cache)."""
        return self._searcher

    def passages_of(self, doc_id: str) -> list[Chunk]:
        """The passages of one document, in order (for context around a hit)."""
        return [self._chunks[row] for row in self._searcher.rows_of(doc_id).tolist()]

    def info(self) -> dict:
        """Counts, model, tokenizer, build time, places and document types of the index, for `kb info` and the app."""
        docs = self._documents.values()
        return {
            "index": str(self.index_dir) if self.index_dir else None,
            "documents": len(self._documents),
            "passages": len(self._chunks),
            "model": self.embedder.model_id,
            "dim": self.embedder.dim,
            "tokenizer": tokenizer_id(self.tokenizer),
            "chunking": self.chunking.as_dict(),
            "vector_index": self._vectors.kind,
            "created": self.manifest.created if self.manifest else None,
            "build_seconds": self._build_seconds,
            "kb_version": self.manifest.kb_version if self.manifest else __version__,
            "sources": self.sources,
            # Documents per province (or 全国) and per type, most first: what the filters can select.
            "places": dict(Counter(doc.meta.place[0] if doc.meta.place else "" for doc in docs).most_common()),
            "doc_types": dict(Counter(doc.meta.doc_type for doc in docs).most_common()),
        }

    def facets(self) -> dict:
        """What the filters can choose from: provinces with their cities, document types, top folders."""
        places: dict[str, set[str]] = {}
        for doc in self._documents.values():
            if doc.meta.place:
                places.setdefault(doc.meta.place[0], set()).update(doc.meta.place[1:2])
        return {
            "places": {province: sorted(cities) for province, cities in sorted(places.items())},
            "doc_types": sorted({doc.meta.doc_type for doc in self._documents.values()} - {""}),
            "folders": sorted({doc.id.split("/", 1)[0] for doc in self._documents.values() if "/" in doc.id}),
        }

    def _set_state(self, documents: dict[str, Document], chunks: list[Chunk], vectors: np.ndarray,
                   bm25: BM25Index, ann: np.ndarray | None = None) -> None:
        self._documents = documents
        self._chunks = chunks
        if not len(vectors):
            vectors = np.zeros((0, self.embedder.dim), np.float32)
        self._vectors = VectorIndex(vectors, self.vector_index, ann)
        self._bm25 = bm25
        self._searcher = Searcher(documents, chunks, bm25, self._vectors, self.embedder, self.tokenizer)
        self._answerer = Answerer(self.embedder, self._searcher.query_vector,
                                  lambda doc_id: preamble_end(documents[doc_id].text))


def _covered(ids: list[str], skipped: list[Skipped]) -> dict[str, set[str]]:
    """For each skip's id, the ids (of `ids`, sorted) it covers: its file's, or those under its folder
    (by bisection)."""
    covered: dict[str, set[str]] = {}
    for skip in skipped:
        if not skip.doc_id or skip.doc_id in covered:
            continue
        found = covered[skip.doc_id] = set()
        at = bisect.bisect_left(ids, skip.doc_id)
        if at < len(ids) and ids[at] == skip.doc_id:
            found.add(skip.doc_id)
        for doc_id in itertools.islice(ids, bisect.bisect_left(ids, skip.doc_id + "/"), None):
            if not skip.covers(doc_id):
                break
            found.add(doc_id)
    return covered


def _with_kept_note(skip: Skipped, covered: set[str]) -> Skipped:
    """The skip, saying what stays indexed from it (`covered`, the indexed ids it covers): the file's
    earlier version, or a folder's documents."""
    if skip.doc_id in covered:
        note = " (the version indexed before is kept)"
    else:
        note = f" ({len(covered)} documents indexed from it before are kept)" if covered else ""
    return Skipped(skip.path, skip.reason + note, skip.doc_id)


@contextmanager
def _timed(timings: dict[str, float], stage: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - started


@contextmanager
def _pool(workers: int):
    """A map function: the built-in one, or an ordered map over `workers` processes."""
    if workers <= 1:
        yield map
        return
    # fork: workers inherit the loaded modules instead of importing kb again. Arguments and
    # results cross the process boundary by multiprocessing's own serialisation, in memory only;
    # nothing is ever loaded from disk that way.
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with context.Pool(workers) as pool:
        yield lambda function, items: pool.imap(function, items, chunksize=4)


def _read_source(job) -> Document | Skipped | None:
    """Parse one file; None when its content hash says it is unchanged. Never raises: whatever goes
    wrong with one file is a skip with its reason, and the rest of the batch goes on."""
    source, old_sha, old_path = job
    try:
        sha = file_digest(source.path)
        if sha == old_sha and shown(source.path) == old_path:
            return None
        return with_metadata(read_document(source, sha256=sha))
    except UnreadableFile as exc:
        return Skipped(exc.path, exc.reason)
    except BadSettings:  # the same for every file: the ingest stops with it
        raise
    except OSError as exc:
        return Skipped(shown(source.path), f"cannot read file: {exc.strerror or exc}")
    except Exception as exc:  # a parser's bug or a hostile file must cost that file, not the ingest
        return Skipped(shown(source.path), f"cannot parse file ({type(exc).__name__}: {exc})")


def _count_slice(job) -> TermCounts:
    texts, tokenizer = job
    return count_terms(tokenize(text, tokenizer) for text in texts)


def update_index(index_dir: str | Path, paths: Iterable[str | Path], model: str | None = None,
                 progress: Progress | None = None, workers: int = 1, rebuild: bool = False,
                 chunk_size: int | None = None, article_size: int | None = None,
                 follow_links: bool = False) -> tuple["KnowledgeBase", IngestReport]:
    """Ingest `paths` into the index at `index_dir` and swap the new build in, holding the writer lock.

    Creates the index if there is none (or with `rebuild`). Readers keep answering from the previous
    build until the swap; a second writer is refused with IndexBusy.
    """
    index_dir = Path(index_dir)
    with store.write_lock(index_dir):
        if rebuild or store.current_build(index_dir) is None:
            kb = KnowledgeBase(index_dir, model, _resized(ChunkSettings(), chunk_size, article_size))
        else:
            kb = KnowledgeBase.load(index_dir, model)
            kb.chunking = _resized(kb.chunking, chunk_size, article_size)
        report = kb.ingest(paths, progress=progress, workers=workers, follow_links=follow_links)
        if kb.unsaved:  # an ingest that changed nothing writes no build (a running app keeps its own)
            kb.save()
        elif kb.build is not None and not (index_dir / "CURRENT").is_file():
            try:
                store.set_current(index_dir, kb.build)  # it was lost: name the build recovered again
            except OSError as exc:
                raise IndexWriteError(f"cannot write {index_dir / 'CURRENT'} ({exc})") from exc
    return kb, report


def _resized(chunking: ChunkSettings, size: int | None, article_size: int | None) -> ChunkSettings:
    """`chunking` with the sizes asked for; a larger passage size alone raises the article size with it."""
    for flag, value in (("--chunk-size", size), ("--article-size", article_size)):
        if value is not None and value <= chunking.min_size:
            raise BadSettings(f"{flag} {value} is too small: a passage needs more than {chunking.min_size} characters")
    if size is not None:
        chunking = replace(chunking, size=size, article_size=max(chunking.article_size, size))
    if article_size is not None:
        chunking = replace(chunking, article_size=article_size)
    return chunking


def check_index(index_dir: str | Path) -> dict:
    """Verify an index without loading its model: every file against its checksum, then the
    structure (BM25 postings, passage spans, vectors, HNSW graph) and the embedding cache.

    Raises IndexCorrupt (naming the file and the fix) or IndexMismatch; returns counts when sound.
    """
    index_dir = Path(index_dir)
    data = store.load(index_dir, verify=True)
    build = store.existing_build(index_dir, data.build)  # the build read, not CURRENT again (a swap meanwhile)
    manifest = data.manifest
    try:
        BM25Index.from_arrays(data.bm25_arrays, data.vocabulary, **manifest.bm25, check_postings=True)
    except (ValueError, TypeError, KeyError) as exc:
        raise IndexCorrupt(f"{build}: BM25 arrays inconsistent ({exc}); {store.REBUILD_HINT}") from None
    lengths = {doc.id: len(doc.text) for doc in data.documents}
    for chunk in data.chunks:
        if not 0 <= chunk.start < chunk.end <= lengths[chunk.doc_id]:
            raise IndexCorrupt(f"{build / 'passages.sqlite'}: passage {chunk.doc_id}#{chunk.ordinal} lies outside"
                               f" its document; {store.REBUILD_HINT}")
    if not np.isfinite(data.vectors).all():
        raise IndexCorrupt(f"{build / 'vectors.npy'}: holds non-finite values; {store.REBUILD_HINT}")
    try:
        VectorIndex(data.vectors, _vector_index_settings(manifest), data.ann)
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise IndexCorrupt(f"{build / 'ann.npy'}: HNSW graph unusable ({exc}); {store.REBUILD_HINT}") from None
    cache = index_dir / "embeddings.sqlite"
    cache_state = "absent"
    if cache.exists():
        cache_state = store.check_cache(cache, manifest.embedder.model_id, manifest.embedder.dim)
    pointer = (index_dir / "CURRENT").is_file()
    return {"index": str(index_dir), "build": build.name, "files": len(manifest.files) + int(pointer),
            "documents": len(data.documents), "passages": len(data.chunks), "cache": cache_state,
            "pointer": pointer}


def _vector_index_settings(manifest: store.Manifest) -> VectorIndexSettings:
    """The vector search settings a build was made with (TypeError or ValueError when they are not)."""
    return VectorIndexSettings(**manifest.vector_index.settings)
