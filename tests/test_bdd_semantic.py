"""BDD100K per-pixel readers: lane markings (poly2d JSON) and the 10K semantic segmentation (PNG).

Every test writes tiny files in the official formats and reads them back.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dinosal.data.readers import DatasetError
from dinosal.data.readers.bdd100k import (
    BDD_SEM_SEG_CLASSES,
    BDD_SEM_SEG_TO_BOOK,
    LANE_NAMES,
    SEM_SEG_NAMES,
    read_bdd100k_lanes,
    read_bdd100k_sem_seg,
)
from dinosal.data.sample import IGNORE, part_masks


def _lane(category, vertices, types=None, closed=False, **attrs):
    return {"id": "0", "category": category,
            "attributes": {"laneDirection": "parallel", "laneStyle": "solid", **attrs},
            "poly2d": [{"vertices": vertices, "types": types or "L" * len(vertices), "closed": closed}]}


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


# ---------------------------------------------------------------- lanes


def test_lane_mask_has_the_stated_width(tmp_path):
    labels = _write(tmp_path / "lane_val.json", [
        {"name": "a.jpg", "labels": [_lane("single white", [[10, 5], [10, 35]])]},  # vertical, x = 10
        {"name": "b.jpg", "labels": []},
        {"name": "c.jpg"},
    ])
    lanes = read_bdd100k_lanes(labels, image_size=(40, 30), line_width=4)
    assert len(lanes) == 3 and lanes.semantic_names == LANE_NAMES and lanes.class_names == ()
    a = lanes[0]
    assert a.semantic.shape == (30, 40) and a.semantic.dtype == np.uint8
    row = a.semantic[15]
    on = np.flatnonzero(row)
    assert len(on) == 4 and on[-1] - on[0] == 3 and on[0] <= 10 <= on[-1]  # 4 px wide, across x = 10
    assert a.semantic[:5].sum() > 0  # round cap reaches above the first vertex ... within its radius
    assert not a.semantic[:2].any()
    t = a.truth()
    assert t.parts["lane_marking"].sum() == a.semantic.sum() and not t.objects.any() and t.boxes.shape == (0, 4)
    assert set(part_masks(a)) == {"other", "lane_marking"} and set(a.part_masks()) == set(part_masks(a))
    assert lanes[1].semantic.sum() == 0 and lanes[2].semantic.sum() == 0
    wide = read_bdd100k_lanes(labels, image_size=(40, 30), line_width=8)[0]
    assert wide.semantic[15].sum() == 8


def test_lane_bezier_and_closed_paths(tmp_path):
    # a cubic from (5, 25) to (35, 25) bulging up to y ~ 10; the official "LCCC" types
    labels = _write(tmp_path / "l.json", [{"name": "a.jpg", "labels": [
        _lane("double yellow", [[5, 25], [10, 5], [30, 5], [35, 25]], "LCCC"),
        _lane("crosswalk", [[2, 2], [8, 2], [8, 8]], closed=True),
    ]}])
    m = read_bdd100k_lanes(labels, image_size=(40, 30), line_width=1)[0].semantic
    assert m[10, 20] == 1 and m[25, 20] == 0  # the curve, not the chord
    assert m[2, 5] == 1 and m[5, 8] == 1 and m[5, 5] == 1  # the closing edge (8, 8) -> (2, 2)


def test_lane_categories_and_2018_files(tmp_path):
    frames = [{"name": "a.jpg", "labels": [
        {"category": "car", "box2d": {"x1": 1, "y1": 1, "x2": 5, "y2": 5}},
        {"category": "drivable area", "poly2d": [{"vertices": [[0, 0], [5, 0], [5, 5]], "types": "LLL",
                                                   "closed": True}]},
        {"category": "lane", "attributes": {"laneType": "road curb"},
         "poly2d": [{"vertices": [[0, 20], [39, 20]], "types": "LL", "closed": False}]},
        {"category": "lane", "attributes": {"laneType": "single yellow"},
         "poly2d": [{"vertices": [[0, 10], [39, 10]], "types": "LL", "closed": False}]},
    ]}]
    labels = _write(tmp_path / "bdd100k_labels_images_val.json", frames)
    m = read_bdd100k_lanes(labels, image_size=(40, 30), line_width=1)[0].semantic
    assert m[10].all() and not m[20].any() and m.sum() == 40  # curbs are not paint (default)
    every = read_bdd100k_lanes(labels, image_size=(40, 30), line_width=1,
                               categories=("road curb", "single yellow"))[0].semantic
    assert every[20].all()


def test_lane_sizes_from_the_images(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (24, 16)).save(tmp_path / "img" / "a.jpg")
    labels = _write(tmp_path / "l.json", [{"name": "a.jpg", "labels": [_lane("single white", [[0, 0], [23, 15]])]}])
    f = read_bdd100k_lanes(labels, tmp_path / "img")[0]
    assert f.semantic.shape == (16, 24) and f.image == tmp_path / "img" / "a.jpg"
    with pytest.raises(DatasetError, match="b.jpg: image file not found"):
        read_bdd100k_lanes(_write(tmp_path / "m.json", [{"name": "b.jpg"}]), tmp_path / "img")


@pytest.mark.parametrize("label, match", [
    (_lane("single white", [[0, 0]]), r"frame 0 \(a.jpg\): label 0 \(single white\): poly2d 0: 'vertices'"),
    (_lane("single white", [[0, 0], [1, "x"]]), "'vertices' must be a list of"),
    (_lane("single white", [[0, 0], [1, 1]], "LX"), "'types' must be a string of L/C"),
    (_lane("single white", [[0, 0], [1, 1], [2, 2]], "LL"), "one per vertex"),
    (_lane("single white", [[0, 0], [1, 1], [2, 2]], "LCC"), "cubic segment needs two C"),
    (_lane("single white", [[0, 0], [1, 1]], "CL"), "must start at a vertex"),
    (_lane("zebra", [[0, 0], [1, 1]]), "unknown category 'zebra'"),
    ({"category": "lane", "attributes": {"laneType": "zebra"},
      "poly2d": [{"vertices": [[0, 0], [1, 1]], "types": "LL"}]}, "unknown lane type 'zebra'"),
    ({"category": "lane", "poly2d": [{"vertices": [[0, 0], [1, 1]], "types": "LL"}]}, "laneType"),
    ({"category": "single white", "poly2d": []}, "non-empty 'poly2d'"),
    ({"category": "single white", "poly2d": [{"vertices": [[0, 0], [1, 1]], "closed": "no"}]}, "'closed'"),
    ({"poly2d": []}, "no string 'category'"),
])
def test_malformed_lane_labels_name_file_frame_and_problem(tmp_path, label, match):
    labels = _write(tmp_path / "lane_train.json", [{"name": "a.jpg", "labels": [label]}])
    with pytest.raises(DatasetError, match=match) as err:
        read_bdd100k_lanes(labels)
    assert str(err.value).startswith(str(labels))


def test_malformed_lane_files(tmp_path):
    (tmp_path / "bad.json").write_text("[{")
    with pytest.raises(DatasetError, match="bad.json: malformed JSON"):
        read_bdd100k_lanes(tmp_path / "bad.json")
    with pytest.raises(DatasetError, match="non-empty JSON list"):
        read_bdd100k_lanes(_write(tmp_path / "e.json", []))
    with pytest.raises(DatasetError, match="duplicate image name"):
        read_bdd100k_lanes(_write(tmp_path / "d.json", [{"name": "a.jpg"}, {"name": "a.jpg"}]))
    with pytest.raises(DatasetError, match="lane label file not found"):
        read_bdd100k_lanes(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="line_width"):
        read_bdd100k_lanes(_write(tmp_path / "ok.json", [{"name": "a.jpg"}]), line_width=0)
    with pytest.raises(ValueError, match="categories"):
        read_bdd100k_lanes(tmp_path / "ok.json", categories=("zebra",))


# ---------------------------------------------------------------- semantic segmentation


def _mask(path, ids, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(ids, np.uint8), mode="L").convert(mode).save(path)
    return path


def test_sem_seg_ids_map_to_the_book_names(tmp_path):
    ids = np.array([list(range(19)) + [255]] * 2, np.uint8)  # (2, 20): every id and "unknown"
    _mask(tmp_path / "masks" / "val" / "f1.png", ids)
    _mask(tmp_path / "masks" / "val" / "f2.png", np.full((2, 20), 8, np.uint8))
    (tmp_path / "images").mkdir()
    for stem in ("f1", "f2"):
        Image.new("RGB", (20, 2)).save(tmp_path / "images" / f"{stem}.jpg")
    s = read_bdd100k_sem_seg(tmp_path / "masks" / "val", tmp_path / "images")
    assert len(s) == 2 and s.semantic_names == SEM_SEG_NAMES and s.images[0].name == "f1.jpg"
    f = s[0]
    names = [f.semantic_names[k] if k != IGNORE else None for k in f.semantic[0].tolist()]
    assert names[:19] == [BDD_SEM_SEG_TO_BOOK[c] for c in BDD_SEM_SEG_CLASSES] and names[19] is None
    assert names[8] == "tree" and names[7] == "sign" and names[10] == "sky" and names[11] == "pedestrian"
    assert f.class_names == SEM_SEG_NAMES[len(f.part_names):]
    t = f.truth()
    assert t.parts["tree"][0].tolist() == [k == 8 for k in range(20)]
    assert t.objects[0].tolist() == [11 <= k <= 18 for k in range(20)]  # person .. bicycle; 255 not
    assert t.parts["roadside"][0, [1, 9]].all()  # sidewalk and terrain
    assert s[1].part_masks().keys() == {"tree"}


def test_sem_seg_palette_png_reads_its_indices(tmp_path):
    im = Image.fromarray(np.array([[0, 10, 255]], np.uint8), mode="L").convert("P")
    (tmp_path / "m").mkdir()
    im.putpalette([v for k in range(256) for v in (k, 0, 0)])
    im.save(tmp_path / "m" / "a.png")
    f = read_bdd100k_sem_seg(tmp_path / "m")[0]
    assert [f.semantic_names[k] if k != IGNORE else None for k in f.semantic[0].tolist()] == ["road", "sky", None]


def test_malformed_sem_seg_masks_name_the_file(tmp_path):
    bad = _mask(tmp_path / "m" / "bad.png", [[0, 19, 200]])
    s = read_bdd100k_sem_seg(tmp_path / "m")  # header only: values are checked on access
    with pytest.raises(DatasetError, match=r"bad.png: label ids \[19, 200\] are not BDD100K sem_seg ids"):
        s[0]
    with pytest.raises(DatasetError, match="bad.png: label ids"):
        read_bdd100k_sem_seg(tmp_path / "m", verify="decode")
    bad.unlink()
    _mask(tmp_path / "m" / "colour.png", [[0, 1]], mode="RGB")
    with pytest.raises(DatasetError, match="colour.png: expected a one-channel label PNG"):
        read_bdd100k_sem_seg(tmp_path / "m")
    (tmp_path / "m" / "colour.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="colour.png: unreadable mask PNG"):
        read_bdd100k_sem_seg(tmp_path / "m")
    (tmp_path / "m" / "colour.png").unlink()
    with pytest.raises(DatasetError, match="no .png masks"):
        read_bdd100k_sem_seg(tmp_path / "m")
    with pytest.raises(DatasetError, match="sem_seg masks folder not found"):
        read_bdd100k_sem_seg(tmp_path / "nowhere")


def test_sem_seg_mask_and_image_must_match(tmp_path):
    _mask(tmp_path / "m" / "a.png", np.zeros((4, 6)))
    (tmp_path / "img").mkdir()
    Image.new("RGB", (5, 4)).save(tmp_path / "img" / "a.jpg")
    with pytest.raises(DatasetError, match=r"a.png: mask is 6x4 \(WxH\) but its image is 5x4"):
        read_bdd100k_sem_seg(tmp_path / "m", tmp_path / "img")
    with pytest.raises(DatasetError, match="b.jpg: image file not found"):
        _mask(tmp_path / "m" / "b.png", np.zeros((4, 6)))
        read_bdd100k_sem_seg(tmp_path / "m", tmp_path / "img", verify="exists")
