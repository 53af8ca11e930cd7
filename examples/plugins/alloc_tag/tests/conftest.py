"""Fixtures for the alloc_tag tests: ``pe`` (TINY booted with profiling on) and ``tag`` (the client)."""
from __future__ import annotations

import pytest
from pageext_alloc_tag import AllocTag
from tagsupport import boot_tag

import pageext_core as pc


@pytest.fixture
def pe() -> pc.PageExt:
    return boot_tag()


@pytest.fixture
def tag(pe: pc.PageExt) -> AllocTag:
    return pe.plugin("alloc_tag")
