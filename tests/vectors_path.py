"""Where the official NIP-44 vectors live: ../shared/vectors when present, else the vendored copy."""

from __future__ import annotations

import hashlib
from pathlib import Path

NIP44_SHA256 = "269ed0f69e4c192512cc779e78c555090cebc7c785b609e338a62afc3ce25040"
ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "vectors" / "nip44.vectors.json"
VENDORED = ROOT / "tests" / "vectors" / "nip44.vectors.json"


def nip44_vectors_file() -> Path:
    path = SHARED if SHARED.exists() else VENDORED
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == NIP44_SHA256, f"{path} has sha256 {digest}, expected the official file"
    return path
