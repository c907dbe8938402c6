"""CSV that a spreadsheet opens as data, never as formulas.

Every CSV the project writes goes through here: a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return gets a leading ``'`` (OWASP's advice against formula injection: a rater comment
``=HYPERLINK(...)`` or a system named ``=cmd|' /C calc'!A0`` would otherwise run when an analyst opens the
file). Only text is touched: numbers stay numbers. Parquet and JSONL keep the raw values, since no spreadsheet
evaluates them. Rows end in CRLF (RFC 4180), which also makes the writer quote any cell holding a bare CR: a
spreadsheet would otherwise start a new row there, and a cell, with whatever follows it.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
LINE_END = "\r\n"


def neutralise(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is text a spreadsheet would evaluate; anything else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every text cell, column name and index label neutralised."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(neutralise)
    out.columns = [neutralise(c) for c in out.columns]
    out.index = out.index.map(neutralise)
    return out


def csv_text(frame: pd.DataFrame, index: bool = True) -> str:
    """The frame as CSV text, neutralised."""
    return safe_frame(frame).to_csv(index=index, lineterminator=LINE_END)


def write_csv(frame: pd.DataFrame, path: str | os.PathLike, index: bool = False) -> None:
    """Write the frame as a neutralised CSV file."""
    safe_frame(frame).to_csv(path, index=index, lineterminator=LINE_END)
