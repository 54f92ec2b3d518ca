"""LSTM captioner model directories: the spec is validated, and `--model DIR` loads a
show-and-tell / show-attend-tell directory everywhere a ClipCap one loads: caption, index,
search, eval, serve. Also CLIP's grid from the encoder (ViT patches, ResNet map)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import cli
from indexer.config import Settings
from indexer.errors import ModelFormatError
from indexer.models.loading import load_model
from indexer.models.model_dir import read_spec

ARCHS = ("show-and-tell", "show-attend-tell")
runner = CliRunner()


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    from indexer.models.lstm import write_tiny_lstm_model

    root = tmp_path_factory.mktemp("lstm-models")
    return {arch: write_tiny_lstm_model(root / arch, arch, seed=0) for arch in ARCHS}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for i, colour in enumerate([(220, 20, 20), (20, 20, 220), (20, 160, 40)]):
        img = Image.new("RGB", (96, 80), colour)
        img.paste((240, 240, 240), (10 + 10 * i, 10, 40 + 10 * i, 50))
        img.save(folder / f"p{i}.png")
    return folder


def _direct_caption(model_dir: Path, path: Path) -> str:
    """The caption computed straight through the library (no CLI, no batching)."""
    from indexer.media.decode import decode_image

    model = load_model(str(model_dir), Settings(device="cpu"))
    enc = model.encoder
    pixels = enc.preprocess(decode_image(path, min_side=enc.image_size).image)[None]
    feats, grid = enc.encode_images_grid(pixels)
    return model.captioner.caption(feats, grid=grid)[0]


# ------------------------------------------------------------------------------------- spec
@pytest.mark.parametrize("arch", ARCHS)
def test_spec_names_the_architecture_and_loads(model_dirs, arch):
    from indexer.models.lstm import LstmCaptioner

    spec = read_spec(model_dirs[arch])
    assert spec["arch"] == arch and "clipcap" not in spec
    model = load_model(str(model_dirs[arch]), Settings(device="cpu"))
    assert isinstance(model.captioner, LstmCaptioner)
    assert model.captioner.needs_grid == (arch == "show-attend-tell")
    assert model.name == spec["name"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"arch": "show-and-dance"}, "field 'arch' must be one of"),
        ({"lstm": None}, "field 'lstm' must be an object"),
        ({"lstm": {"feature_dim": 32}}, "missing field 'lstm.vocab_size'"),
        ({"lstm": {"feature_dim": 32, "vocab_size": 512, "grid_dim": 8, "hidden_dim": 10**9}},
         "'lstm.hidden_dim' must be an integer in"),
        ({"lstm": {"feature_dim": 32, "vocab_size": 512, "colour": 1}},
         "unknown field 'lstm.colour'"),
        ({"lstm": {"feature_dim": 32, "vocab_size": 512, "grid_dim": 0}}, "grid_dim"),
        ({"lstm": {"feature_dim": 32, "vocab_size": 512, "grid_dim": 8, "dropout": 1.5}},
         "'lstm.dropout'"),
    ],
)  # fmt: skip
def test_bad_lstm_specs_are_refused_naming_the_field(model_dirs, tmp_path, change, message):
    bad = shutil.copytree(model_dirs["show-attend-tell"], tmp_path / "bad")
    spec = json.loads((bad / "imgcap-model.json").read_text())
    spec.update(change)
    (bad / "imgcap-model.json").write_text(json.dumps(spec))
    with pytest.raises(ModelFormatError, match=message):
        read_spec(bad)


def test_checkpoint_that_does_not_match_the_spec_is_refused(model_dirs, tmp_path):
    bad = shutil.copytree(model_dirs["show-and-tell"], tmp_path / "bad")
    spec = json.loads((bad / "imgcap-model.json").read_text())
    spec["lstm"]["hidden_dim"] = 32
    (bad / "imgcap-model.json").write_text(json.dumps(spec))
    with pytest.raises(ModelFormatError, match="does not match a show-and-tell model"):
        load_model(str(bad), Settings(device="cpu"))


# ---------------------------------------------------------------------------------- encoder
def test_vit_grid_comes_from_the_same_pass_as_the_pooled_feature(model_dirs):
    model = load_model(
        str(model_dirs["show-attend-tell"]), Settings(device="cpu", precision="fp32")
    )
    enc = model.encoder
    x = torch.randn(2, 3, enc.image_size, enc.image_size)
    feats, grid = enc.encode_images_grid(x)
    assert torch.equal(feats, enc.encode_images(x))
    visual = enc.model.visual
    assert grid.shape == (
        2,
        (enc.image_size // visual.patch_size[0]) ** 2,
        visual.ln_post.weight.shape[0],
    )
    # the patch tokens open_clip itself returns with output_tokens, from the same weights
    import open_clip

    clip_dir = (
        model_dirs["show-attend-tell"] / read_spec(model_dirs["show-attend-tell"])["clip"]["dir"]
    )
    ref = open_clip.create_model(f"local-dir:{clip_dir}", force_quick_gelu=True).eval()
    ref.visual.output_tokens = True
    with torch.no_grad():
        pooled, tokens = ref.visual(x)
    assert torch.equal(grid, tokens) and torch.equal(feats, pooled)


def test_resnet_grid_is_the_last_spatial_map():
    import open_clip

    from indexer.models.clip import visual_with_grid

    torch.manual_seed(0)
    clip = open_clip.CLIP(
        embed_dim=32,
        vision_cfg={"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "head_width": 8},
        text_cfg={"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    ).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pooled, grid = visual_with_grid(clip.visual, x)
        want = clip.visual(x)
        v = clip.visual
        fmap = v.layer4(v.layer3(v.layer2(v.layer1(v.stem(x)))))
    assert torch.allclose(pooled, want, atol=1e-6)
    assert grid.shape == (2, 4, fmap.shape[1])  # 64 px / 32 = a 2 x 2 map
    assert torch.equal(grid[:, 1], fmap[:, :, 0, 1])  # row-major: cell 1 = row 0, column 1


# ------------------------------------------------------------------------ --model everywhere
@pytest.mark.parametrize("arch", ARCHS)
def test_caption_command(model_dirs, photos, arch):
    photo = photos / "p1.png"
    r = runner.invoke(cli.app, ["caption", str(photo), "--model", str(model_dirs[arch]),
                                "--device", "cpu", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    line = json.loads(r.stdout.strip().splitlines()[-1])
    assert line["caption"] == _direct_caption(model_dirs[arch], photo)


@pytest.mark.parametrize("arch", ARCHS)
def test_index_search_and_serve(model_dirs, photos, tmp_path, arch):
    from starlette.testclient import TestClient

    from search.web.server import create_app

    model = str(model_dirs[arch])
    db = tmp_path / "lib.db"
    r = runner.invoke(cli.app, ["index", str(photos), "--db", str(db), "--model", model,
                                "--device", "cpu", "--workers", "1"])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli.app, ["search", "photo", "--db", str(db), "--model", model, "--json"])
    assert r.exit_code == 0, r.output
    hits = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(hits) == 3
    # the index stored the same caption `imgcap caption` makes
    by_name = {Path(h["path"]).name: h["caption"] for h in hits}
    assert by_name["p0.png"] == _direct_caption(model_dirs[arch], photos / "p0.png")
    app = create_app(Settings(db_path=db, model=model, device="cpu"))
    with TestClient(app, base_url="http://127.0.0.1:8765") as c:
        res = c.get("/api/search", params={"q": "photo", "mode": "image", "n": 10})
        assert res.status_code == 200, res.text
        assert len(res.json()["hits"]) == 3


@pytest.mark.parametrize("arch", ARCHS)
def test_eval_command(model_dirs, tmp_path, arch):
    from indexer.train.synthetic import write_dataset

    data = write_dataset(tmp_path / "data", 4, seed=0, fmt="coco", size=64, layout="centred")
    r = runner.invoke(cli.app, ["eval", str(data), "--model", str(model_dirs[arch]), "--split",
                                "train", "--device", "cpu", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["n_images"] == 4 and summary["model"] == read_spec(model_dirs[arch])["name"]
