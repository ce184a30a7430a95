"""Section 5: what the Lambda loads from disk, against the 250 MB unzipped limit (function + all layers).

From `sam build` output (.aws-sam/build) when `make build` has run; otherwise the layer is rebuilt the way
`sam build` does it (BuildMethod python3.13): pip install -r layers/exportwatch/requirements.txt --target,
plus the exportwatch package itself. boto3/botocore come with the Lambda runtime and are not in the layer.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from harness import MB, PYTHON, REPO_ROOT, log

LIMIT_BYTES = 250 * 1024 * 1024  # Lambda: 262,144,000 bytes unzipped, function plus layers
SAM_BUILD = REPO_ROOT / ".aws-sam" / "build"
LAYER_SRC = REPO_ROOT / "layers" / "exportwatch"
FUNCTION_SRC = REPO_ROOT / "functions" / "poller"


@dataclass
class Artifact:
    name: str
    unzipped: int
    zipped: int
    files: int
    top: list[tuple[str, int]] = field(default_factory=list)  # largest top-level entries


@dataclass
class SizeReport:
    source: str
    artifacts: list[Artifact]
    note: str = ""

    @property
    def total_unzipped(self) -> int:
        return sum(a.unzipped for a in self.artifacts)

    @property
    def ratio(self) -> float:
        return self.total_unzipped / LIMIT_BYTES


def measure(name: str, root: Path, *, skip_pycache: bool = False) -> Artifact:
    total, files = 0, 0
    per_entry: dict[str, int] = defaultdict(int)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in sorted(root.rglob("*")):
            if not path.is_file() or (skip_pycache and "__pycache__" in path.parts):
                continue
            size = path.stat().st_size
            rel = path.relative_to(root)
            total += size
            files += 1
            top = rel.parts[1] if rel.parts[0] == "python" and len(rel.parts) > 1 else rel.parts[0]
            per_entry[top.split("-")[0] if top.endswith(".dist-info") else top] += size
            archive.write(path, rel.as_posix())
    top_entries = sorted(per_entry.items(), key=lambda kv: -kv[1])[:6]
    return Artifact(name, total, len(buffer.getbuffer()), files, top_entries)


def _pip_layer(target: Path) -> None:
    python = target / "python"
    subprocess.run(
        [
            PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
            "--target", str(python), "-r", str(LAYER_SRC / "requirements.txt"),
        ],
        check=True,
        timeout=600,
    )  # fmt: skip
    shutil.copytree(LAYER_SRC / "exportwatch", python / "exportwatch", ignore=shutil.ignore_patterns("__pycache__"))


def run() -> SizeReport:
    layer = SAM_BUILD / "ExportwatchLayer"
    function = SAM_BUILD / "PollerFunction"
    if layer.is_dir() and function.is_dir():
        built = time.strftime("%Y-%m-%d %H:%M", time.localtime(layer.stat().st_mtime))
        stale = max(p.stat().st_mtime for p in LAYER_SRC.rglob("*.py")) > layer.stat().st_mtime
        note = f"sam build output from {built}"
        if stale:
            note += " (older than the layer sources: re-run make build)"
        return SizeReport(".aws-sam/build", [measure("layer", layer), measure("function", function)], note)
    log("no .aws-sam/build: installing the layer's requirements into a temporary directory")
    with tempfile.TemporaryDirectory(prefix="exportwatch-layer-") as tmp:
        target = Path(tmp)
        _pip_layer(target)
        arts = [measure("layer", target), measure("function", FUNCTION_SRC, skip_pycache=True)]
    note = "no .aws-sam/build: the layer's requirements installed here without .pyc files, as sam build does"
    return SizeReport("pip install --target", arts, note)


__all__ = ["LIMIT_BYTES", "MB", "SizeReport", "run"]
