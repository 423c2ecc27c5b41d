"""CocoER re-implementation: the checkpoint contract, golden equivalence, and the model's parts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cocoer_core.clip_rn50 import CLIPRN50
from cocoer_core.competition import exclusion_order
from cocoer_core.config import CocoERConfig
from cocoer_core.golden import golden_inputs
from cocoer_core.model import CocoER
from cocoer_core.position import PositionEmbedding2D
from cocoer_core.reference import reference_forward
from cocoer_core.verify_golden import main as verify_golden
from tests.cocoer_core.conftest import DESIGN, fresh_models, golden_spec
from tests.conftest import MEDIA, ROOT


def _tsv(name: str) -> list[tuple[str, str]]:
    path = DESIGN / name
    if not path.is_file():
        pytest.skip(f"{name} not found")
    rows = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines()[1:]]
    return [(key, shape) for key, shape, _ in rows]


def _shape(t: torch.Tensor) -> str:
    return "scalar" if t.dim() == 0 else "x".join(str(s) for s in t.shape)


def test_state_dict_is_exactly_the_official_listing() -> None:
    listing = _tsv("cocoer_official_state_dict.tsv")
    state = CocoER().state_dict()
    assert [(k, _shape(v)) for k, v in state.items()] == listing
    assert sum(v.numel() for v in state.values()) == 283_330_683
    assert state["backbone.head.1.num_batches_tracked"].dtype == torch.int64


def test_clip_state_dict_is_exactly_openais_listing() -> None:
    listing = _tsv("clip_rn50_state_dict.tsv")
    assert [(k, _shape(v)) for k, v in CLIPRN50().state_dict().items()] == listing


@pytest.mark.parametrize("name", ["cocoer_golden_A.json", "cocoer_golden_A2.json"])
def test_golden_forward_passes(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    golden_spec(name)
    if not MEDIA.is_dir():
        pytest.skip(f"media not found at {MEDIA}")
    assert verify_golden([str(DESIGN / name), "--media", str(MEDIA)]) == 0
    assert torch.is_grad_enabled(), "the command leaves its caller's grad mode as it was (training runs after it)"
    report = capsys.readouterr().out
    assert "PASS" in report and "exclusion sequences: match" in report
    diffs = [float(line.split("= ")[1].split()[0]) for line in report.splitlines() if "max|diff|" in line]
    assert len(diffs) == 8 and max(diffs) < 2e-5  # a faithful build lands near 1e-5


def test_verify_golden_fails_when_the_model_is_wrong(
    spec_a: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A golden file whose expected logits are off by 1e-3 must not pass (no looking things up)."""
    import json

    spec = dict(spec_a)
    spec["logits"] = {k: [[v + 1e-3 for v in row] for row in rows] for k, rows in spec_a["logits"].items()}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spec))
    assert verify_golden([str(bad), "--media", str(MEDIA)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_folded_vi_gives_the_same_outputs(golden_state, spec_a: dict) -> None:
    model, clip = fresh_models(golden_state)
    inputs = golden_inputs(spec_a, MEDIA)
    with torch.no_grad():
        features = clip.encode_image(inputs["context"])
        plain = model.vocabulary(features, model.W, model.VI_ffn)
        model.fold_vi()
        folded = model.vocabulary(features, model.W, model.VI_ffn)
    assert model.vocabulary.folded_weight.shape == (6656, 1024)
    torch.testing.assert_close(folded[0], plain[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(folded[1], plain[1], atol=1e-5, rtol=1e-4)


def test_closed_form_equals_per_person_autograd_reference(golden_state, spec_a: dict) -> None:
    model, clip = fresh_models(golden_state)
    inputs = golden_inputs(spec_a, MEDIA)
    with torch.no_grad():
        features = clip.encode_image(inputs["context"])
        ours = model(
            inputs["context"], inputs["body"], inputs["head"], inputs["coord_body"], inputs["coord_head"], features
        )
    ref = reference_forward(
        model, inputs["context"], inputs["body"], inputs["head"], inputs["coord_body"], inputs["coord_head"], features
    )
    torch.testing.assert_close(ours.fused, ref.fused, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(ours.final, ref.final, atol=2e-5, rtol=1e-4)
    assert torch.equal(ours.exclusion, ref.exclusion)


def test_context_computed_once_equals_context_per_person(golden_state, spec_a: dict) -> None:
    model, clip = fresh_models(golden_state)
    inputs = golden_inputs(spec_a, MEDIA)
    with torch.no_grad():
        features = clip.encode_image(inputs["context"])
        per_person = model(
            inputs["context"], inputs["body"], inputs["head"], inputs["coord_body"], inputs["coord_head"], features
        )
        once = model(
            inputs["context"][:1],
            inputs["body"],
            inputs["head"],
            inputs["coord_body"],
            inputs["coord_head"],
            features[:1],
            torch.zeros(2, dtype=torch.long),
        )
    for name in ("final", "vi", "head", "body", "context", "level_losses", "fused"):
        torch.testing.assert_close(getattr(once, name), getattr(per_person, name), atol=1e-5, rtol=1e-5)


def test_refine_off_fuses_the_unrefined_features_and_eta_moves_only_level_features(golden_state, spec_a: dict) -> None:
    inputs = golden_inputs(spec_a, MEDIA)
    outs = {}
    for key, cfg in {
        "off": CocoERConfig(refine=False),
        "eta1": CocoERConfig(inside_lr=1.0),
        "eta01": CocoERConfig(inside_lr=0.1),
    }.items():
        model, clip = fresh_models(golden_state, cfg)
        with torch.no_grad():
            features = clip.encode_image(inputs["context"])
            outs[key] = model(
                inputs["context"], inputs["body"], inputs["head"], inputs["coord_body"], inputs["coord_head"], features
            )
    # refine=False: G = [f_h, f_b, f_c, f_VI] - compare with the classifier features computed directly:
    # each level's classifier up to its LayerNorm (cls_HFE_*[:4]) on its own normalised, flattened tokens.
    model, _ = fresh_models(golden_state, CocoERConfig(refine=False))
    with torch.no_grad():
        x_c0, x_c = model.context_tokens(inputs["context"])
        x_h, x_b = model.person_tokens(inputs["head"], inputs["body"], inputs["coord_head"], inputs["coord_body"], x_c0)
        direct = [
            classifier[:4](model.ln_after(tokens).flatten(1))
            for tokens, classifier in ((x_h, model.cls_HFE_head), (x_b, model.cls_HFE_body), (x_c, model.cls_HFE_ctx))
        ]
    torch.testing.assert_close(outs["off"].fused[:, :768], torch.cat(direct, dim=1), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(outs["off"].fused[:, :768], outs["eta1"].fused[:, :768])
    torch.testing.assert_close(outs["eta1"].fused[:, 768:], outs["eta01"].fused[:, 768:])
    torch.testing.assert_close(outs["off"].fused[:, 768:], outs["eta1"].fused[:, 768:])
    assert not torch.allclose(outs["eta1"].fused[:, :768], outs["eta01"].fused[:, :768])
    # The per-level logits and losses never depend on the coordination step.
    torch.testing.assert_close(outs["off"].head, outs["eta1"].head)
    torch.testing.assert_close(outs["off"].level_losses, outs["eta01"].level_losses)


def test_roi_positions_zero_beyond_192px_and_bilinear_inside() -> None:
    pos = PositionEmbedding2D()
    table = pos.table()
    # Column-first layout: entry (r, c) = [col_embed[c], row_embed[r]].
    torch.testing.assert_close(table[2, 5], torch.cat([pos.col_embed.weight[5], pos.row_embed.weight[2]]))
    torch.testing.assert_close(pos.context()[7 * 2 + 5], table[2, 5])
    full = pos.roi(torch.tensor([[0, 0, 224, 224]]))[0].view(7, 7, 256)
    assert torch.all(full[6] == 0) and torch.all(full[:, 6] == 0), "samples at >= 192 px are exactly zero"
    # An interior point: box (32, 32, 100, 100) puts grid (0, 0) at (x, y) = 36.857 px -> cell 1.1518.
    embed = pos.roi(torch.tensor([[32, 32, 100, 100]]))[0]
    s = (((0 + 0.5) / 7) * 68 - 68 / 2 + 66) / 32
    t = s - 1
    expected = (
        (1 - t) * (1 - t) * table[1, 1] + (1 - t) * t * table[2, 1] + t * (1 - t) * table[1, 2] + t * t * table[2, 2]
    )
    torch.testing.assert_close(embed[0], expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    ("losses", "order"),
    [
        ([3.0, 2.0, 1.0], [0, 1, 2]),
        ([1.0, 3.0, 2.0], [1, 2, 0]),
        ([2.0, 2.0, 2.0], [0, 1, 2]),  # ties: head, body, context
        ([1.0, 5.0, 5.0], [1, 2, 0]),
    ],
)
def test_exclusion_order(losses: list[float], order: list[int]) -> None:
    assert exclusion_order(torch.tensor([losses])).tolist() == [order]


def test_caer_s_seven_classes_builds_and_runs() -> None:
    torch.manual_seed(0)
    model = CocoER(CocoERConfig(num_class=7)).eval()
    assert model.VI_ffn[1].weight.shape == (7 * 256, 7 * 1024)
    x = torch.randn(2, 3, 224, 224)
    boxes = torch.tensor([[10, 10, 100, 200], [50, 20, 150, 220]])
    with torch.no_grad():
        out = model(x, x, x, boxes, boxes, torch.randn(2, 1024))
    assert out.final.shape == (2, 7) and out.vi.shape == (2, 7)


def test_verify_golden_cli_runs_from_a_fresh_shell() -> None:
    import subprocess
    import sys

    golden_spec("cocoer_golden_A2.json")
    done = subprocess.run(
        [sys.executable, "-m", "cocoer_core.verify_golden", str(DESIGN / "cocoer_golden_A2.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("PASS")
    assert "exclusion sequences: match [['head-level', 'context-level', 'body-level']]" in done.stdout
