"""Fixtures shared by the lgi-dictco tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny models on a shared 2-core machine run 10-50x slower with OpenMP
    oversubscribed (the DCAE tests use it through ``pytestmark``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_model():
    """An untrained dcae-tiny with its entropy tables built (weights from seed 0)."""
    from lgi_dictco.dcae import build_model

    torch.manual_seed(0)
    m = build_model("dcae-tiny").eval()
    m.update()
    return m
