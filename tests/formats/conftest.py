"""Fixtures shared by the format tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tf_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keras/TensorFlow models (benign and malicious) built once per session in a subprocess."""
    from tests.formats._tf_models import build_tf_models

    return build_tf_models(tmp_path_factory.getbasetemp() / "tf-models")
