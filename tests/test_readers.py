"""Readers and exporters: round trips, hand-written official files, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from dinosal.data import export
from dinosal.data.export import (
    export_bdd100k,
    export_class_folders,
    export_coco,
    export_stanford_cars,
    export_voc,
)
from dinosal.data.readers import (
    BDD_CLASSES,
    DatasetError,
    load_rgb,
    read_bdd100k,
    read_class_folders,
    read_coco,
    read_image_folder,
    read_stanford_cars,
    read_voc,
)
from dinosal.data.synthetic import (
    DrivingConfig,
    DrivingScenes,
    SingleVehicles,
    VehicleConfig,
)


@pytest.fixture(scope="module")
def driving():
    g = DrivingScenes(DrivingConfig(size=48, n_objects=(1, 4), seed=4))
    return [s for s in g[:12] if len(s.labels)]


@pytest.fixture(scope="module")
def vehicles():
    return SingleVehicles(VehicleConfig(size=48, seed=4))[:8]


def _names(class_names, labels):
    return [class_names[k] for k in labels]


def _same(samples, read):
    assert len(read) == len(samples)
    for s, a in zip(samples, read):
        np.testing.assert_array_equal(a.boxes, s.boxes)
        assert _names(read.class_names, a.labels) == _names(s.class_names, s.labels)
        assert a.size == s.semantic.shape
        assert read.image(0).shape == s.image.shape


def _image(path, size=(64, 48), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 128 if mode in ("L", "I;16") else (120, 130, 140)).save(path)
    return path


# ---------------------------------------------------------------- round trips


def test_bdd_round_trip(tmp_path, driving):
    e = export_bdd100k(driving, tmp_path / "bdd")
    read = read_bdd100k(e.annotations, e.images)
    _same(driving, read)
    assert read.class_names == BDD_CLASSES
    mh = read.multi_hot()
    for s, row in zip(driving, mh):
        assert {BDD_CLASSES[k] for k in np.flatnonzero(row)} == set(_names(s.class_names, s.labels))


def test_stanford_cars_round_trip(tmp_path, vehicles):
    e = export_stanford_cars(vehicles, tmp_path / "cars")
    read = read_stanford_cars(e.annotations, e.images, e.root / "devkit" / "cars_meta.mat")
    _same(vehicles, read)
    assert read.class_names == vehicles[0].class_names


def test_class_folder_round_trip(tmp_path):
    g = SingleVehicles(VehicleConfig(size=32, types=("coupe", "sedan", "van")))
    samples = g[:9]
    e = export_class_folders(samples, tmp_path / "folders")
    read = read_class_folders(e.annotations)
    assert read.class_names == ("coupe", "sedan", "van")
    got = sorted((str(a.image.name), read.class_names[a.labels[0]]) for a in read)
    want = sorted((f"{i:06d}.jpg", s.class_names[s.labels[0]]) for i, s in enumerate(samples))
    assert got == want


def test_voc_round_trip(tmp_path, driving):
    e = export_voc(driving, tmp_path / "voc")
    read = read_voc(e.annotations, class_names=driving[0].class_names)
    _same(driving, read)
    per_class = (e.root / "ImageSets" / "Main" / "car_trainval.txt").read_text().split("\n")
    assert len([ln for ln in per_class if ln]) == len(driving)


def test_coco_round_trip(tmp_path, driving):
    e = export_coco(driving, tmp_path / "coco")
    read = read_coco(e.annotations, e.images)
    _same(driving, read)


def test_image_folder(tmp_path, driving):
    e = export_coco(driving, tmp_path / "coco")
    read = read_image_folder(e.images)
    assert len(read) == len(driving) and read.class_names == ()
    np.testing.assert_allclose(read.image(0).astype(float), driving[0].image, atol=40)


# ---------------------------------------------------- hand-written official files


def test_bdd_official_2018_names(tmp_path):
    _image(tmp_path / "img" / "a.jpg", (100, 50))
    _image(tmp_path / "img" / "b.jpg", (100, 50))
    frames = [
        {"name": "a.jpg", "attributes": {"weather": "clear"}, "timestamp": 10000, "labels": [
            {"category": "person", "attributes": {"occluded": True, "truncated": False},
             "manualShape": True, "box2d": {"x1": 10.5, "y1": 5.0, "x2": 19.5, "y2": 30.0}, "id": 1},
            {"category": "bike", "box2d": {"x1": 0, "y1": 0, "x2": 99, "y2": 49}, "id": 2},
            {"category": "traffic light", "box2d": {"x1": 1, "y1": 2, "x2": 3, "y2": 4}, "id": 3},
            {"category": "lane", "poly2d": [{"vertices": [[0, 0], [5, 5]], "types": "LL", "closed": False}], "id": 4},
            {"category": "drivable area", "poly2d": [], "id": 5},
        ]},
        {"name": "b.jpg", "attributes": {}},  # a frame without labels
    ]
    labels = tmp_path / "bdd100k_labels_images_val.json"
    labels.write_text(json.dumps(frames))
    read = read_bdd100k(labels, tmp_path / "img")
    a, b = read
    assert _names(BDD_CLASSES, a.labels) == ["pedestrian", "bicycle", "traffic light"]
    np.testing.assert_array_equal(a.boxes[0], [10.5, 5.0, 20.5, 31.0])  # inclusive -> exclusive max
    np.testing.assert_array_equal(a.boxes[1], [0, 0, 100, 50])
    assert a.flags["occluded"].tolist() == [True, False, False]
    assert len(b.labels) == 0 and read.multi_hot()[1].sum() == 0
    with pytest.raises(DatasetError, match="b.jpg.*no detection labels"):
        read_bdd100k(labels, tmp_path / "img", allow_empty=False)


def test_voc_official_xml(tmp_path):
    root = tmp_path / "VOC2007"
    _image(root / "JPEGImages" / "000005.jpg", (500, 375))
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("000005\n")
    (root / "Annotations").mkdir()
    (root / "Annotations" / "000005.xml").write_text("""<annotation>
  <folder>VOC2007</folder><filename>000005.jpg</filename>
  <source><database>The VOC2007 Database</database></source>
  <size><width>500</width><height>375</height><depth>3</depth></size>
  <segmented>0</segmented>
  <object><name>chair</name><pose>Rear</pose><truncated>0</truncated><difficult>0</difficult>
    <bndbox><xmin>263</xmin><ymin>211</ymin><xmax>324</xmax><ymax>339</ymax></bndbox></object>
  <object><name>chair</name><pose>Unspecified</pose><truncated>1</truncated><difficult>1</difficult>
    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>500</xmax><ymax>375</ymax></bndbox></object>
