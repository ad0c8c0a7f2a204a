"""Which format a file is, from its name: the one place that maps extensions to loaders."""

from __future__ import annotations

from pathlib import Path

MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".mdown", ".mkd"})
TEXT_EXTENSIONS = frozenset({".txt", ".text", ".log", ""})
RST_EXTENSIONS = frozenset({".rst", ".rest"})
HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml"})
PDF_EXTENSIONS = frozenset({".pdf"})
DATASET_EXTENSIONS = frozenset({".json", ".jsonl", ".ndjson"})

# Source code and configuration, mapped to the language name kept in Document.meta.
CODE_LANGUAGES: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".jsx": "javascript", ".ts": "typescript", ".tsx": "typescript", ".go": "go", ".rs": "rust",
    ".java": "java", ".c": "c", ".h": "c", ".cpp": "cpp", ".cc": "cpp", ".cxx": "cpp", ".hpp": "cpp",
    ".hh": "cpp", ".cs": "csharp", ".rb": "ruby", ".php": "php", ".sh": "shell", ".bash": "shell",
    ".zsh": "shell", ".fish": "shell", ".ps1": "powershell", ".toml": "toml", ".yaml": "yaml",
    ".yml": "yaml", ".ini": "ini", ".cfg": "ini", ".sql": "sql", ".kt": "kotlin", ".kts": "kotlin",
    ".swift": "swift", ".scala": "scala", ".lua": "lua", ".pl": "perl", ".r": "r", ".dart": "dart",
    ".ex": "elixir", ".exs": "elixir", ".erl": "erlang", ".hs": "haskell", ".ml": "ocaml",
    ".clj": "clojure", ".vue": "vue", ".svelte": "svelte", ".css": "css", ".scss": "scss",
    ".xml": "xml", ".proto": "protobuf", ".tf": "terraform", ".gradle": "gradle", ".mk": "make",
    ".json": "json", ".jsonl": "json", ".ndjson": "json",
}
CODE_FILENAMES: dict[str, str] = {
    "Makefile": "make", "Dockerfile": "dockerfile", "Justfile": "make", "CMakeLists.txt": "cmake",
}

# Known binary formats skipped without reading; anything else is sniffed for NUL bytes.
BINARY_EXTENSIONS = frozenset({
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico", ".webp", ".tif", ".tiff", ".psd", ".svgz",
    ".mp3", ".wav", ".flac", ".ogg", ".m4a", ".mp4", ".mkv", ".mov", ".avi", ".webm",
    ".zip", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".tar", ".jar", ".whl", ".egg",
    ".exe", ".dll", ".so", ".dylib", ".o", ".a", ".lib", ".bin", ".class", ".pyc", ".pyo", ".wasm",
    ".db", ".sqlite", ".sqlite3", ".parquet", ".arrow", ".feather", ".npy", ".npz", ".pkl",
    ".pickle", ".pt", ".pth", ".safetensors", ".gguf", ".onnx", ".h5", ".ckpt",
    ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".odt", ".ods", ".odp", ".epub",
    ".woff", ".woff2", ".ttf", ".otf", ".eot",
})


def detect_format(path: Path) -> str:
    """The import format of ``path`` by name: markdown, text, rst, html, pdf, dataset, code or binary."""
    suffix = path.suffix.lower()
    if path.name in CODE_FILENAMES:
        return "code"
    if suffix in BINARY_EXTENSIONS:
        return "binary"
    if suffix in MARKDOWN_EXTENSIONS:
        return "markdown"
    if suffix in RST_EXTENSIONS:
        return "rst"
    if suffix in HTML_EXTENSIONS:
        return "html"
    if suffix in PDF_EXTENSIONS:
        return "pdf"
    if suffix in DATASET_EXTENSIONS:
        return "dataset"
    if suffix in CODE_LANGUAGES:
        return "code"
    return "text"


def code_language(path: Path) -> str:
    """The programming or configuration language of a code file, by name."""
    return CODE_FILENAMES.get(path.name) or CODE_LANGUAGES.get(path.suffix.lower(), "text")
