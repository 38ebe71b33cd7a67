"""nml._infra.registry: names -> factories, prefix families, errors naming the choices; and the six
registries built on it (backbones, image and text encoders, tuners, noisy-label methods, datasets)."""

import ast
import inspect

import pytest

from nml._infra import registry as registry_module
from nml._infra.registry import Registry, UnknownNameError


def make_registry() -> Registry:
    reg = Registry("widget")
    reg.register("square", lambda size=1: ("square", size), description="four equal sides")

    @reg.register("circle", kind="round")
    def circle(radius: float = 1.0):
        """A circle.

        More text that is not the description.
        """
        return ("circle", radius)

    @reg.register_family("poly:", pattern="poly:<sides>", description="a regular polygon")
    def polygon(rest: str):
        if not rest.isdigit():
            raise ValueError(f"{rest!r} is not a number of sides")
        return lambda: ("polygon", int(rest))

    return reg


def test_register_create_and_describe():
    reg = make_registry()
    assert reg.create("square", size=3) == ("square", 3)
    assert reg.create("circle") == ("circle", 1.0)
    assert reg.get("circle").description == "A circle."  # the docstring's first line
    assert reg.get("circle").metadata == {"kind": "round"}
    assert reg.names() == ["circle", "square"]
    assert reg.names("s*") == ["square"]
    assert reg.describe() == [("circle", "A circle."), ("square", "four equal sides"),
                              ("poly:<sides>", "a regular polygon")]
    assert reg.describe("poly*") == [("poly:<sides>", "a regular polygon")]


def test_duplicates_are_refused():
    reg = make_registry()
    with pytest.raises(ValueError, match="widget 'square' is already registered"):
        reg.register("square", lambda: None)
    with pytest.raises(ValueError, match="family 'poly:' is already registered"):
        reg.register_family("poly:", lambda rest: None, pattern="poly:<n>", description="")
    with pytest.raises(TypeError, match="must be callable"):
        reg.register("triangle", 3)


def test_unknown_names_list_the_choices():
    reg = make_registry()
    with pytest.raises(KeyError, match=r"unknown widget 'hexagon': expected one of "
                                       r"\['circle', 'square', 'poly:<sides>'\]") as err:
        reg.check("hexagon")
    assert isinstance(err.value, ValueError)  # pydantic validators report ValueErrors
    assert str(err.value).startswith("unknown widget")  # not quoted like a plain KeyError
    with pytest.raises(UnknownNameError, match="not a string"):
        reg.check(7)
    assert "square" in reg and "hexagon" not in reg


def test_prefix_families():
    reg = make_registry()
    assert reg.check("poly:6") == "poly:6"
    assert reg.create("poly:6") == ("polygon", 6)
    assert reg.get("poly:6").description == "a regular polygon"
    assert reg.names() == ["circle", "square"]  # members are not listed, the pattern is
    with pytest.raises(UnknownNameError, match=r"unknown widget 'poly:six' \('six' is not a number of sides\): "
                                              r"expected one of .*'poly:<sides>'"):
        reg.check("poly:six")


def test_registered_names_win_and_longer_prefixes_first():
    reg = Registry("thing")
    reg.register("any:special", lambda: "registered")
    reg.register_family("", lambda rest: (lambda: f"catch-all {rest}") if rest.startswith("t") else None,
                        pattern="<t-name>", description="names starting with t")
    reg.register_family("any:", lambda rest: lambda: f"family {rest}", pattern="any:<x>", description="")
    assert reg.create("any:special") == "registered"
    assert reg.create("any:thing") == "family thing"  # "any:" is tried before the catch-all
    assert reg.create("tree") == "catch-all tree"
    with pytest.raises(UnknownNameError, match="unknown thing 'oak'"):
        reg.create("oak")  # the catch-all declined it


def test_registry_imports_nothing_else_from_nml():
    tree = ast.parse(inspect.getsource(registry_module))
    modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in modules if m and m.split(".")[0] == "nml"]


