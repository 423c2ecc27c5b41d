"""Pairing faces with people: each face goes to at most one person and back.

The official CocoER script takes the first face whose box lies horizontally
inside a person box, with no vertical test and faces shared between people.
We add what a crowd needs: the face must sit in the upper part of the body
box, pairs are chosen by how close the face is to where a head is expected,
and a pairing is exclusive both ways.

Close to the camera the body box is little more than head and shoulders cut
by the frame, and the face's centre sits in its middle or lower half (a
selfie: 0.55-0.7 of the box's height). A face at least `CLOSE_UP` of the
body box's height is such a close-up: its centre may lie anywhere in the
box's upper `CLOSE_UP_ZONE`. A small face low in a big body box (a person
behind another) still does not pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from streamer.detectors.base import ScoredBox
from streamer.types import Box, PersonDetection

#: A face's centre must lie in this top fraction of the body box...
HEAD_ZONE = 0.45
#: ...unless the face is at least this fraction of the box's height (a close-up)...
CLOSE_UP = 0.25
#: ...when its centre may lie in this top fraction.
CLOSE_UP_ZONE = 0.85


def body_from_face(face: Box, image_w: int, image_h: int) -> Box:
    """A body box extrapolated from a face: shoulders ~3 face widths, torso ~6 faces down.

    Used when a face has no detected person (seated, cropped or too close for
    a body detector); clamped to the frame, so a selfie gets the lower frame.
    """
    cx = (face.x1 + face.x2) / 2.0
    return Box(
        cx - 1.6 * face.width,
        face.y1 - 0.3 * face.height,
        cx + 1.6 * face.width,
        face.y2 + 6.0 * face.height,
    ).clip(image_w, image_h)


def _pair_cost(face: Box, body: Box) -> float | None:
    """How far the face is from the body's expected head spot, or None if implausible."""
    fx, fy = face.center
    zone = CLOSE_UP_ZONE if face.height >= CLOSE_UP * body.height else HEAD_ZONE
    if not (body.x1 <= fx <= body.x2 and body.y1 <= fy <= body.y1 + zone * body.height):
        return None
    if face.width > body.width * 1.05:
        return None
    head_x, head_y = (body.x1 + body.x2) / 2.0, body.y1 + 0.12 * body.height
    return (abs(fx - head_x) + abs(fy - head_y)) / max(body.width, 1.0)


def closest_first(pairs: Iterable[tuple[float, int, int]]) -> dict[int, int]:
    """One to one, the closest first: from (cost, left, right) candidates, {left: right} taking the cheapest
    pair whose two sides are both still free, then the next (greedy; ties go to the lower indices)."""
    right_of: dict[int, int] = {}
    taken: set[int] = set()
    for _, left, right in sorted(pairs):
        if left not in right_of and right not in taken:
            right_of[left] = right
            taken.add(right)
    return right_of


def associate(
    bodies: Sequence[ScoredBox],
    faces: Sequence[ScoredBox],
    image_w: int,
    image_h: int,
    bodies_from_faces: bool = True,
) -> list[PersonDetection]:
    """Join body and face detections into persons.

    Args:
        bodies: person detections.
        faces: face detections.
        image_w: frame width, for clamping extrapolated bodies.
        image_h: frame height.
        bodies_from_faces: give every unpaired face an extrapolated body box
            (else unpaired faces are dropped).

    Returns:
        One person per body, in detector order, with its face when paired;
        then one per unpaired face, with an extrapolated body.
    """
    face_of_body = closest_first(
        (cost, bi, fi)
        for bi, body in enumerate(bodies)
        for fi, face in enumerate(faces)
        if (cost := _pair_cost(face.box, body.box)) is not None
    )

    persons = []
    for bi, body in enumerate(bodies):
        paired = faces[face_of_body[bi]] if bi in face_of_body else None
        head = paired.box if paired is not None else None
        score = max(body.score, paired.score) if paired is not None else body.score
        persons.append(PersonDetection(body.box, head, score, body_source="person"))
    if bodies_from_faces:
        paired_faces = set(face_of_body.values())
        for fi, face in enumerate(faces):
            if fi not in paired_faces:
                extrapolated = body_from_face(face.box, image_w, image_h)
                persons.append(PersonDetection(extrapolated, face.box, face.score, body_source="face"))
    return persons