</annotation>""")
    (a,) = read_voc(root)
    np.testing.assert_array_equal(a.boxes, [[262, 210, 324, 339], [0, 0, 500, 375]])
    assert a.flags["difficult"].tolist() == [False, True] and a.size == (375, 500)


def test_coco_official_json(tmp_path):
    _image(tmp_path / "val2017" / "000000000139.jpg", (64, 48))
    _image(tmp_path / "val2017" / "000000000285.jpg", (64, 48))
    d = {
        "images": [{"id": 139, "file_name": "000000000139.jpg", "height": 48, "width": 64},
                   {"id": 285, "file_name": "000000000285.jpg", "height": 48, "width": 64}],
        "annotations": [
            {"id": 1, "image_id": 139, "category_id": 62, "bbox": [10.2, 5.5, 20.0, 10.0], "area": 200, "iscrowd": 0},
            {"id": 2, "image_id": 139, "category_id": 1, "bbox": [0, 0, 64, 48], "area": 900,
             "iscrowd": 1, "segmentation": {"counts": [], "size": [48, 64]}},
        ],
        "categories": [{"id": 62, "name": "chair", "supercategory": "furniture"},
                       {"id": 1, "name": "person", "supercategory": "person"}],
    }
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(d))
    read = read_coco(path, tmp_path / "val2017")
    assert read.class_names == ("person", "chair")
    a, b = read
    np.testing.assert_allclose(a.boxes, [[10.2, 5.5, 30.2, 15.5]], rtol=1e-6)
    assert _names(read.class_names, a.labels) == ["chair"]  # the crowd box is dropped
    assert len(b.labels) == 0
    assert len(read_coco(path, tmp_path / "val2017", keep_empty=False)) == 1


def _cars_struct(rows):
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    ann = np.zeros((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, row in enumerate(rows):
        for f, v in zip(fields, row):
            ann[0, i][f] = np.array([v]) if isinstance(v, str) else np.array([[v]], np.uint16)
    return ann


def test_stanford_cars_official_mat(tmp_path):
    _image(tmp_path / "cars_train" / "00001.jpg", (80, 60))
    names = np.empty((1, 2), dtype=object)
    names[0, :] = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012"]
    savemat(tmp_path / "cars_meta.mat", {"class_names": names})
    savemat(tmp_path / "cars_train_annos.mat", {"annotations": _cars_struct([(1, 2, 80, 60, 2, "00001.jpg")])})
    (a,) = read_stanford_cars(tmp_path / "cars_train_annos.mat", tmp_path / "cars_train", tmp_path / "cars_meta.mat")
    np.testing.assert_array_equal(a.boxes, [[0, 1, 80, 60]])
    assert a.labels.tolist() == [1]
    # the all-in-one cars_annos.mat: relative_im_path and class_names in one file
    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    ann = np.zeros((1, 1), dtype=[(f, object) for f in fields])
    for f, v in zip(fields, ["cars_train/00001.jpg", 1, 1, 10, 10, 1, 0]):
        ann[0, 0][f] = np.array([v]) if isinstance(v, str) else np.array([[v]], np.uint16)
    savemat(tmp_path / "cars_annos.mat", {"annotations": ann, "class_names": names})
    (b,) = read_stanford_cars(tmp_path / "cars_annos.mat", tmp_path)
    assert b.labels.tolist() == [0] and b.boxes.tolist() == [[0, 0, 10, 10]]


# ------------------------------------------------------------------- bad input


def test_missing_paths(tmp_path):
    with pytest.raises(DatasetError, match="nowhere.*folder not found"):
        read_bdd100k(tmp_path / "x.json", tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="x.json.*not found"):
        read_bdd100k(tmp_path / "x.json", tmp_path)
    with pytest.raises(DatasetError, match="trainval.txt.*not found"):
        read_voc(tmp_path)
    with pytest.raises(DatasetError, match="annos.mat.*not found"):
        read_stanford_cars(tmp_path / "annos.mat", tmp_path)
    with pytest.raises(DatasetError, match="no images"):
        read_image_folder(tmp_path)


def test_missing_image_file(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps([{"name": "gone.jpg", "labels": []}]))
    with pytest.raises(DatasetError, match="gone.jpg: image file not found"):
        read_bdd100k(tmp_path / "labels.json", tmp_path)


def test_malformed_files(tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('[{"name": "a.jpg", "labels": [')
    with pytest.raises(DatasetError, match="bad.json: malformed JSON"):
        read_bdd100k(bad_json, tmp_path)
    with pytest.raises(DatasetError, match="bad.json: malformed JSON"):
        read_coco(bad_json, tmp_path)
    (tmp_path / "shape.json").write_text('{"frames": []}')
    with pytest.raises(DatasetError, match="expected a JSON list"):
        read_bdd100k(tmp_path / "shape.json", tmp_path)
    bad_mat = tmp_path / "bad.mat"
    bad_mat.write_bytes(b"MATLAB 5.0 MAT-file garbage" + bytes(200))
    with pytest.raises(DatasetError, match="bad.mat: malformed MAT"):
        read_stanford_cars(bad_mat, tmp_path)
    savemat(tmp_path / "other.mat", {"x": np.zeros(3)})
    with pytest.raises(DatasetError, match="no 'annotations'"):
        read_stanford_cars(tmp_path / "other.mat", tmp_path)
    root = tmp_path / "voc"
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("1\n")
    (root / "Annotations").mkdir()
    (root / "Annotations" / "1.xml").write_text("<annotation><size><width>4</width></annotation")
    with pytest.raises(DatasetError, match="1.xml: malformed XML"):
        read_voc(root)


def test_unknown_categories(tmp_path):
    _image(tmp_path / "a.jpg")
    (tmp_path / "l.json").write_text(json.dumps([{"name": "a.jpg", "labels": [
        {"category": "spaceship", "box2d": {"x1": 0, "y1": 0, "x2": 5, "y2": 5}}]}]))
    with pytest.raises(DatasetError, match="a.jpg.*unknown category 'spaceship'"):
        read_bdd100k(tmp_path / "l.json", tmp_path)
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "height": 48, "width": 64}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [0, 0, 2, 2], "iscrowd": 0}],
            "categories": [{"id": 1, "name": "cat"}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match="c.json: annotation 0 has unknown category_id 7"):
        read_coco(tmp_path / "c.json", tmp_path)


def test_unknown_voc_class_and_empty_object_list(tmp_path, driving):
    e = export_voc(driving[:2], tmp_path / "voc")
    with pytest.raises(DatasetError, match=r"\d+.xml: object \d+ has unknown class"):
        read_voc(e.annotations)  # the 20 VOC classes do not include 'pedestrian' etc.
    xml = e.root / "Annotations" / "000000.xml"
    text = xml.read_text()
    xml.write_text(text[: text.index("<object>")] + "</annotation>")
    with pytest.raises(DatasetError, match="000000.xml: empty label list"):
        read_voc(e.annotations, class_names=driving[0].class_names)


def test_box_outside_image(tmp_path):
    _image(tmp_path / "a.jpg", (64, 48))
    (tmp_path / "l.json").write_text(json.dumps([{"name": "a.jpg", "labels": [
        {"category": "car", "box2d": {"x1": 10, "y1": 10, "x2": 80, "y2": 20}}]}]))
    with pytest.raises(DatasetError, match=r"a.jpg\).*box 0 .*outside.*64x48"):
        read_bdd100k(tmp_path / "l.json", tmp_path)
    # within the 1 px tolerance the box is clipped
    (tmp_path / "m.json").write_text(json.dumps([{"name": "a.jpg", "labels": [
        {"category": "car", "box2d": {"x1": -0.5, "y1": 10, "x2": 63.5, "y2": 20}}]}]))
    (a,) = read_bdd100k(tmp_path / "m.json", tmp_path)
    assert a.boxes.tolist() == [[0, 10, 64, 21]]


def test_empty_label_lists(tmp_path):
    (tmp_path / "l.json").write_text("[]")
    with pytest.raises(DatasetError, match="l.json: empty label list"):
        read_bdd100k(tmp_path / "l.json", tmp_path)
    (tmp_path / "c.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(DatasetError, match="c.json: empty image list"):
        read_coco(tmp_path / "c.json", tmp_path)


def test_truncated_and_unreadable_images(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    cut = tmp_path / "cut.jpg"
    data = good.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DatasetError, match="cut.jpg: unreadable or truncated"):
        load_rgb(cut)
    (tmp_path / "noise.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match="noise.png: unreadable"):
        load_rgb(tmp_path / "noise.png")
    (tmp_path / "l.json").write_text(json.dumps([{"name": "cut.jpg", "labels": []}]))
    read_bdd100k(tmp_path / "l.json", tmp_path)  # the header alone is intact
    with pytest.raises(DatasetError, match="cut.jpg: unreadable or truncated"):
        read_bdd100k(tmp_path / "l.json", tmp_path, verify="decode")
    with pytest.raises(DatasetError, match="noise.png: unreadable image header"):
        read_image_folder(tmp_path)


def test_image_mode_conversions(tmp_path):
    g = tmp_path / "g.png"
    Image.fromarray(np.full((4, 5), 77, np.uint8)).save(g)
    assert load_rgb(g).shape == (4, 5, 3) and (load_rgb(g) == 77).all()
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3], rgba[0, 1, 3], rgba[1, :, 3] = 255, 0, 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    on_white = load_rgb(tmp_path / "a.png")
    on_black = load_rgb(tmp_path / "a.png", alpha_background=(0, 0, 0))
    assert on_white[0, 0].tolist() == [200, 0, 0] and on_white[0, 1].tolist() == [255, 255, 255]
    assert on_black[0, 1].tolist() == [0, 0, 0] and on_black[1, 0].tolist() == [100, 0, 0]
    deep = np.array([[0, 257, 65535]], np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    assert load_rgb(tmp_path / "d.png")[0, :, 0].tolist() == [0, 1, 255]
    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 20, 30, 40, 50, 60])
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    assert load_rgb(tmp_path / "p.png").tolist() == [[[255, 255, 255], [40, 50, 60]]]


def test_export_is_atomic(tmp_path, driving, monkeypatch):
    e = export_coco(driving, tmp_path / "coco")
    with pytest.raises(FileExistsError, match="coco"):
        export_coco(driving, tmp_path / "coco")
    calls = {"n": 0}
    real = export._save_image

    def failing(*args, **kw):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise OSError("disk full")
        return real(*args, **kw)

    monkeypatch.setattr(export, "_save_image", failing)
    with pytest.raises(OSError, match="disk full"):
        export_coco(driving, tmp_path / "coco", overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        export_voc(driving, tmp_path / "voc")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco"]  # no temp dirs, no half-built voc
    assert len(read_coco(e.annotations, e.images)) == len(driving)  # the old set is intact
    export_coco(driving[:2], tmp_path / "coco", overwrite=True)
    assert len(read_coco(e.annotations, e.images)) == 2


def test_export_rejects_what_the_format_cannot_hold(tmp_path, driving, vehicles):
    with pytest.raises(ValueError, match="one object per image"):
        export_stanford_cars(driving, tmp_path / "cars")
    with pytest.raises(ValueError, match="not BDD100K categories"):
        export_bdd100k(vehicles, tmp_path / "bdd")
    assert not list(tmp_path.iterdir())


# ------------------------------------------- issue 10: flags, bad boxes, decode


def _bdd(tmp_path, labels, name="l.json", size=(64, 48)):
    _image(tmp_path / "a.jpg", size)
    (tmp_path / name).write_text(json.dumps([{"name": "a.jpg", "labels": labels}]))
    return tmp_path / name


def _car(x1, y1, x2, y2, attributes=None):
    lab = {"category": "car", "box2d": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}}
    if attributes is not None:
        lab["attributes"] = attributes
    return lab


def test_boolean_attributes_are_parsed_strictly(tmp_path):
    # BDD100K: "false" (a string) was read as True by bool("false")
    path = _bdd(tmp_path, [_car(0, 0, 9, 9, {"occluded": "false", "truncated": "true", "crowd": "False"}),
                           _car(0, 0, 9, 9, {"occluded": 1, "truncated": 0, "crowd": True}),
                           _car(0, 0, 9, 9, {"occluded": " TRUE ", "truncated": "0"}),
                           _car(0, 0, 9, 9)])
    (a,) = read_bdd100k(path, tmp_path)
    assert a.flags["occluded"].tolist() == [False, True, True, False]
    assert a.flags["truncated"].tolist() == [True, False, False, False]
    assert a.flags["crowd"].tolist() == [False, True, False, False]
    for bad in ("maybe", 2, 0.5, None, ""):
        _bdd(tmp_path, [_car(0, 0, 9, 9), _car(0, 0, 9, 9, {"occluded": bad})], name="bad.json")
        with pytest.raises(DatasetError, match=r"bad.json: frame 0 \(a.jpg\): label 1 \(car\): attribute 'occluded'"):
            read_bdd100k(tmp_path / "bad.json", tmp_path)
    # VOC: <difficult>true</difficult> was read as False (only "1" counted); "2" passed silently
    root = tmp_path / "VOC2007"
    _image(root / "JPEGImages" / "1.jpg", (64, 48))
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("1\n")
    (root / "Annotations").mkdir()

    def voc(difficult):
        (root / "Annotations" / "1.xml").write_text(
            "<annotation><filename>1.jpg</filename><size><width>64</width><height>48</height></size>"
            f"<object><name>car</name><difficult>{difficult}</difficult><truncated>0</truncated>"
            "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>10</ymax></bndbox></object></annotation>")
        return read_voc(root)

    assert voc("true")[0].flags["difficult"].tolist() == [True]
    assert voc(" 0 ")[0].flags["difficult"].tolist() == [False]
    with pytest.raises(DatasetError, match=r"1.xml: object 0 \(car\): attribute 'difficult' is '2'"):
        voc("2")
    # COCO: iscrowd "0" (a string) was truthy and dropped the box
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "height": 48, "width": 64}],
            "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": "0"},
                            {"id": 8, "image_id": 1, "category_id": 1, "bbox": [0, 0, 9, 9], "iscrowd": "1"}],
            "categories": [{"id": 1, "name": "car"}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    (a,) = read_coco(tmp_path / "c.json", tmp_path)
    assert a.boxes.tolist() == [[0, 0, 5, 5]]
    coco["annotations"][1]["iscrowd"] = "yes"
    (tmp_path / "c.json").write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match=r"c.json: annotation 1 \(id 8\): attribute 'iscrowd' is 'yes'"):
        read_coco(tmp_path / "c.json", tmp_path)


def test_bad_boxes_policy_bdd(tmp_path):
    # 64x48 image; BDD's inclusive max: x2 = 79 -> 80 (16 px out), the 3rd wholly outside, the 4th empty
    path = _bdd(tmp_path, [_car(10, 10, 20, 20, {"occluded": True}), _car(10, 10, 79, 20, {"occluded": False}),
                           _car(70, 5, 80, 9), _car(5, 5, 3, 9), _car(1, 2, 3, 4, {"occluded": True})])
    with pytest.raises(DatasetError, match=r"l.json: frame 0 \(a.jpg\): box 1 \[10.0, 10.0, 80.0, 21.0\] "
                                           r"\(label 1, car\) lies outside.*image 64x48.*bad_boxes='clip'.*'skip'"):
        read_bdd100k(path, tmp_path)
    with pytest.raises(ValueError, match="bad_boxes must be one of"):
        read_bdd100k(path, tmp_path, bad_boxes="ignore")

    clip = read_bdd100k(path, tmp_path, bad_boxes="clip")
    (a,) = clip
    assert a.boxes.tolist() == [[10, 10, 21, 21], [10, 10, 64, 21], [1, 2, 4, 5]]
    assert a.flags["occluded"].tolist() == [True, False, True] and len(a.labels) == 3
    assert (clip.box_issues.policy, clip.box_issues.n_clipped, clip.box_issues.n_skipped) == ("clip", 1, 2)
    assert "clipped to [10.0, 10.0, 64.0, 21.0]" in clip.box_issues.examples[0]

    skip = read_bdd100k(path, tmp_path, bad_boxes="skip")
    (a,) = skip  # the image stays; the bad boxes go with their labels and flags
    assert a.boxes.tolist() == [[10, 10, 21, 21], [1, 2, 4, 5]]
    assert a.flags["occluded"].tolist() == [True, True] and len(a.labels) == 2
    assert (skip.box_issues.n_clipped, skip.box_issues.n_skipped) == (0, 3)
    assert "3 dropped" in repr(skip)
    # a frame whose only box is bad stays, without boxes
    path = _bdd(tmp_path, [_car(100, 100, 120, 120)], name="m.json")
    (a,) = read_bdd100k(path, tmp_path, bad_boxes="skip")
    assert a.boxes.shape == (0, 4) and a.labels.shape == (0,) and a.flags["occluded"].shape == (0,)


def test_bad_boxes_policy_stanford_cars_voc_coco(tmp_path, driving):
    # Stanford Cars .mat: 1-based inclusive; x2 = 90 on an 80 px wide image
    _image(tmp_path / "cars_train" / "00001.jpg", (80, 60))
    names = np.empty((1, 1), dtype=object)
    names[0, 0] = "AM General Hummer SUV 2000"
    savemat(tmp_path / "cars_meta.mat", {"class_names": names})
    savemat(tmp_path / "cars_train_annos.mat", {"annotations": _cars_struct([(1, 2, 90, 60, 1, "00001.jpg")])})
    args = (tmp_path / "cars_train_annos.mat", tmp_path / "cars_train", tmp_path / "cars_meta.mat")
    with pytest.raises(DatasetError, match=r"cars_train_annos.mat: annotation 0 \(00001.jpg\): box 0 "
                                           r"\[0.0, 1.0, 90.0, 60.0\] lies outside.*image 80x60.*bad_boxes="):
        read_stanford_cars(*args)
    c = read_stanford_cars(*args, bad_boxes="clip")
    assert c[0].boxes.tolist() == [[0, 1, 80, 60]] and c.box_issues.n_clipped == 1
    s = read_stanford_cars(*args, bad_boxes="skip")
    assert s[0].boxes.shape == (0, 4) and s[0].labels.tolist() == [0] and s.box_issues.n_skipped == 1

    # VOC: one exported set, the first object's xmax pushed 30 px out
    e = export_voc(driving[:2], tmp_path / "voc")
    xml = e.root / "Annotations" / "000000.xml"
    text = xml.read_text()
    i = text.index("<xmax>") + len("<xmax>")
    j = text.index("</xmax>")
    xml.write_text(text[:i] + str(int(text[i:j]) + 30 + 48) + text[j:])
    names_ = driving[0].class_names
    with pytest.raises(DatasetError, match=r"000000.xml \(000000.jpg\): box 0 .*\(object 0, \w+\) lies outside"
                                           r".*image 48x48.*bad_boxes="):
        read_voc(e.annotations, class_names=names_)
    s = read_voc(e.annotations, class_names=names_, bad_boxes="skip")
    assert len(s) == 2 and len(s[0].boxes) == len(driving[0].boxes) - 1 == len(s[0].labels)
    assert all(len(v) == len(s[0].labels) for v in s[0].flags.values())
    c = read_voc(e.annotations, class_names=names_, bad_boxes="clip")
    assert c[0].boxes[0, 2] == 48 and c.box_issues.n_clipped == 1

    # COCO: annotation 1 is far outside the 64x48 image
    _image(tmp_path / "coco" / "a.jpg", (64, 48))
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "height": 48, "width": 64}],
            "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 0},
                            {"id": 8, "image_id": 1, "category_id": 2, "bbox": [60, 40, 30, 30], "iscrowd": 0}],
            "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "bus"}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match=r"c.json: image 1 \(a.jpg\): box 1 .*\(annotation 1, id 8\) lies "
                                           r"outside.*image 64x48"):
        read_coco(tmp_path / "c.json", tmp_path / "coco")
    s = read_coco(tmp_path / "c.json", tmp_path / "coco", bad_boxes="skip")
    assert s[0].labels.tolist() == [0] and s.box_issues.n_skipped == 1
    c = read_coco(tmp_path / "c.json", tmp_path / "coco", bad_boxes="clip")
    assert c[0].boxes.tolist() == [[0, 0, 5, 5], [60, 40, 64, 48]] and c[0].labels.tolist() == [0, 1]


def _corrupt(path):
    """A JPEG whose header is intact but whose data stops a third of the way in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def test_decode_verify_lists_every_bad_image_of_a_training_folder(tmp_path, capsys):
    root = tmp_path / "train"
    for i in range(3):
        _image(root / "sub" / f"good{i}.png", (20, 10))
    for i in range(12):
        _corrupt(root / f"bad{i:02d}.jpg")
    # headers only: every file passes and the damage waits for training
    assert len(read_image_folder(root, recursive=True)) == 15
    with pytest.raises(DatasetError) as info:
        read_image_folder(root, recursive=True, verify="decode", progress=True)
    msg = str(info.value)
    assert msg.startswith(f"{root}: 12 of 15 images cannot be used (verify='decode')")
    assert "bad00.jpg: unreadable or truncated image" in msg and "bad09.jpg" in msg
    assert "bad10.jpg" not in msg and "... and 2 more" in msg and "on_bad='skip'" in msg
    assert "verify=decode" in capsys.readouterr().err  # the progress bar
    read = read_image_folder(root, recursive=True, verify="decode", on_bad="skip")
    assert [a.image.name for a in read] == ["good0.png", "good1.png", "good2.png"]
    assert len(read.skipped_images) == 12 and read.skipped_images[0].startswith(str(root / "bad00.jpg"))
    assert read[0].size == (10, 20) and "12 bad images skipped" in repr(read)
    with pytest.raises(ValueError, match="on_bad must be one of"):
        read_image_folder(root, on_bad="ignore")
    # class folders (the Stanford Cars car_data layout) too
    _image(tmp_path / "cars" / "a" / "1.png")
    _corrupt(tmp_path / "cars" / "b" / "2.jpg")
    _image(tmp_path / "cars" / "b" / "3.png")
    with pytest.raises(DatasetError, match=r"2.jpg: unreadable or truncated.*on_bad='skip'"):
        read_class_folders(tmp_path / "cars", verify="decode")
    read = read_class_folders(tmp_path / "cars", verify="decode", on_bad="skip")
    assert [(a.image.name, int(a.labels[0])) for a in read] == [("1.png", 0), ("3.png", 1)]
    # an annotated set lists every bad image too, not only the first
    _corrupt(tmp_path / "b1.jpg")
    _corrupt(tmp_path / "b2.jpg")
    (tmp_path / "l.json").write_text(json.dumps([{"name": "b1.jpg"}, {"name": "gone.jpg"}, {"name": "b2.jpg"}]))
    with pytest.raises(DatasetError, match=r"l.json: 3 of 3 images cannot be used(.|\n)*b1.jpg(.|\n)*gone.jpg: "
                                           r"image file not found(.|\n)*b2.jpg"):
        read_bdd100k(tmp_path / "l.json", tmp_path, verify="decode")


def test_paper_profile_training_folder_is_decoded_before_training(tmp_path, monkeypatch):
    from dinosal import zoo

    assert zoo.recipe("dino_driving", "paper").data == "image_folder"
    _image(tmp_path / "frames" / "ok.png", (40, 40))
    _corrupt(tmp_path / "frames" / "cut.jpg")
    monkeypatch.setenv(zoo.DATA_ENV, str(tmp_path))
    spec = zoo.TrainSpec("image_folder", {"folder": "frames"}, 2, None)
    with pytest.raises(DatasetError, match=r"cut.jpg: unreadable or truncated"):
        zoo.training_set(spec)


def test_readers_package_reexports_its_modules():
    import dinosal.data as data
    from dinosal.data import readers
    from dinosal.data.readers import bdd100k, coco, common, folders, stanford_cars, voc

    for name in readers.__all__:
        obj = getattr(readers, name)
        homes = [m for m in (common, bdd100k, stanford_cars, voc, coco, folders) if getattr(m, name, None) is obj]
        assert homes, name
    assert readers.load_rgb is common.load_rgb and readers.read_voc is voc.read_voc
    assert all(getattr(data, n) is getattr(readers, n) for n in data.__all__ if hasattr(readers, n))
