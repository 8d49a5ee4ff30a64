"""Scoring: a compiled LightGBM model (lleaves) with a checked cache.

lleaves turns the trees into native code: ~3x faster than ``Booster.predict``
for 10 rows and without LightGBM's thread-pool tail (docs/benchmarks.md).
Compilation takes seconds, so the result is cached under the model's SHA-256
and the lleaves/llvmlite versions; lleaves' own cache is not checked against
the model file, ours is keyed by it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from service.scoring.bundle import Bundle

log = logging.getLogger(__name__)


class Predictor(Protocol):
    """Turns a feature matrix into one click probability per row."""

    kind: str

    def predict(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Probabilities for each row."""
        ...


class CompiledPredictor:
    """A model compiled to native code by lleaves; always single-threaded."""

    kind = "lleaves"

    def __init__(self, compiled: object) -> None:
        self._model = compiled  # keeps the loaded library alive
        self._features = int(compiled.num_feature())  # type: ignore[attr-defined]
        # lleaves' predict() checks and converts its input on every call (about half
        # of the time for a 10-row slot); the compiled entry point is called directly
        # with the addresses of a contiguous float64 input and a fresh output array.
        if not compiled.use_fp64 or compiled._n_classes != 1:  # type: ignore[attr-defined]
            raise ValueError("only single-output float64 compiled models are supported")
        address = ctypes.cast(compiled._c_entry_func, ctypes.c_void_p).value  # type: ignore[attr-defined]
        if not address:
            raise ValueError("the compiled model has no entry point")
        self._entry = ctypes.CFUNCTYPE(
            None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int
        )(address)

    def predict(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Probabilities for each row."""
        data = np.ascontiguousarray(rows, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self._features:
            raise ValueError(f"expected rows of {self._features} features, got {data.shape}")
        n = data.shape[0]
        out = np.empty(n, dtype=np.float64)
        self._entry(data.ctypes.data, out.ctypes.data, 0, n)
        return out


class BoosterPredictor:
    """LightGBM's own predictor, single-threaded (the reference, and the fallback)."""

    kind = "booster"

    def __init__(self, model_file: Path) -> None:
        import lightgbm

        self._booster = lightgbm.Booster(model_file=str(model_file))

    def predict(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Probabilities for each row."""
        return np.asarray(self._booster.predict(rows, num_threads=1), dtype=np.float64)


COMPILED_DIR = "compiled"
"""A bundle's own folder for its compiled form (``persona train`` writes it there)."""


def compiled_cache_path(bundle: Bundle, cache_dir: Path) -> Path:
    """Where the compiled form of ``bundle`` is cached."""
    versions = f"lleaves{metadata.version('lleaves')}-llvmlite{metadata.version('llvmlite')}"
    return cache_dir / f"{bundle.manifest.model_sha256[:32]}-{versions}.so"


def compile_bundle(bundle: Bundle, cache_dir: Path) -> Path:
    """Compile ``bundle`` into the cache unless it is there; return the library path."""
    import lleaves

    target = compiled_cache_path(bundle, cache_dir)
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("compiling model %s (once; cached at %s)", bundle.manifest.version, target)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".so.tmp")
    os.close(fd)
    os.unlink(tmp)
    try:
        lleaves.Model(model_file=str(bundle.model_file)).compile(cache=tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def load_predictor(bundle: Bundle, cache_dir: Path, compile_if_missing: bool = True) -> Predictor:
    """The fastest predictor available for ``bundle``.

    Falls back to LightGBM's own single-threaded predictor (logged) when the
    compiled form cannot be built here.
    """
    try:
        import lleaves

        path = compiled_cache_path(bundle, bundle.path / COMPILED_DIR)
        if not path.exists():  # not shipped with the bundle (or built by other versions)
            path = compiled_cache_path(bundle, cache_dir)
        if not path.exists():
            if not compile_if_missing:
                raise FileNotFoundError(path)
            path = compile_bundle(bundle, cache_dir)
        model = lleaves.Model(model_file=str(bundle.model_file))
        model.compile(cache=str(path))
        return CompiledPredictor(model)
    except Exception as exc:
        log.warning("compiled predictor unavailable (%s); using LightGBM's own", exc)
        return BoosterPredictor(bundle.model_file)
