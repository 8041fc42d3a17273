"""Text field hygiene: reject NUL and control characters, normalise whitespace at the edges."""

from __future__ import annotations

import unicodedata

from app.errors import InvalidInput

_ALLOWED_CONTROLS = {"\n", "\r", "\t"}


def clean_text(value: str, *, field: str, max_chars: int, required: bool = True) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    if required and not value:
        raise InvalidInput(f"{field}: must not be empty")
    if len(value) > max_chars:
        raise InvalidInput(f"{field}: {len(value)} characters exceeds the limit of {max_chars}")
    bad = {
        c for c in value if unicodedata.category(c) in ("Cc", "Cs") and c not in _ALLOWED_CONTROLS
    }
    if bad:
        codes = ", ".join(f"U+{ord(c):04X}" for c in sorted(bad))
        raise InvalidInput(f"{field}: control characters are not allowed ({codes})")
    return value


def split_genres(values: list[str] | None) -> list[str]:
    """Accept repeated form fields and comma/pipe-separated lists alike."""
    out: list[str] = []
    for v in values or []:
        for part in v.replace("|", ",").split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out
