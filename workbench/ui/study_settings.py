"""The per-study rater settings the Rate tab shows: quota, completion code and redirect URL.

A study without these settings (they are optional) means no quota, no code, no redirect. They are read from
``Workbench.study_info`` when it carries them, else from the study row, so the tab works on databases with or
without those columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from db.models import Study
from workbench.ui.context import escape
from workbench.ui.rating import finished_html

SETTING_KEYS = ("quota", "completion_code", "redirect_url")


@dataclass(frozen=True)
class RaterSettings:
    """What a rater of one study is told when their share of the work is done."""

    quota: int | None = None  # items per rater; None: every item they can get
    completion_code: str = ""
    redirect_url: str = ""


def _stored_settings(wb: Any, study: str) -> dict[str, Any]:
    info = wb.study_info(study)
    if all(key in info for key in SETTING_KEYS):
        return info
    if not any(hasattr(Study, key) for key in SETTING_KEYS):
        return {}  # a schema without these settings: nothing more to read
    with wb.db.read.begin() as s:
        row = s.scalars(select(Study).where(Study.name == study)).first()
        return {key: getattr(row, key, None) for key in SETTING_KEYS}


def rater_settings(wb: Any, study: str | None) -> RaterSettings:
    """The study's quota, completion code and redirect URL (defaults when unset or the study is unknown)."""
    if not study:
        return RaterSettings()
    try:
        stored = _stored_settings(wb, study)
    except LookupError:
        return RaterSettings()
    quota = stored.get("quota")
    return RaterSettings(
        quota=int(quota) if quota else None,
        completion_code=str(stored.get("completion_code") or ""),
        redirect_url=str(stored.get("redirect_url") or ""),
    )


def quota_done(wb: Any, study: str, handle: str) -> bool:
    """Whether the rater has answered their quota in the study (the workbench decides when it can)."""
    check = getattr(wb, "rater_quota_done", None)
    return bool(check(study, handle)) if callable(check) else False


def safe_redirect(url: str) -> str | None:
    """Only absolute http(s) URLs are offered as links (no javascript: or relative surprises)."""
    parts = urlsplit(url.strip())
    return url.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def completion_html(settings: RaterSettings, finished: str, held: int = 0) -> str:
    """The end screen: a thank-you line (or, while other raters hold `held` unseen items, that more may come),
    the completion code and the link back to the recruiting platform."""
    parts = [finished_html(finished, held)]
    if settings.completion_code:
        parts.append(
            'Your completion code: <code class="completion-code" id="completion-code">'
            f"{escape(settings.completion_code)}</code>"
        )
    url = safe_redirect(settings.redirect_url)
    if url:
        parts.append(
            f'<a class="completion-link" id="completion-link" href="{escape(url)}" rel="noopener">'
            "Finish: return to the study platform</a>"
        )
    return f'<div class="completion">{"".join(f"<div>{part}</div>" for part in parts)}</div>'
