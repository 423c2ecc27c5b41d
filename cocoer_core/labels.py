"""Label sets, in model output index order."""

from __future__ import annotations

#: The 26 EMOTIC categories, in the official order. The prompt strings use
#: these exact lowercase names, including "doubt / confusion".
EMOTIC_LABELS: tuple[str, ...] = (
    "affection",
    "anger",
    "annoyance",
    "anticipation",
    "aversion",
    "confidence",
    "disapproval",
    "disconnection",
    "disquietment",
    "doubt / confusion",
    "embarrassment",
    "engagement",
    "esteem",
    "excitement",
    "fatigue",
    "fear",
    "happiness",
    "pain",
    "peace",
    "pleasure",
    "sadness",
    "sensitivity",
    "suffering",
    "surprise",
    "sympathy",
    "yearning",
)

#: CAER-S's 7 classes, in the official (alphabetical) order.
CAER_S_LABELS: tuple[str, ...] = ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")

#: FER2013's 7 classes, in the dataset's (and the mini-Xception's) index order.
FER2013_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