# ---- the six registries ------------------------------------------------------------------------
def test_backbones():
    from nml.models.backbones import BACKBONE_REGISTRY, create_backbone, list_backbones

    assert list_backbones() == ["nml_resnet4", "nml_resnet4_half", "nml_resnet4_half_gn"]
    assert list_backbones("*half") == ["nml_resnet4_half"]
    assert BACKBONE_REGISTRY.check("resnet18") == "resnet18"  # any timm name
    assert create_backbone("nml_resnet4_half", in_chans=1).num_features == 256
    with pytest.raises(KeyError, match=r"unknown backbone 'resnet-9000': expected one of "
                                       r"\['nml_resnet4', 'nml_resnet4_half', 'nml_resnet4_half_gn', '<timm model name>'\]"):
        create_backbone("resnet-9000")


def test_image_encoders():
    from nml.models.image_encoders import (
        ENCODER_REGISTRY,
        TimmEncoder,
        create_encoder,
        list_encoders,
    )

    assert list_encoders() == ["efficientnet-lite0", "opennsfw"]
    assert ENCODER_REGISTRY.check("hf:facebook/vit-msn-base") == "hf:facebook/vit-msn-base"
    assert isinstance(create_encoder("resnet10t", pretrained=False, image_size=99), TimmEncoder)
    with pytest.raises(KeyError, match=r"unknown encoder 'hf:': expected one of .*'hf:<hub name or folder>'"):
        ENCODER_REGISTRY.check("hf:")


def test_text_encoders():
    from nml.models.text_encoders import TEXT_ENCODER_REGISTRY, list_text_encoders

    assert list_text_encoders() == ["all-minilm-l6-v2", "smollm2-135m"]
    assert [p for p, _ in TEXT_ENCODER_REGISTRY.describe("*:*")] == [
        "hf:<model id or path>", "st:<model id or path>", "callable:<module>:<function>"]
    with pytest.raises(KeyError, match=r"unknown text encoder 'callable:mod' \(callable: needs <module>:<function>"):
        TEXT_ENCODER_REGISTRY.check("callable:mod")


def test_tuners_and_methods():
    from nml.estimators.frozen import TUNER_REGISTRY, create_tuner, register_tuner
    from nml.estimators.noisy_labels import (
        METHOD_REGISTRY,
        NoisyLinearProbe,
        create_method,
        register_method,
    )

    assert create_tuner("lp", epochs=3).epochs == 3
    with pytest.raises(ValueError, match="tuner 'lp' is already registered"):
        register_tuner("lp", object)
    assert TUNER_REGISTRY.get("nmtune").description.startswith("NMTune")
    probe = create_method("elr-lp", epochs=2)
    assert isinstance(probe, NoisyLinearProbe) and probe.loss == "elr" and probe.epochs == 2
    assert create_method("elr-lp", loss="ce").loss == "ce"  # keywords win over the registered ones
    assert METHOD_REGISTRY.get("turn").metadata == {"input": "images"}
    with pytest.raises(ValueError, match="input must be one of"):
        register_method("co-teaching", object, input="pixels")


def test_datasets():
    from nml.data.catalog import DATASET_REGISTRY, get_dataset, list_datasets, register_dataset

    assert {"mnist-5k", "cifar10", "imagenet-1k"} <= set(list_datasets())
    assert list_datasets("domainnet-*") == ["domainnet-clipart", "domainnet-painting", "domainnet-real",
                                            "domainnet-sketch"]
    assert get_dataset("cifar10").source == "paper" and get_dataset("mnist-5k").assets == ("mnist-5k",)
    fog = get_dataset("fashion-mnist-c/fog")
    assert (fog.name, fog.source, fog.assets) == ("fashion-mnist-c/fog", "offline", ("fashion-mnist",))
    with pytest.raises(KeyError, match=r"unknown corruption 'sunburn'.*'fashion-mnist-c/<corruption>'"):
        DATASET_REGISTRY.check("fashion-mnist-c/sunburn")
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(get_dataset("cifar10"))
