"""Fixtures shared by the lgi-dictco tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def tiny_model():
    """An untrained dcae-tiny with its entropy tables built (weights from seed 0)."""
    from lgi_dictco.dcae import build_model

    torch.manual_seed(0)
    m = build_model("dcae-tiny").eval()
    m.update()
    return m
