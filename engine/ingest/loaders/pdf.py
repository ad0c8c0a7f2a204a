"""PDF files through pypdf: the text of every page, pages separated by a blank line."""

from __future__ import annotations

import logging
from pathlib import Path

from engine.errors import IngestError
from engine.ingest.loaders.base import LoadedDocument
from engine.ingest.reading import clean_text


def load_pdf(path: Path) -> LoadedDocument:
    """The text of a PDF; raises IngestError for an encrypted, corrupt or text-less file."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    # pypdf logs recoverable damage at WARNING; the import reports problems itself.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(
                f"{path.name} is an encrypted PDF: remove its password (e.g. `qpdf --decrypt`) and import it again."
            )
        pages = [page.extract_text() or "" for page in reader.pages]
    except IngestError:
        raise
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IngestError(
            f"{path.name} is not a readable PDF ({type(exc).__name__}): re-export or repair it and import it again."
        ) from exc
    text = clean_text("\n\n".join(page.strip() for page in pages)).strip()
    if not text:
        raise IngestError(
            f"{path.name} has no extractable text (scanned images?): run OCR on it first, then import it again."
        )
    meta = {"pages": len(pages)}
    title = None
    try:
        if reader.metadata and reader.metadata.title:
            title = clean_text(str(reader.metadata.title)).strip() or None
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError):
        title = None
    return LoadedDocument(format="pdf", style="text", segments=[text + "\n"], title=title, meta=meta)
