import numpy as np
import pytest
import torch

from nml._infra.training import OptimConfig, random_crop_flip
from nml.models.pretrain import (
    ContrastiveTrainer,
    PretrainSpec,
    SupervisedTrainer,
    captions_for,
)


def _data(n=96, size=16, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    # class-dependent blobs so training has signal
    x = torch.randn(n, 1, size, size, generator=g) * 0.3
    for c in range(classes):
        x[y == c, :, c * 3 : c * 3 + 4, c * 3 : c * 3 + 4] += 2.0
    return x, y.numpy()


def _spec(epochs=2, track="supervised", seed=0, extra=None):
    optim = OptimConfig(epochs=epochs, batch_size=32, optimizer="sgd", lr=0.05)
    return PretrainSpec(track=track, model="nml_resnet4_half", data_id="toy", in_chans=1, num_classes=4,
                        noise_ratio=0.1, seed=seed, optim=optim.model_dump(), augment=True, extra=extra or {}), optim


def _supervised(root, spec, optim, cls=SupervisedTrainer):
    x, y = _data()
    return cls(spec, optim, torch.device("cpu"), root, x_train=x, y_train=y, x_test=x[:32], y_test=y[:32])


def _weights(ck):
    return {k: v.clone() for k, v in ck.backbone.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_weights_and_cache_reuse(tmp_path, caplog):
    spec, optim = _spec()
    first = _supervised(tmp_path / "a", spec, optim).run()
    second = _supervised(tmp_path / "b", spec, optim).run()
    assert _same(_weights(first), _weights(second))
    assert first.history == second.history and len(first.history) == 2
    caplog.set_level("DEBUG", logger="nml.models.pretrain")  # a reused checkpoint is a detail
    reused = _supervised(tmp_path / "a", spec, optim).run()
    assert "reusing checkpoint" in caplog.text
    assert _same(_weights(first), _weights(reused))


def test_different_seed_different_weights(tmp_path):
    a = _supervised(tmp_path, *_spec(seed=0)).run()
    b = _supervised(tmp_path, *_spec(seed=1)).run()
    assert not _same(_weights(a), _weights(b))
    assert a.path != b.path


def test_killed_run_resumes_to_identical_weights(tmp_path):
    spec, optim = _spec(epochs=3)
    reference = _supervised(tmp_path / "ref", spec, optim).run()

    class Killed(SupervisedTrainer):
        steps = 0

        def step(self, xb, idx):
            Killed.steps += 1
            if Killed.steps == 5:  # in the second epoch (3 batches an epoch)
                raise KeyboardInterrupt
            return super().step(xb, idx)

    with pytest.raises(KeyboardInterrupt):
        _supervised(tmp_path / "run", spec, optim, cls=Killed).run()
    partial = spec.path(tmp_path / "run").with_suffix(".partial.pt")
    assert partial.exists() and not spec.path(tmp_path / "run").exists()
    assert torch.load(partial, weights_only=False)["epoch"] == 1

    resumed = _supervised(tmp_path / "run", spec, optim).run()
    assert not partial.exists()
    assert _same(_weights(reference), _weights(resumed))
    assert [r["test_acc"] for r in reference.history] == [r["test_acc"] for r in resumed.history]


def test_torn_checkpoint_is_retrained(tmp_path):
    spec, optim = _spec(epochs=1)
    ck = _supervised(tmp_path, spec, optim).run()
    ck.path.write_bytes(ck.path.read_bytes()[:100])  # a torn file
    again = _supervised(tmp_path, spec, optim).run()
    assert _same(_weights(ck), _weights(again))


def test_supervised_training_learns_signal(tmp_path):
    spec, optim = _spec(epochs=4)
    ck = _supervised(tmp_path, spec, optim).run()
    assert ck.final["test_acc"] > 0.5  # 4 classes: chance is 0.25
    assert ck.history[-1]["train_loss"] < ck.history[0]["train_loss"]


def test_contrastive_trainer_runs_and_zero_shot_beats_chance(tmp_path):
    x, y = _data(n=128)
    classes = ["a", "b", "c", "d"]
    ids, captions = captions_for(y, classes, ["{label} one", "{label} two"], seed=0)
    rng = np.random.default_rng(0)
    class_vecs = rng.normal(size=(4, 16))
    emb = np.stack([class_vecs[i % 4] + 0.1 * rng.normal(size=16) for i in range(len(captions))]).astype(np.float32)
    per_class = emb.reshape(2, 4, 16).transpose(1, 0, 2)
    spec, _ = _spec(epochs=6, track="contrastive")
    optim = OptimConfig(epochs=6, batch_size=32, optimizer="adamw", lr=3e-3, weight_decay=0.0)
    trainer = ContrastiveTrainer(spec, optim, torch.device("cpu"), tmp_path, x_train=x, caption_ids=ids,
                                 caption_embeddings=emb, x_test=x, y_test=y, class_prototypes_text=per_class,
                                 embed_dim=16, temperature_init=0.07)
    ck = trainer.run()
    assert ck.final["test_acc"] > 0.4
    assert set(ck.heads) >= {"image_proj", "text_proj"}


def test_captions_index_templates_and_classes():
    y = np.array([0, 1, 2, 2, 1])
    ids, captions = captions_for(y, ["Shirt", "Bag", "Coat"], ["a {label}", "the {label}"], seed=3)
    assert captions == ["a shirt", "a bag", "a coat", "the shirt", "the bag", "the coat"]
    assert all(captions[i].endswith(["shirt", "bag", "coat"][c]) for i, c in zip(ids, y, strict=True))
    again, _ = captions_for(y, ["Shirt", "Bag", "Coat"], ["a {label}", "the {label}"], seed=3)
    assert np.array_equal(ids, again)


def test_random_crop_flip_is_seeded_and_shape_preserving():
    x = torch.randn(8, 1, 12, 12)
    a = random_crop_flip(x, torch.Generator().manual_seed(0))
    b = random_crop_flip(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, x)
