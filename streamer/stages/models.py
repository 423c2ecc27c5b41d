"""Choosing the emotion model and the device it runs on."""

from __future__ import annotations

import logging
from pathlib import Path

from cocoer_core.api import EmotionModel
from cocoer_core.errors import CheckpointError
from streamer.config import EmotionConfig
from streamer.errors import UserError

logger = logging.getLogger(__name__)


def resolve_device(choice: str) -> str:
    """'auto' means CUDA when a GPU is visible, else CPU; 'cuda' without a GPU is an error."""
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("device 'cuda' was asked for but no CUDA GPU is visible (use --device cpu or auto)")
    return choice


def cocoer_weights_present(weights_dir: Path) -> bool:
    """Whether the full CocoER checkpoint is where the config points."""
    return (weights_dir / "GWT.pth").is_file()


def build_emotion_model(config: EmotionConfig, device: str) -> EmotionModel | None:
    """The configured model: full CocoER when its weights are present ('auto'), else the baseline."""
    choice = config.model
    weights = Path(config.weights).expanduser()
    if choice == "none":
        return None
    try:
        if choice == "cocoer" or (choice == "auto" and cocoer_weights_present(weights)):
            from cocoer_core.runtime import CocoERModel

            return CocoERModel.from_directory(
                weights,
                device=device,
                precision=config.precision,
                final_threshold=config.final_threshold,
                level_threshold=config.level_threshold,
                inside_lr=config.inside_lr,
                trust_pickle=config.trust_checkpoint,
                allow_download=config.allow_download,
                runtime=config.runtime,
            )
        from cocoer_core.baseline import FaceExpressionBaseline

        return FaceExpressionBaseline(device=device, face_margin=config.face_margin, runtime=config.runtime)
    except CheckpointError as exc:
        raise UserError(str(exc)) from exc
