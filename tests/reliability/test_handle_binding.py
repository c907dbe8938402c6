"""A handle is bound to the browser that first used it (workbench.browser_keys), until an admin resets it."""

from __future__ import annotations

import pytest

from db.backup import table_counts
from workbench.browser_keys import HandleInUse, check_or_bind, reset

KEY_A, KEY_B = "a" * 43, "b" * 43


def test_first_browser_keeps_the_handle_until_an_admin_resets_it(workbench, db_url: str) -> None:
    workbench.add_rater("ann")
    check_or_bind(workbench, "ann", None)  # a script without browser storage: the handle stays unbound
    check_or_bind(workbench, "ann", KEY_A)  # first browser: binds
    check_or_bind(workbench, "ann", KEY_A)
    before = table_counts(db_url)
    for other in (KEY_B, None, ""):
        with pytest.raises(HandleInUse, match="in use from another browser"):
            check_or_bind(workbench, "ann", other)
    assert table_counts(db_url) == before
    assert reset(workbench, ["ann", "nobody"]) == 1
    check_or_bind(workbench, "ann", KEY_B)  # after the reset the next browser binds it
    with pytest.raises(HandleInUse):
        check_or_bind(workbench, "ann", KEY_A)
    check_or_bind(workbench, "stranger", KEY_A)  # unknown: nothing bound, nothing written
    assert table_counts(db_url)["raters"] == before["raters"]
