"""A notebook that imports what its environment lacks: which package to add, and how, in one sentence.

Most real notebooks that fail do so at an import, and the raw ``ModuleNotFoundError: No module
named 'cv2'`` says neither that the package is ``opencv-python`` nor what to do. The table holds
the import names whose PyPI package is called otherwise; any other name is its own package.
"""

from __future__ import annotations

import re

#: Import name -> the PyPI package that provides it, where they differ.
PYPI_PACKAGES = {
    "attr": "attrs",
    "Bio": "biopython",
    "bs4": "beautifulsoup4",
    "Crypto": "pycryptodome",
    "cv2": "opencv-python",
    "dateutil": "python-dateutil",
    "docx": "python-docx",
    "dotenv": "python-dotenv",
    "fitz": "PyMuPDF",
    "gi": "PyGObject",
    "google.protobuf": "protobuf",
    "jwt": "PyJWT",
    "Levenshtein": "python-Levenshtein",
    "magic": "python-magic",
    "mpl_toolkits": "matplotlib",
    "MySQLdb": "mysqlclient",
    "OpenSSL": "pyOpenSSL",
    "PIL": "pillow",
    "pptx": "python-pptx",
    "psycopg2": "psycopg2-binary",
    "serial": "pyserial",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "umap": "umap-learn",
    "yaml": "pyyaml",
    "zmq": "pyzmq",
}

_MISSING = (
    re.compile(r"No module named '([^']+)'"),
    re.compile(r"Missing optional dependency '([^']+)'"),  # pandas' ImportError for openpyxl, tabulate, ...
)


def package_for(module: str) -> str:
    """The PyPI package that provides ``module`` (a dotted name: its top level, or a known dotted prefix)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        known = PYPI_PACKAGES.get(".".join(parts[:end]))
        if known:
            return known
    return parts[0]


def missing_module(ename: str | None, evalue: str) -> str | None:
    """The module an ``ImportError``/``ModuleNotFoundError`` says is missing, else ``None``."""
    if ename not in ("ModuleNotFoundError", "ImportError"):
        return None
    for pattern in _MISSING:
        found = pattern.search(evalue)
        if found:
            return found.group(1)
    return None


def explain(module: str) -> str:
    """One sentence: what is missing, the package that provides it, and the fix."""
    package = package_for(module)
    provided = f" (it comes from the PyPI package `{package}`)" if package != module.split(".")[0] else ""
    return (
        f"the notebook imports `{module}`, which is not installed in the build environment{provided}: "
        f"add `{package}` to requirements.txt beside the notebook, or rebuild with {{option:with={package}}}"
    )
