import pytest
import yaml

from nml._infra.schema import ParamsError
from nml.config import (
    PROFILES,
    apply_overrides,
    dump_params,
    load_params,
    load_raw,
    validate_params,
)


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_validates(profile, tmp_path):
    raw, _ = load_raw(profile)
    # paper names a data_root (/datasets) this machine may lack: point it at a folder that exists
    overrides = [f"data_root={tmp_path}"] if raw.get("data_root") is not None else []
    params = load_params(profile, overrides=overrides, require_data=False)
    assert params.profile == profile
    # the dumped params round-trip through the schema unchanged
    again = validate_params(yaml.safe_load(dump_params(params)))
    assert again == params


def test_default_is_cpu():
    assert load_params(require_data=False).profile == "cpu"


def _cpu_raw():
    raw, _ = load_raw("cpu")
    return raw


def _error(raw) -> str:
    with pytest.raises(ParamsError) as info:
        validate_params(raw, "test.yaml")
    return str(info.value)


def test_unknown_key_is_named():
    raw = _cpu_raw()
    raw["pretrain"]["supervised"]["epochz"] = 3
    msg = _error(raw)
    assert "pretrain.supervised.epochz" in msg and "unknown key" in msg


def test_noise_ratio_out_of_range_is_named():
    raw = _cpu_raw()
    raw["pretrain"]["supervised"]["noise_ratios"] = [0.0, 1.0]
    msg = _error(raw)
    assert "pretrain.supervised.noise_ratios[1]" in msg and "less than 1" in msg


def test_negative_noise_ratio_is_refused():
    raw = _cpu_raw()
    raw["pretrain"]["contrastive"]["noise_ratios"] = [-0.1]
    assert "pretrain.contrastive.noise_ratios[0]" in _error(raw)


def test_wrong_type_is_named():
    raw = _cpu_raw()
    raw["pretrain"]["supervised"]["optim"]["epochs"] = "many"
    msg = _error(raw)
    assert "pretrain.supervised.optim.epochs" in msg and "integer" in msg


def test_unknown_dataset_is_named():
    raw = _cpu_raw()
    raw["spectral"]["id_tasks"] = ["mnist-5k", "mnist-6k"]
    msg = _error(raw)
    assert "spectral.id_tasks[1]" in msg and "mnist-6k" in msg


def test_unknown_corruption_is_named():
    raw = _cpu_raw()
    raw["spectral"]["ood"][3]["test"] = ["fashion-mnist-c/sunburn"]
    assert "sunburn" in _error(raw)


def test_unknown_model_is_named():
    raw = _cpu_raw()
    raw["pretrain"]["model"] = "resnet-9000"
    assert "pretrain.model" in _error(raw)


def test_caption_template_must_name_the_label():
    raw = _cpu_raw()
    raw["pretrain"]["contrastive"]["caption_templates"] = ["a photo."]
    assert "{label}" in _error(raw)


def test_missing_dataset_path_fails_before_running(tmp_path):
    raw, _ = load_raw("paper")
    raw["data_root"] = str(tmp_path / "nowhere")
    (tmp_path / "nowhere").mkdir()  # it exists, but holds no dataset
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=r"imagenet-1k: no folder .*nowhere"):
        load_params(path=path)


@pytest.mark.parametrize("profile", PROFILES)
def test_data_root_that_does_not_exist_is_refused_on_every_profile(profile, tmp_path):
    raw, _ = load_raw(profile)
    raw["data_root"] = str(tmp_path / "nonexistent" / "data")
    msg = _error(raw)
    assert "data_root" in msg and str(tmp_path / "nonexistent" / "data") in msg and "does not exist" in msg
    # also when only the loader would have looked for data (require_data=False, e.g. a dry run)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=r"data_root: .*nonexistent/data does not exist"):
        load_params(path=path, require_data=False)
    with pytest.raises(ParamsError, match="data_root"):
        load_params(profile, overrides=[f"data_root={tmp_path / 'typo'}"], require_data=False)
    (tmp_path / "a_file").write_text("")
    raw["data_root"] = str(tmp_path / "a_file")
    assert "is not a folder" in _error(raw)
    raw["data_root"] = str(tmp_path)
    assert validate_params(raw).data_root == tmp_path


def test_overrides_parse_yaml_values():
    raw = apply_overrides(_cpu_raw(), ["pretrain.supervised.seeds=[0, 1, 2, 4]", "spectral.probe.lr=0.5"])
    params = validate_params(raw)
    assert params.pretrain.supervised.seeds == [0, 1, 2, 4]
    assert params.spectral.probe.lr == 0.5


def test_override_of_unknown_key_is_refused():
    raw = apply_overrides(_cpu_raw(), ["spectral.probe.learning_rate=0.5"])
    assert "spectral.probe.learning_rate" in _error(raw)


def test_override_into_a_value_is_refused():
    with pytest.raises(ParamsError, match="pretrain.model is not a section"):
        apply_overrides(_cpu_raw(), ["pretrain.model.depth=3"])


def test_override_without_equals_is_refused():
    with pytest.raises(ParamsError, match="expected section.key=value"):
        apply_overrides(_cpu_raw(), ["pretrain.model"])


def test_unknown_profile_lists_profiles():
    with pytest.raises(ParamsError, match="unknown profile 'gpu'"):
        load_params("gpu")


def test_section_lookup():
    params = load_params("smoke", require_data=False)
    assert params.section("pretrain") is params.pretrain
    with pytest.raises(KeyError, match="no params section"):
        params.section("profile")


def test_nmtune_section_refers_to_what_01_and_02_provide():
    raw = _cpu_raw()
    raw["nmtune"]["ablation"]["checkpoints"]["noise_ratios"] = [0.0, 0.15]
    raw["nmtune"]["runtime"]["task"] = "uci-digitz"
    raw["nmtune"]["real_models"]["encoders"] = ["efficientnet-lite0", "resnet-9000"]
    raw["nmtune"]["real_models"]["image_size"] = {"opennsfw2": 224}
    msg = _error(raw)
    assert "nmtune.ablation.checkpoints.noise_ratios: [0.15] not trained by pretrain.supervised.noise_ratios" in msg
    assert "nmtune.runtime.task: 'uci-digitz' is not a training domain" in msg
    assert "nmtune.real_models.encoders[1]: unknown encoder 'resnet-9000'" in msg
    assert "nmtune.real_models.image_size: ['opennsfw2'] are not in nmtune.real_models.encoders" in msg


def test_nmtune_tuner_settings_are_validated():
    raw = _cpu_raw()
    raw["nmtune"]["tuner"] = {"preset": "fancy", "epochs": 0}
    raw["nmtune"]["methods"] = ["lp", "svm"]
    raw["nmtune"]["ablation"]["loss_weights"] = [[1.0, -0.1, 0.0]]
    msg = _error(raw)
    assert "nmtune.tuner.preset" in msg and "'paper' or 'official'" in msg
    assert "nmtune.tuner.epochs" in msg
    assert "nmtune.methods[1]" in msg
    assert "nmtune.ablation.loss_weights[0][1]" in msg


def test_disabled_track_cannot_be_tuned():
    raw = _cpu_raw()
    raw["pretrain"]["contrastive"]["enabled"] = False
    assert "nmtune.checkpoints.tracks: track 'contrastive' is disabled" in _error(raw)
