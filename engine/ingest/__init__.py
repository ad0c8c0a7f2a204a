"""Import: files and folders into documents and chunks, existing datasets into pairs.

``import_paths(store, paths)`` is the one entry point the CLI and the app call.
"""

from __future__ import annotations

from engine.ingest.chunker import chunk_text, find_title, iter_blocks
from engine.ingest.concepts import extract_concepts
from engine.ingest.datasets import DATASET_FORMATS, load_dataset_file, row_to_pair
from engine.ingest.formats import detect_format
from engine.ingest.importer import import_paths
from engine.ingest.loaders import LoadedDocument, load_document
from engine.ingest.reading import clean_text, file_facts, iter_clean_text
from engine.ingest.report import BoilerplateDropped, FileProblem, ImportProgress, ImportReport

__all__ = [
    "DATASET_FORMATS",
    "BoilerplateDropped",
    "FileProblem",
    "ImportProgress",
    "ImportReport",
    "LoadedDocument",
    "chunk_text",
    "clean_text",
    "detect_format",
    "extract_concepts",
    "file_facts",
    "find_title",
    "import_paths",
    "iter_blocks",
    "iter_clean_text",
    "load_dataset_file",
    "load_document",
    "row_to_pair",
]
