"""`detector.interval: auto` on a live source: detect as often as this machine keeps up with.

A detection frame costs far more than a frame's time on a CPU (CenterNet and
MTCNN: 60-120 ms against 40 ms at 25 fps) and a frame the tracker predicts
almost nothing, so it is a detection *cycle* (one detection, k-1 predictions)
that must fit in k frames' time. A fixed k fits one frame size on one machine:
2 keeps a 640x360 camera whole on 2 cores, but a 512x480 one there dropped a
third of its frames, and a fast machine could detect on every frame. This
measures both costs and the camera's frame time as the run goes and picks the
smallest k whose cycle fits, up to 0.2 s of predictions (`highest`; past
that, frames are dropped as stale, as before). It raises k as soon as a cycle
no longer fits and lowers it only when the smaller one fits with room to
spare, so it does not flap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from streamer.types import Frame

logger = logging.getLogger(__name__)

#: The longest the tracker's predictions may stand in for the detector (people move; past it frames are dropped).
LONGEST_S = 0.2
#: The most frames apart detections may be when the camera's rate is not known (0.2 s at 25 fps).
HIGHEST = 5
#: A cycle "fits" k frames when it takes at most this share of their time: the rest is for the stages beside
#: detection (decoding, the emotion model, encoding) and a slow frame now and then.
RAISE_AT = 0.95
#: k is lowered only when the next smaller one fits in this share (hysteresis against flapping).
LOWER_AT = 0.75
#: Detections before the first decision. The very first is not measured (it pays for first-call set-up); the
#: second is: at 2 frames apart, a detection that takes 3 frames' time has the capture edge full in ~4 cycles.
WARMUP = 1
#: Weight of the newest measure in the running averages (~10 detections' memory).
WEIGHT = 0.1


def highest_for(fps: float | None) -> int:
    """The most frames apart detections may be at this frame rate: `LONGEST_S`, at least 2 frames."""
    return max(2, round(LONGEST_S * fps)) if fps and fps > 0 else HIGHEST


@dataclass
class _Mean:
    """An exponentially weighted running mean; None until the first value."""

    value: float | None = None

    def add(self, x: float) -> None:
        self.value = x if self.value is None else self.value + WEIGHT * (x - self.value)


@dataclass
class AdaptiveInterval:
    """The detection interval of one live source, from its measured costs (see the module docstring)."""

    value: int = 2
    highest: int = HIGHEST
    detect_s: _Mean = field(default_factory=_Mean)
    predict_s: _Mean = field(default_factory=_Mean)
    frame_s: _Mean = field(default_factory=_Mean)
    detections: int = 0
    _previous: tuple[int, float] | None = field(default=None, init=False, repr=False)  # (index, pts_s) before

    def observe(self, frame: Frame, detected: bool, seconds: float) -> None:
        """One frame through detect+track: whether the detector ran, and how long the stage took (wall)."""
        self._frame_time(frame)
        if not detected:
            self.predict_s.add(seconds)
            return
        self.detections += 1
        if self.detections > 1:  # the very first detection pays for loading what it runs on
            self.detect_s.add(seconds)
        if self.detections > WARMUP:
            self._decide()

    def _frame_time(self, frame: Frame) -> None:
        """The camera's frame time, from the frames' own clock: capture stamps over source indices (frames
        dropped before this stage still count as the source's frames)."""
        previous, self._previous = self._previous, (frame.index, frame.pts_s)
        if previous is None or frame.gap_before or frame.index <= previous[0]:
            return
        step = (frame.pts_s - previous[1]) / (frame.index - previous[0])
        if step > 0:
            self.frame_s.add(step)

    def fits(self, k: int, share: float) -> bool:
        """Whether one detection and k-1 predictions take at most `share` of k frames' time."""
        detect, frame = self.detect_s.value, self.frame_s.value
        if detect is None or frame is None:
            return True
        return detect + (k - 1) * (self.predict_s.value or 0.0) <= share * k * frame

    def _decide(self) -> None:
        k = self.value
        if not self.fits(k, RAISE_AT):
            k = next((n for n in range(k + 1, self.highest + 1) if self.fits(n, RAISE_AT)), self.highest)
        elif k > 1 and self.fits(k - 1, LOWER_AT):
            k -= 1
        if k != self.value:
            logger.debug(
                "detection every %d frames (was %d): a detection %.0f ms, a prediction %.0f ms, a frame %.0f ms",
                k, self.value, 1000 * (self.detect_s.value or 0), 1000 * (self.predict_s.value or 0),
                1000 * (self.frame_s.value or 0),
            )  # fmt: skip
            self.value = k
