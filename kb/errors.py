"""Exception classes; the CLI turns each into a one-line message and exit code 1."""


class KbError(Exception):
    """Base class for every error kb reports to a user."""


class UnreadableFile(KbError):
    """A file could not be turned into a document; names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class IndexNotFound(KbError):
    """There is no index at the given directory."""


class IndexMismatch(KbError):
    """The index on disk was built with other settings than those asked for (model, tokenizer, format)."""


class IndexCorrupt(KbError):
    """An index file is missing or does not match its manifest checksum."""


class IndexWriteError(KbError):
    """A new build could not be written (disk full, permissions); the previous index is untouched."""


class IndexBusy(KbError):
    """Another process is writing the same index."""


class BadQuery(KbError):
    """A query or search option that cannot be answered (unknown mode, bad k)."""


class BadEvalData(KbError):
    """Evaluation files (queries, qrels, evidence) that cannot be read."""


class ModelUnavailable(KbError):
    """The requested embedding model cannot be loaded here."""


class BadUpload(KbError):
    """An uploaded file that cannot be stored: unsupported type, too large, or no usable name."""


class BadSettings(KbError):
    """An option value kb cannot work with (a passage size too small, …)."""
