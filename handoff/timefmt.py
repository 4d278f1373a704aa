"""Times as people read them in a table: one rendering for the app's pages and the CLI's history."""

from __future__ import annotations

from datetime import UTC, datetime


def human_time(moment: str | float | None, now: datetime | None = None) -> str:
    """ "just now", "3 min ago", "5 h ago", "yesterday", "4 days ago", then a short date ("12 Mar 2026"),
    for an ISO time or a ``time.time()`` value; text that is not a time comes back as it was."""
    if moment is None or moment == "":
        return ""
    try:
        when = (
            datetime.fromtimestamp(moment, tz=UTC)
            if isinstance(moment, float | int)
            else datetime.fromisoformat(moment)
        )
    except ValueError:
        return str(moment)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(tz=UTC)) - when).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    if seconds < 2 * 86400:
        return "yesterday"
    if seconds < 7 * 86400:
        return f"{int(seconds // 86400)} days ago"
    return f"{when.day} {when:%b %Y}"
