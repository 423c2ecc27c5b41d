"""The per-frame record: what the API yields is what the JSONL holds, and JSONL from before the version reads."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from streamer.api import Analyzer
from streamer.outputs.records import SCHEMA_VERSION, FrameRecord, frame_record, parse_line, read_records
from streamer.report import write_report
from tests.conftest import ROOT, media_file

DATA = ROOT / "tests" / "data"
CLIP = "faces_two_people_head_pose.mp4"


@pytest.fixture(scope="module")
def api_run(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[FrameRecord], Path]:
    """The first 8 frames of a clip through the Python API: the records it handed out, and the JSONL."""
    out = tmp_path_factory.mktemp("records")
    offline = "detector.allow_download=false"
    analyzer = Analyzer(overrides=[f"sink.out_dir={out}", "source.max_frames=8", "sink.report=false", offline])
    seen: list[FrameRecord] = []
    report = analyzer.run(str(media_file(shared_media, CLIP)), on_frame=seen.append)
    assert report.errors == []
    return seen, out / f"{Path(CLIP).stem}.jsonl"


def test_the_records_handed_out_are_the_lines_written(api_run: tuple[list[FrameRecord], Path]) -> None:
    seen, jsonl = api_run
    read = list(read_records(jsonl, source=Path(CLIP).stem))
    assert read == seen, "the API's records equal the JSONL's lines, field for field"
    assert all(r.version == SCHEMA_VERSION for r in seen) and any(r.persons for r in seen)
    assert json.loads(jsonl.read_text().splitlines()[0])["version"] == SCHEMA_VERSION


def test_the_first_line_says_the_frame_size_and_no_other_when_it_stays(
    api_run: tuple[list[FrameRecord], Path],
) -> None:
    seen, jsonl = api_run
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert lines[0]["frame_size"] == [480, 270] and seen[0].frame_size == (480, 270)
    assert not any("frame_size" in line for line in lines[1:])


def test_the_jsonl_keeps_every_field_it_had_before_the_version(api_run: tuple[list[FrameRecord], Path]) -> None:
    """tests/data holds the same 8 frames written before the record had a version. Detection has changed
    since (one person, one track), so values may differ; every field a reader of that file used is still
    there with the same type, and only optional fields are new."""
    _, jsonl = api_run
    now = [json.loads(line) for line in jsonl.read_text().splitlines()]
    before = [json.loads(line) for line in (DATA / "pre_version_baseline.jsonl").read_text().splitlines()]
    assert [(line["frame"], line["pts_s"], line["model"]) for line in now] == [
        (line["frame"], line["pts_s"], line["model"]) for line in before
    ]

    def shape(value: object) -> object:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items() if k not in ("version", "uncertain")}
        if isinstance(value, list):
            return [shape(value[0])] if value and isinstance(value[0], dict | list) else type(value).__name__
        return "number" if isinstance(value, int | float) and not isinstance(value, bool) else type(value).__name__

    old_persons = [shape(p) for line in before for p in line["persons"] if p["smoothed"] is not None]
    new_persons = [shape(p) for line in now for p in line["persons"] if p["smoothed"] is not None]
    assert old_persons and new_persons and all(p == old_persons[0] for p in new_persons)


@pytest.mark.parametrize("name", ["pre_version_baseline.jsonl", "pre_version_cocoer.jsonl"])
def test_jsonl_from_before_the_version_reads_whole(name: str, tmp_path: Path) -> None:
    records = list(read_records(DATA / name))
    assert records and all(r is not None and r.version == 0 for r in records)
    persons = [p for r in records if r is not None for p in r.persons]
    assert persons and all(p.smoothed is None or "final" in p.smoothed.scores for p in persons)
    if "cocoer" in name:  # CocoER's records carry the levels and the exclusion order
        raw = next(p.raw for p in persons if p.raw is not None)
        assert {"vi", "head", "body", "context"} <= set(raw.scores) and len(raw.exclusion) == 3
    copy = tmp_path / name
    copy.write_bytes((DATA / name).read_bytes())
    done = write_report(copy)
    assert done.skipped_lines == 0 and done.tracks >= 1


def test_a_record_survives_its_own_line() -> None:
    line = (DATA / "pre_version_cocoer.jsonl").read_text().splitlines()[4]
    record = parse_line(line)
    assert record is not None
    again = frame_record(json.loads(json.dumps(record.to_json())))
    assert again == record
    sized = replace(record, frame_size=(640, 360))
    assert frame_record(json.loads(json.dumps(sized.to_json()))) == sized


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        pytest.param('{"frame": -1, "pts_s": 0, "persons": []}', "negative", id="negative-frame"),
        pytest.param('{"frame": 1, "pts_s": "0", "persons": []}', "pts_s", id="pts-as-text"),
        pytest.param('{"frame": 1, "pts_s": 0, "persons": [{"track_id": 1}]}', "body_box", id="no-body-box"),
        pytest.param('{"frame": 1, "pts_s": 0, "persons": [], "version": "1"}', "version", id="version-as-text"),
        pytest.param('{"frame": 1, "pts_s": 0, "persons": [], "frame_size": [0, 9]}', "frame_size", id="size-zero"),
        pytest.param('{"frame": 1, "pts_s": 0, "persons": [], "frame_size": [640]}', "frame_size", id="size-short"),
    ],
)
def test_a_line_of_the_wrong_shape_says_which_field(line: str, problem: str) -> None:
    from streamer.outputs.records import RecordError

    with pytest.raises(RecordError, match=problem):
        frame_record(json.loads(line))
    assert parse_line(line) is None
