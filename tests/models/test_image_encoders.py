"""Encoders behind one interface: torch modules, an ONNX black box, a plain callable."""

import numpy as np
import pytest
import torch

from nml.models.features import extract_features
from nml.models.image_encoders import (
    ENCODER_REGISTRY,
    CallableEncoder,
    OnnxEncoder,
    TimmEncoder,
    create_encoder,
    encoder_identity,
    to_rgb_unit,
)


def test_to_rgb_unit_maps_gray_pm1_and_undoes_normalisation():
    gray = torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 1, 3)
    rgb = to_rgb_unit(gray)
    assert rgb.shape == (1, 3, 1, 3)
    assert torch.allclose(rgb[0, :, 0], torch.tensor([0.0, 0.5, 1.0]).expand(3, 3))
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.2, 0.2)
    x = torch.rand(2, 3, 4, 4)
    normalised = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(to_rgb_unit(normalised, mean, std), x, atol=1e-6)
    with pytest.raises(ValueError, match="B×C×H×W"):
        to_rgb_unit(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        to_rgb_unit(torch.zeros(1, 2, 4, 4))


def test_unknown_encoder_names_the_choices():
    with pytest.raises(KeyError, match="efficientnet-lite0"):
        ENCODER_REGISTRY.check("no-such-encoder")
    assert ENCODER_REGISTRY.check("opennsfw") == "opennsfw"
    assert ENCODER_REGISTRY.check("resnet18") == "resnet18"  # any timm name


def _tiny_onnx(path, weight: np.ndarray) -> None:
    """A real ONNX file: NHWC input -> mean over H, W -> MatMul (internal 'feat') -> Softmax output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", ["input:0", "axes"], ["pooled"], keepdims=0),
        helper.make_node("MatMul", ["pooled", "W"], ["feat"]),
        helper.make_node("Softmax", ["feat"], ["outputs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input:0", TensorProto.FLOAT, ["N", 8, 8, 3])],
        [helper.make_tensor_value_info("outputs", TensorProto.FLOAT, ["N", weight.shape[1]])],
        initializer=[numpy_helper.from_array(weight.astype(np.float32), "W"),
                     numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))


def test_onnx_encoder_reads_an_internal_node_as_features(tmp_path):
    w = np.random.default_rng(0).normal(size=(3, 5))
    path = tmp_path / "tiny.onnx"
    _tiny_onnx(path, w)
    enc = OnnxEncoder(path, output="feat", size=8, mean_bgr=(10.0, 20.0, 30.0), threads=1)
    x = torch.rand(4, 1, 6, 6) * 2 - 1
    feats = enc(x).numpy()
    assert feats.shape == (4, 5)
    # what the model should see: resized to 8×8, gray->RGB->BGR in 0-255 minus the mean
    rgb = torch.nn.functional.interpolate((x + 1) / 2, size=(8, 8), mode="bilinear", antialias=True,
                                          align_corners=False).clamp(0, 1) * 255
    bgr_mean = rgb.mean((2, 3)).numpy().repeat(3, axis=1) - np.array([10.0, 20.0, 30.0])
    np.testing.assert_allclose(feats, bgr_mean @ w, rtol=1e-4, atol=1e-3)
    assert enc.identity.startswith("onnx:") and enc.identity.endswith(":feat")


def test_callable_encoder_is_cached_by_its_identity(nml_home):
    calls = []

    def api(batch):
        calls.append(len(batch))
        return batch.reshape(len(batch), -1)[:, :3] * 2

    x = torch.rand(10, 1, 4, 4)
    enc = CallableEncoder("v1", api)
    first = extract_features(enc, x, data_id="d", split="train", transform="raw", batch_size=4)
    assert first.shape == (10, 3) and sum(calls) == 10
    again = extract_features(enc, x, data_id="d", split="train", transform="raw", batch_size=4)
    np.testing.assert_array_equal(first, again)
    assert sum(calls) == 10  # read back, not called again
    extract_features(CallableEncoder("v2", api), x, data_id="d", split="train", transform="raw")
    assert sum(calls) == 20  # a new identity never reuses v1's features


def test_callable_encoder_rejects_bad_output():
    enc = CallableEncoder("bad", lambda b: np.zeros((len(b) + 1, 2)))
    with pytest.raises(ValueError, match="expected \\(3, D\\)"):
        enc(torch.zeros(3, 1, 2, 2))
    with pytest.raises(TypeError, match="identity"):
        encoder_identity(object())


def test_timm_encoder_renormalises_for_its_own_config():
    torch.manual_seed(0)
    enc = TimmEncoder("resnet10t", pretrained=False).eval()
    with torch.no_grad():
        feats = enc(torch.rand(2, 1, 16, 16) * 2 - 1)
    assert feats.shape == (2, enc.dim)
    assert enc.transform_id.startswith("timm-resnet10t-")


def test_packaged_efficientnet_lite0_gives_1280_d_features():
    enc = create_encoder("efficientnet-lite0", image_size=32)
    with torch.no_grad():
        a = enc(torch.rand(3, 1, 28, 28) * 2 - 1)
        b = enc(torch.rand(3, 1, 28, 28) * 2 - 1)
    assert a.shape == (3, 1280) and torch.isfinite(a).all()
    assert not torch.allclose(a, b)  # the features depend on the input
    assert len(encoder_identity(enc)) == 64


def test_packaged_opennsfw_is_a_black_box_with_1024_d_features():
    enc = create_encoder("opennsfw")
    feats = enc(torch.rand(2, 1, 32, 32) * 2 - 1)
    assert feats.shape == (2, 1024) and torch.isfinite(feats).all()
    assert not isinstance(enc, torch.nn.Module)  # nml never holds its weights
