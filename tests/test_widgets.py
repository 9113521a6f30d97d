"""The saliency explorer driven through its callback, and the paper-style figure."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import timm
import torch
from matplotlib.figure import Figure

from dinosal.features import LastBlockTap
from dinosal.saliency import cls_attention, lost, tokencut
from dinosal.viz import PanelRow, panel_titles, saliency_figure, shared_norm
from dinosal.widgets import METHODS, SaliencyExplorer


class FakeSample:
    def __init__(self, image, boxes):
        self.image, self.boxes = image, boxes


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    models = {
        name: timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32,
                                dynamic_img_size=True, patch_size=8, depth=1).eval()
        for name in ("random_a", "random_b")
    }
    g = np.random.default_rng(0)
    images = [g.integers(0, 255, (40, 30, 3), dtype=np.uint8), g.integers(0, 255, (32, 48, 3), dtype=np.uint8)]
    samples = [FakeSample(images[0], np.array([[2, 3, 20, 30]], np.float32)), images[1]]
    return models, images, samples


def test_update_drives_every_method(setup):
    models, images, samples = setup
    ex = SaliencyExplorer(samples, models, patch=8)
    with LastBlockTap(models["random_b"]) as tap:
        f = tap(images[1])
    k = f.patches("k")[0]
    expected = {
        "attention head": cls_attention(f.attn[0], f.grid).heads[2],
        "attention mean": cls_attention(f.attn[0], f.grid).mean,
        "LOST degree": lost(k, f.grid, 8, f.image_size, k=5).inverse_degree,
        "LOST correlation": lost(k, f.grid, 8, f.image_size, k=5).correlation,
        "LOST composite": lost(k, f.grid, 8, f.image_size, k=5).composite,
        "TokenCut": tokencut(k, f.grid, 8, f.image_size, tau=0.1).eigvec,
    }
    for method in METHODS:
        view = ex.update(image=1, model="random_b", method=method, head=2, k=5, tau=0.1)
        assert view.map.shape == (4, 6)
        np.testing.assert_allclose(view.map, expected[method])
        assert isinstance(view.figure, Figure)
        assert (view.box is None) == method.startswith("attention")
    assert ex.update(method="LOST degree").box.tolist() == lost(k, f.grid, 8, f.image_size, k=5).box.tolist()
    assert ex.state.image == 1 and ex.state.k == 5


def test_k_is_clipped_and_errors_are_clear(setup):
    models, _, samples = setup
    ex = SaliencyExplorer(samples, models)
    view = ex.update(image=0, method="LOST composite", k=1000)
    assert view.state.k == 5 * 4                          # 40x30 px with patch 8: 5 x 4 patches
    with pytest.raises(ValueError, match="unknown controls"):
        ex.update(colour="red")
    with pytest.raises(ValueError, match="method must be one of"):
        ex.update(method="dino_seg")
    with pytest.raises(ValueError, match=r"head must be in \[0, 3\)"):
        ex.update(method="attention head", head=7)
    with pytest.raises(ValueError, match="patch size 8, but patch=16"):
        SaliencyExplorer(samples, models, patch=16)


def test_widget_controls_trigger_the_callback(setup):
    models, _, samples = setup
    ex = SaliencyExplorer(samples, models)
    w = ex.widget
    assert ex.last is not None and ex.last.state.method == "attention mean"
    ex.controls["method"].value = "TokenCut"
    assert ex.last.state.method == "TokenCut"
    ex.controls["model"].value = "random_b"
    ex.controls["tau"].value = 0.3
    assert ex.last.state.model == "random_b" and ex.last.state.tau == pytest.approx(0.3)
    ex.controls["image"].value = 1
    assert ex.last.map.shape == (4, 6)
    assert len(w.children) == 3
    assert ex.picture.value[:8] == b"\x89PNG\r\n\x1a\n"  # the figure, as PNG bytes
    before = ex.picture.value
    ex.controls["method"].value = "LOST degree" if "LOST degree" in METHODS else METHODS[0]
    assert ex.picture.value != before


def test_resize_mode_explorer(setup):
    models, _, samples = setup
    ex = SaliencyExplorer(samples, models, mode="resize")
    view = ex.update(image=0, method="TokenCut")
    assert view.map.shape == (5, 4)


def test_saliency_figure_layout_and_shared_norm(setup):
    models, images, _ = setup
    rows = []
    for name, m in models.items():
        with LastBlockTap(m) as tap:
            f = tap(images[0])
        k = f.patches("k")[0]
        rows.append(PanelRow(images[0], 8, cls_attention(f.attn[0], f.grid), lost(k, f.grid, 8, f.image_size, k=5),
                             tokencut(k, f.grid, 8, f.image_size), np.array([[2, 3, 20, 30]]), name))
    fig = saliency_figure(rows, heads=[0, 2])
    titles = panel_titles([0, 2])
    assert len(titles) == 1 + 2 + 6
    assert len(fig.axes) == 2 * len(titles)
    # the two head panels of both rows share one normalisation
    ncol = len(titles)
    ims = [fig.axes[r * ncol + c].get_images()[-1] for r in range(2) for c in (1, 2)]
    assert len(ims) == 4
    norm = shared_norm([r.attention.heads[h] for r in rows for h in (0, 2)])
    for im in ims:
        assert im.norm.vmin == pytest.approx(norm.vmin) and im.norm.vmax == pytest.approx(norm.vmax)
    # box panels hold the GT and the predicted rectangle
    box_axes = [fig.axes[r * ncol + c] for r in range(2) for c in range(ncol) if titles[c].endswith("box")]
    assert len(box_axes) == 4 and all(len(ax.patches) == 2 for ax in box_axes)


def test_explorer_draws_each_method_on_the_book_scale_of_its_kind(setup):
    """The explorer's colours follow the figures' rules (dinosal.viz_panels): one log scale labelled
    in degrees for LOST's inverse degree and composite, attention relative to the head's mean."""
    from matplotlib.colors import LogNorm

    from dinosal import viz_panels

    models, _, samples = setup
    ex = SaliencyExplorer(samples, models)

    def drawn(view):
        ax = view.figure.axes[0]
        labels = [a.get_ylabel() for a in view.figure.axes if a.get_label() == "<colorbar>"]
        return ax.get_images()[-1], labels

    im, labels = drawn(ex.update(image=0, method="LOST degree", k=5))
    assert isinstance(im.norm, LogNorm) and labels == ["degree (log)"]
    im, labels = drawn(ex.update(method="attention mean"))
    assert im.norm is viz_panels.ATTENTION.norm and labels == [viz_panels.ATTENTION.label]
    im, _ = drawn(ex.update(method="LOST composite"))
    assert np.ma.getmaskarray(im.get_array()).any()          # cells outside LOST's region stay uncoloured
    im, _ = drawn(ex.update(method="TokenCut"))
    assert im.norm is viz_panels.EIGVEC.norm
    # a fixed degree scale (e.g. a chapter's, over all its images) is used for every image and model
    fixed = viz_panels.degree_kind([np.array([[0.01, 0.5]])])
    ex = SaliencyExplorer(samples, models, degree=fixed)
    for image, model in ((0, "random_a"), (1, "random_b")):
        im, _ = drawn(ex.update(image=image, model=model, method="LOST degree", k=5))
        assert im.norm is fixed.norm
    im, _ = drawn(ex.update(method="LOST composite"))
    assert (im.norm.vmin, im.norm.vmax) == (fixed.norm.vmin, fixed.norm.vmax)
