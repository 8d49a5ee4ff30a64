"""Model bundles: a LightGBM text model plus its manifest.

A bundle is a folder holding ``model.txt`` and ``manifest.json``. The manifest
records the feature names in order, their schema hash, training metrics, a
version label and the model file's SHA-256; loading checks all of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from service.features.schema import FEATURE_NAMES, describe_difference, schema_hash

MANIFEST_FORMAT = 1
MODEL_FILE = "model.txt"
MANIFEST_FILE = "manifest.json"


class BundleError(ValueError):
    """A model bundle cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a model bundle says about itself."""

    version: str
    feature_names: tuple[str, ...]
    schema_hash: str
    model_sha256: str
    objective: str
    num_trees: int
    metrics: dict[str, Any]
    training: dict[str, Any]
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to ``manifest.json``."""
        return {
            "format": MANIFEST_FORMAT,
            "version": self.version,
            "created_at": self.created_at,
            "feature_names": list(self.feature_names),
            "schema_hash": self.schema_hash,
            "model_sha256": self.model_sha256,
            "objective": self.objective,
            "num_trees": self.num_trees,
            "metrics": self.metrics,
            "training": self.training,
        }


@dataclass(frozen=True, slots=True)
class Bundle:
    """A verified bundle on disk."""

    path: Path
    manifest: Manifest

    @property
    def model_file(self) -> Path:
        """The LightGBM text model."""
        return self.path / MODEL_FILE


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Write ``manifest.json`` into a bundle folder."""
    (path / MANIFEST_FILE).write_bytes(
        orjson.dumps(manifest.to_json(), option=orjson.OPT_INDENT_2) + b"\n"
    )


def _parse_manifest(raw: bytes, where: Path) -> Manifest:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BundleError(f"{where}: manifest is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BundleError(f"{where}: manifest must be a JSON object")
    if doc.get("format") != MANIFEST_FORMAT:
        raise BundleError(f"{where}: manifest format {doc.get('format')!r} is not supported")
    try:
        return Manifest(
            version=str(doc["version"]),
            feature_names=tuple(str(n) for n in doc["feature_names"]),
            schema_hash=str(doc["schema_hash"]),
            model_sha256=str(doc["model_sha256"]),
            objective=str(doc.get("objective", "binary")),
            num_trees=int(doc.get("num_trees", 0)),
            metrics=dict(doc.get("metrics", {})),
            training=dict(doc.get("training", {})),
            created_at=str(doc.get("created_at", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{where}: manifest lacks or mangles field {exc}") from None


def model_feature_names(model_text: bytes) -> tuple[str, ...]:
    """The ``feature_names=`` line of a LightGBM text model."""
    for line in model_text[:65536].splitlines():
        if line.startswith(b"feature_names="):
            return tuple(line[len(b"feature_names=") :].decode().split(" "))
    return ()


def load_bundle(path: Path, expected: tuple[str, ...] = FEATURE_NAMES) -> Bundle:
    """Read and verify a bundle; refuse one whose schema differs from ``expected``."""
    manifest_path = path / MANIFEST_FILE
    model_path = path / MODEL_FILE
    try:
        raw = manifest_path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {manifest_path}: {exc.strerror}") from None
    manifest = _parse_manifest(raw, manifest_path)
    if manifest.feature_names != expected:
        raise BundleError(
            f"model {manifest.version} at {path} was trained on a different feature schema "
            f"than this service builds: {describe_difference(expected, manifest.feature_names)}"
        )
    if manifest.schema_hash != schema_hash(expected):
        raise BundleError(
            f"model {manifest.version}: schema hash {manifest.schema_hash} does not match "
            f"the service's {schema_hash(expected)}"
        )
    try:
        model_bytes = model_path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {model_path}: {exc.strerror}") from None
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest != manifest.model_sha256:
        raise BundleError(
            f"{model_path} does not match its manifest (sha256 {digest[:12]}, "
            f"manifest says {manifest.model_sha256[:12]}): corrupt or replaced"
        )
    in_model = model_feature_names(model_bytes)
    if in_model != expected:
        raise BundleError(
            f"{model_path} was trained on other columns than its manifest lists: "
            f"{describe_difference(expected, in_model)}"
        )
    return Bundle(path=path, manifest=manifest)
