"""Gradio user interface of Step1X-Edit Studio (one module per tab). Entry point: build_demo."""

from workbench.ui.layout import build_demo, launch_kwargs
from workbench.ui.settings import AppSettings

__all__ = ["AppSettings", "build_demo", "launch_kwargs"]
