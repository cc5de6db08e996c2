import pytest
import torch

from methods.backbones import PretrainedWeightsUnavailable, create_backbone, list_backbones
from methods.registry import UnknownNameError


@pytest.mark.parametrize("name,image,input_size", [
    ("lenet5", 32, None), ("lenet5", 96, None), ("tiny", 32, None),
    ("mobilenet", 32, 64), ("efficientnet_b2", 32, 64), ("timm:resnet10t", 32, None),
])
def test_output_shape_at_resolution(name, image, input_size):
    model = create_backbone(name, num_classes=7, image_size=image, input_size=input_size, pretrained=False).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, image, image))
    assert out.shape == (2, 7)
    assert model.input_size == (input_size or image)


def test_resize_happens_inside_the_wrapper():
    model = create_backbone("mobilenet", 10, image_size=32, input_size=96, pretrained=False)
    seen = []
    model.body.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape))
    model(torch.randn(1, 3, 32, 32))
    assert seen[0][-2:] == (96, 96)


def test_timm_names_are_the_papers():
    mobilenet = create_backbone("mobilenet", 10, pretrained=False)
    effnet = create_backbone("efficientnet_b2", 10, pretrained=False)
    assert mobilenet.body.pretrained_cfg["architecture"] == "mobilenetv1_100"
    assert effnet.body.pretrained_cfg["architecture"] == "tf_efficientnet_b2"
    assert effnet.body.pretrained_cfg["tag"] == "ns_jft_in1k"


def test_pretrained_offline_names_the_fixes(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(PretrainedWeightsUnavailable) as err:
        create_backbone("mobilenet", 10, pretrained=True)
    assert "--no-pretrained" in str(err.value) and "weights_path" in str(err.value)


def test_local_weights_file_is_used(tmp_path):
    source = create_backbone("mobilenet", 10, pretrained=False)
    path = tmp_path / "mobilenet.pth"
    torch.save(source.body.state_dict(), path)
    loaded = create_backbone("mobilenet", 10, weights_path=str(path))
    for key, value in source.body.state_dict().items():
        assert torch.equal(value, loaded.body.state_dict()[key])


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(PretrainedWeightsUnavailable, match="does not exist"):
        create_backbone("mobilenet", 10, weights_path=str(tmp_path / "nope.pth"))


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(UnknownNameError, match="lenet5"):
        create_backbone("lenet6", 10)
    assert {"lenet5", "mobilenet", "efficientnet_b2"} <= set(list_backbones())
