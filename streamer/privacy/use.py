"""Where the tool runs and why: `use.context` and `use.purpose`, and what the EU AI Act says of them.

Inferring the emotions of natural persons in the areas of workplace and
education institutions is prohibited in the EU since 2 February 2025, except
where it is intended for medical or safety reasons (Regulation (EU)
2024/1689, Article 5(1)(f)). A run declared in such a context refuses to
start unless its declared purpose is one of those. The declaration is the
operator's; the tool records it with every run's outputs.
"""

from __future__ import annotations

CONTEXTS = ("unspecified", "research", "media", "public", "retail", "healthcare", "safety", "workplace", "education")
PURPOSES = ("unspecified", "research", "medical", "safety", "entertainment", "market-research", "other")
#: Contexts where Article 5(1)(f) applies.
PROHIBITED_CONTEXTS = ("workplace", "education")
#: The exceptions Article 5(1)(f) makes.
EXCEPTED_PURPOSES = ("medical", "safety")


def refusal(context: str, purpose: str) -> str | None:
    """Why a run declared in `context` for `purpose` must not start (one line), or None when it may."""
    if context in PROHIBITED_CONTEXTS and purpose not in EXCEPTED_PURPOSES:
        place = "at the workplace" if context == "workplace" else "in education institutions"
        return (
            f"use.context={context}: inferring emotions {place} is prohibited in the EU by the AI Act, "
            f"Article 5(1)(f), unless for medical or safety reasons (set use.purpose=medical or safety only if so)"
        )
    return None
