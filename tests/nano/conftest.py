"""Fixtures for the nano tests."""

import pytest

from model.nano.build import NanoConfig


@pytest.fixture(scope="session")
def tiny_config() -> NanoConfig:
    """A nano model small enough for fast tests."""
    return NanoConfig(
        text_hidden=32,
        vision_hidden=16,
        connector_hidden=32,
        width=32,
        head_dim=16,
        double_layers=1,
        single_layers=1,
    )
