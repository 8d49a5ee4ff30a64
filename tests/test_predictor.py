"""The compiled fast path equals LightGBM, and bad bundles are refused clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest

from service.features.schema import FEATURE_NAMES, N_FEATURES
from service.scoring.bundle import BundleError, load_bundle
from service.scoring.predictor import BoosterPredictor, CompiledPredictor, load_predictor
from service.settings import DEFAULT_MODEL_DIR
from tests.conftest import CACHE_DIR


def test_bundled_model_meets_the_size_floor() -> None:
    bundle = load_bundle(DEFAULT_MODEL_DIR)
    assert bundle.manifest.num_trees >= 200
    assert len(bundle.manifest.feature_names) >= 40
    assert bundle.manifest.metrics["valid_auc"] > 0.6


def test_compiled_predictions_equal_booster_predict_on_random_rows() -> None:
    bundle = load_bundle(DEFAULT_MODEL_DIR)
    fast = load_predictor(bundle, CACHE_DIR)
    assert isinstance(fast, CompiledPredictor)
    reference = BoosterPredictor(bundle.model_file)
    rng = np.random.default_rng(2024)
    rows = rng.normal(0, 3, size=(20_000, N_FEATURES))
    rows[:, ::3] = rng.integers(0, 50, size=rows[:, ::3].shape)  # count-like columns
    rows[rng.random(rows.shape) < 0.08] = np.nan  # missing values take the default branch
    rows[:50] = 0.0
    rows[50:100] = 1e9
    expected = reference.predict(rows)
    got = fast.predict(rows)
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= 1e-9
    for i in range(0, 200):  # single rows, as the hot path calls it
        assert abs(fast.predict(rows[i : i + 1])[0] - expected[i]) <= 1e-9


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(DEFAULT_MODEL_DIR, target)
    return target


def _edit_manifest(bundle: Path, **changes: object) -> None:
    doc = orjson.loads((bundle / "manifest.json").read_bytes())
    doc.update(changes)
    (bundle / "manifest.json").write_bytes(orjson.dumps(doc))


def test_schema_mismatch_names_the_difference(tmp_path: Path) -> None:
    bundle = _copy(tmp_path)
    names = list(FEATURE_NAMES)
    _edit_manifest(bundle, feature_names=[*names[:-1], "x_brand_new"])
    with pytest.raises(BundleError) as info:
        load_bundle(bundle)
    assert "missing x_price_gap" in str(info.value)
    assert "unexpected x_brand_new" in str(info.value)


def test_reordered_schema_is_refused(tmp_path: Path) -> None:
    bundle = _copy(tmp_path)
    names = list(FEATURE_NAMES)
    names[0], names[1] = names[1], names[0]
    _edit_manifest(bundle, feature_names=names)
    with pytest.raises(BundleError, match="order differs at column 0"):
        load_bundle(bundle)


def test_wrong_schema_hash_is_refused(tmp_path: Path) -> None:
    bundle = _copy(tmp_path)
    _edit_manifest(bundle, schema_hash="0" * 16)
    with pytest.raises(BundleError, match="schema hash"):
        load_bundle(bundle)


def test_corrupt_model_file_is_refused(tmp_path: Path) -> None:
    bundle = _copy(tmp_path)
    with (bundle / "model.txt").open("a") as f:
        f.write("\n")
    with pytest.raises(BundleError, match="corrupt or replaced"):
        load_bundle(bundle)


def test_model_trained_on_other_columns_is_refused(tmp_path: Path) -> None:
    import hashlib

    bundle = _copy(tmp_path)
    text = (bundle / "model.txt").read_text()
    text = text.replace("feature_names=v_known", "feature_names=v_other", 1)
    (bundle / "model.txt").write_text(text)
    _edit_manifest(bundle, model_sha256=hashlib.sha256(text.encode()).hexdigest())
    with pytest.raises(BundleError, match="other columns than its manifest"):
        load_bundle(bundle)


@pytest.mark.parametrize("content", ["{", "[]", '{"format": 9}', '{"format": 1}'])
def test_broken_manifest_is_refused(tmp_path: Path, content: str) -> None:
    bundle = _copy(tmp_path)
    (bundle / "manifest.json").write_text(content)
    with pytest.raises(BundleError):
        load_bundle(bundle)
