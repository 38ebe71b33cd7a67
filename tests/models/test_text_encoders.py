"""Text encoders: tiny offline BERT / GPT-2, callables, pair features, the resumable cache, the registry."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import nml.models.text_encoders as te  # noqa: E402
from nml._infra.cache import stable_hash  # noqa: E402
from nml.models.text_encoders import (  # noqa: E402
    TEXT_ENCODER_REGISTRY,
    CallableEncoder,
    SentenceTransformerEncoder,
    TextEncoder,
    TransformerEncoder,
    cached_text_embeddings,
    create_text_encoder,
    encode_split,
    list_text_encoders,
    text_embeddings_path,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

WORDS = ("the a cat dog sat on mat and ran far away quickly today big small red blue green "
         "house tree bird flew over hill").split()
TEXTS = [
    "the cat sat on the mat",
    "dog",
    "a big red dog ran far away quickly today over the green hill",
    "blue bird",
    "the small house and the big tree",
    "cat",
    "a bird flew over the house and the tree and the hill today",
    "red",
    "the dog and the cat",
    "green tree",
]


# ---- tiny offline models ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(str(path / "vocab.txt"))
    assert tokenizer("the cat")["input_ids"] == [2, 5, 7, 3]  # the vocab really loaded
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, initializer_range=0.2)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny-gpt2")
    vocab = {w: i for i, w in enumerate(["<unk>", "<eos>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>")
    assert tokenizer.pad_token is None  # the encoder must supply one
    torch.manual_seed(0)
    config = GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=len(vocab), n_positions=64,
                        bos_token_id=1, eos_token_id=1, initializer_range=0.2)
    GPT2Model(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory, tiny_bert):
    """RoBERTa derives position ids from input ids (offset by its pad id): padding-aware by itself."""
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    path = tmp_path_factory.mktemp("tiny-roberta")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert, local_files_only=True)
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=66, pad_token_id=tokenizer.pad_token_id,
                           initializer_range=0.2)
    RobertaModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(params=["bert", "gpt2"])
def tiny(request, tiny_bert, tiny_gpt2):
    return {"bert": tiny_bert, "gpt2": tiny_gpt2}[request.param]


def _reference_hidden(path, texts, layer=-1):
    """Per-text hidden states of ``layer`` (unpadded, one text at a time) straight from transformers."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    out = []
    with torch.no_grad():
        for t in texts:
            enc = tokenizer(t, return_tensors="pt")
            out.append(model(**enc, output_hidden_states=True).hidden_states[layer][0].numpy())
    return out


# ---- TransformerEncoder ----------------------------------------------------------------------
def test_shape_dtype_and_protocol(tiny):
    enc = create_text_encoder(f"hf:{tiny}", batch_size=4)
    assert isinstance(enc, TransformerEncoder) and isinstance(enc, TextEncoder)
    out = enc.encode(TEXTS)
    assert out.shape == (len(TEXTS), 16) and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert enc.encode([]).shape == (0, 16)


@pytest.mark.parametrize("layer", [-1, 0])
def test_mean_pooling_is_masked_mean_of_hidden_states(tiny, layer):
    from transformers import AutoModel, AutoTokenizer

    out = create_text_encoder(f"hf:{tiny}", layer=layer, batch_size=3).encode(TEXTS)
    # a padded batch, pooled by hand with the attention mask
    tokenizer = AutoTokenizer.from_pretrained(tiny, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    model = AutoModel.from_pretrained(tiny, local_files_only=True).eval()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch, output_hidden_states=True).hidden_states[layer].numpy()
    mask = batch["attention_mask"].numpy()[..., None].astype(np.float32)
    expected = (hidden * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    # and the unpadded per-text means agree too
    singles = np.stack([h.mean(0) for h in _reference_hidden(tiny, TEXTS, layer)])
    np.testing.assert_allclose(out, singles, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "last", "cls"])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_embedding_does_not_depend_on_batch(tiny, pooling, padding_side):
    one = create_text_encoder(f"hf:{tiny}", pooling=pooling, padding_side=padding_side, batch_size=1)
    eight = create_text_encoder(f"hf:{tiny}", pooling=pooling, padding_side=padding_side, batch_size=8)
    a, b = one.encode(TEXTS), eight.encode(TEXTS)
    assert eight._tokenizer.padding_side == padding_side
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # texts of different lengths were really padded together, and embeddings differ between texts
    assert len({len(t.split()) for t in TEXTS[:8]}) > 1
    assert np.abs(a[0] - a[1]).max() > 1e-3


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_last_and_cls_pooling_pick_the_real_end_tokens(tiny, padding_side):
    ref = _reference_hidden(tiny, TEXTS)
    last = create_text_encoder(f"hf:{tiny}", pooling="last", padding_side=padding_side, batch_size=5).encode(TEXTS)
    cls = create_text_encoder(f"hf:{tiny}", pooling="cls", padding_side=padding_side, batch_size=5).encode(TEXTS)
    np.testing.assert_allclose(last, np.stack([h[-1] for h in ref]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cls, np.stack([h[0] for h in ref]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_roberta_style_positions_are_left_to_the_model(tiny_roberta, padding_side):
    enc = create_text_encoder(f"hf:{tiny_roberta}", padding_side=padding_side, batch_size=8)
    out = enc.encode(TEXTS)
    assert not enc._pass_positions
    np.testing.assert_allclose(out, np.stack([h.mean(0) for h in _reference_hidden(tiny_roberta, TEXTS)]),
                               rtol=1e-5, atol=1e-5)


def test_decoder_without_pad_token_pads_with_eos(tiny_gpt2):
    enc = create_text_encoder(f"hf:{tiny_gpt2}", batch_size=4)
    enc.encode(TEXTS[:4])
    assert enc._tokenizer.pad_token == enc._tokenizer.eos_token == "<eos>"


def test_max_length_truncates_long_texts_only(tiny):
    full = create_text_encoder(f"hf:{tiny}", batch_size=4)
    short = create_text_encoder(f"hf:{tiny}", batch_size=4, max_length=6)
    a, b = full.encode(TEXTS), short.encode(TEXTS)
    n_tokens = [len(full._tokenizer(t)["input_ids"]) for t in TEXTS]
    long = np.array(n_tokens) > 6
    assert long.any() and (~long).any()
    np.testing.assert_allclose(a[~long], b[~long], rtol=1e-5, atol=1e-5)
    assert (np.abs(a[long] - b[long]).max(axis=1) > 1e-4).all()


def test_order_restored_after_length_sorting(tiny, monkeypatch):
    enc = create_text_encoder(f"hf:{tiny}", batch_size=3)
    seen = []
    original = enc._embed_batch

    def spy(texts):
        seen.append(texts)
        return original(texts)

    monkeypatch.setattr(enc, "_embed_batch", spy)
    out = enc.encode(TEXTS)
    lengths = [len(t) for batch in seen for t in batch]
    assert lengths == sorted(lengths, reverse=True) and lengths != [len(t) for t in TEXTS]
    singles = np.concatenate([enc.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(out, singles, rtol=1e-5, atol=1e-5)


def test_layer_out_of_range_is_a_clear_error(tiny_bert):
    with pytest.raises(ValueError, match="layer 5 out of range"):
        create_text_encoder(f"hf:{tiny_bert}", layer=5).encode(["the cat"])


def test_names_include_output_changing_options():
    assert create_text_encoder("hf:gpt2").name == "hf:gpt2[pooling=mean]"
    assert create_text_encoder("hf:gpt2", pooling="last", layer=-2, max_length=128).name == \
        "hf:gpt2[pooling=last,layer=-2,max_length=128]"
    assert create_text_encoder("hf:gpt2", batch_size=3, device="cpu", padding_side="left").name == "hf:gpt2[pooling=mean]"
    assert create_text_encoder("smollm2-135m").name == "smollm2-135m[pooling=mean]"
    assert create_text_encoder("smollm2-135m", max_length=64).name == "smollm2-135m[pooling=mean,max_length=64]"
    # the sentence-transformers asset keeps its historical name (cache keys) unless max_length is set
    assert create_text_encoder("all-minilm-l6-v2").name == "all-minilm-l6-v2"
    assert SentenceTransformerEncoder("all-minilm-l6-v2").name == "all-minilm-l6-v2"
    assert create_text_encoder("all-minilm-l6-v2", max_length=128).name == "all-minilm-l6-v2[max_length=128]"
    assert create_text_encoder("st:/models/x", max_length=32).name == "st:/models/x[max_length=32]"
    with pytest.raises(ValueError, match="pooling"):
        TransformerEncoder("gpt2", pooling="max")


# ---- CallableEncoder -------------------------------------------------------------------------
def _features(texts):
    return np.array([[len(t), t.count("a"), t.count(" "), sum(map(ord, t)) % 97] for t in texts], dtype=np.float64)


class Recorder:
    """An embedding function that records the batches it is called with."""

    def __init__(self, fail_on_call: int | None = None):
        self.calls: list[list[str]] = []
        self.fail_on_call = fail_on_call

    def __call__(self, texts):
        self.calls.append(list(texts))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise RuntimeError("remote API went away")
        return _features(texts)

    @property
    def n_texts(self) -> int:
        return sum(len(c) for c in self.calls)


def test_callable_encoder_batches():
    fn = Recorder()
    enc = CallableEncoder("toy", fn, batch_size=4)
    out = enc.encode(TEXTS)
    assert [len(c) for c in fn.calls] == [4, 4, 2]
    assert [t for c in fn.calls for t in c] == TEXTS
    assert out.dtype == np.float32 and out.shape == (10, 4)
    np.testing.assert_array_equal(out, _features(TEXTS).astype(np.float32))


@pytest.mark.parametrize("bad, match", [
    (lambda texts: np.zeros((len(texts) - 1, 3)), r"shape \(1, 3\) for 2 texts"),
    (lambda texts: np.zeros(len(texts)), r"shape \(2,\) for 2 texts"),
    (lambda texts: np.full((len(texts), 3), np.nan), "non-finite"),
    (lambda texts: np.zeros((len(texts), 3 if texts[0] == "a" else 5)), "dimension 5"),
    (lambda texts: [["x"] * 3 for _ in texts], "not a numeric array"),
])
def test_callable_encoder_checks_what_fn_returns(bad, match):
    enc = CallableEncoder("my-api", bad, batch_size=2)
    with pytest.raises(ValueError, match=match) as err:
        enc.encode(["a", "b", "c", "d"])
    assert "'my-api'" in str(err.value)


def test_encoders_reject_non_string_texts():
    with pytest.raises(TypeError, match="encode_split"):
        CallableEncoder("toy", Recorder()).encode([("a", "b")])


# ---- encode_split ----------------------------------------------------------------------------
def test_encode_split_pairs_formula_and_unique_texts(nml_home):
    pairs = [("the cat", "a dog"), ("the cat", "blue bird"), ("a dog", "the cat"), ("red", "red")]
    fn = Recorder()
    enc = CallableEncoder("toy", fn, batch_size=100)
    out = encode_split(enc, pairs, cache=False)
    assert out.shape == (4, 16) and out.dtype == np.float32
    assert sorted(fn.calls[0]) == sorted({"the cat", "a dog", "blue bird", "red"}) and len(fn.calls) == 1
    u = _features([a for a, _ in pairs]).astype(np.float32)
    v = _features([b for _, b in pairs]).astype(np.float32)
    np.testing.assert_allclose(out, np.concatenate([u, v, np.abs(u - v), u * v], axis=1))
    # cached: the same features, the encoder is not called a second time
    fn2 = Recorder()
    enc2 = CallableEncoder("toy", fn2, batch_size=100)
    first = encode_split(enc2, pairs)
    again = encode_split(enc2, pairs)
    np.testing.assert_array_equal(first, out)
    np.testing.assert_array_equal(again, out)
    assert fn2.n_texts == 4


def test_encode_split_single_texts(nml_home):
    texts = ["b", "a", "b", "c"]
    fn = Recorder()
    out = encode_split(CallableEncoder("toy", fn), texts)
    np.testing.assert_array_equal(out, _features(texts).astype(np.float32))
    assert fn.n_texts == 3
    with pytest.raises(TypeError, match="mixes"):
        encode_split(CallableEncoder("toy", fn), ["a", ("b", "c")], cache=False)


# ---- cached_text_embeddings ------------------------------------------------------------------
def test_cache_key_is_unchanged_and_second_call_is_free(nml_home):
    fn = Recorder()
    enc = CallableEncoder("toy", fn, batch_size=100)
    first = cached_text_embeddings(enc, TEXTS)
    key = stable_hash({"encoder": "toy", "texts": TEXTS}, length=24)
    assert text_embeddings_path(enc, TEXTS) == nml_home / "features" / f"text-{key}.npz"
    assert text_embeddings_path(enc, TEXTS).is_file()
    second = cached_text_embeddings(enc, TEXTS)
    assert fn.n_texts == len(TEXTS)
    np.testing.assert_array_equal(first, second)


def test_interrupted_run_resumes_from_finished_chunks(nml_home, tmp_path, monkeypatch, caplog):
    texts = [f"text number {i} " + "a" * (i % 7) for i in range(10)]
    broken = Recorder(fail_on_call=2)
    with pytest.raises(RuntimeError, match="went away"):
        cached_text_embeddings(CallableEncoder("toy", broken, batch_size=100), texts, chunk_size=4)
    final = text_embeddings_path("toy", texts)
    partial = final.with_name(final.stem + ".partial")
    assert not final.exists()
    assert sorted(p.name for p in partial.iterdir()) == ["rows-000000000-000000004.npz"]

    fn = Recorder()
    with caplog.at_level("INFO", logger="nml.text"):
        resumed = cached_text_embeddings(CallableEncoder("toy", fn, batch_size=100), texts, chunk_size=4)
    assert fn.calls == [texts[4:8], texts[8:10]]  # chunk 1 was reused
    assert "reusing 1 of 3 chunks" in caplog.text
    assert final.is_file() and not partial.exists()
    assert not [p for p in final.parent.iterdir() if ".tmp-" in p.name]

    monkeypatch.setenv("NML_HOME", str(tmp_path / "fresh_home"))
    straight = cached_text_embeddings(CallableEncoder("toy", Recorder(), batch_size=100), texts, chunk_size=4)
    np.testing.assert_array_equal(resumed, straight)
    np.testing.assert_array_equal(resumed, _features(texts).astype(np.float32))


def test_final_file_is_written_atomically(nml_home, monkeypatch):
    texts = [f"t{i}" for i in range(6)]
    saved = []
    real_save = te.atomic_save_npz

    def failing_final_save(path, arrays):
        saved.append(path.name)
        if not path.parent.name.endswith(".partial"):
            raise OSError("disk full")
        return real_save(path, arrays)

    monkeypatch.setattr(te, "atomic_save_npz", failing_final_save)
    with pytest.raises(OSError, match="disk full"):
        cached_text_embeddings(CallableEncoder("toy", Recorder()), texts, chunk_size=4)
    final = text_embeddings_path("toy", texts)
    assert saved[-1] == final.name and not final.exists()
    assert len(list(final.with_name(final.stem + ".partial").iterdir())) == 2  # chunks kept

    monkeypatch.setattr(te, "atomic_save_npz", real_save)
    fn = Recorder()
    out = cached_text_embeddings(CallableEncoder("toy", fn), texts, chunk_size=4)
    assert fn.calls == [] and final.is_file()
    np.testing.assert_array_equal(out, _features(texts).astype(np.float32))


def test_unreadable_final_file_is_recomputed(nml_home):
    fn = Recorder()
    enc = CallableEncoder("toy", fn)
    path = text_embeddings_path(enc, TEXTS)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npz")
    out = cached_text_embeddings(enc, TEXTS)
    assert fn.n_texts == len(TEXTS)
    np.testing.assert_array_equal(out, _features(TEXTS).astype(np.float32))


# ---- the registry ----------------------------------------------------------------------------
def test_names_dispatch_without_loading(monkeypatch):
    from nml import assets

    def no_assets(name):
        raise AssertionError(f"asset {name} resolved while only building an encoder")

    monkeypatch.setattr(assets, "asset_path", no_assets)
    st = create_text_encoder("all-minilm-l6-v2", batch_size=8)
    assert isinstance(st, SentenceTransformerEncoder) and st._model is None and st.asset == "all-minilm-l6-v2"
    smol = create_text_encoder("smollm2-135m")
    assert isinstance(smol, TransformerEncoder) and smol._model is None
    assert smol.asset == te.TEXT_ENCODER_ASSETS["smollm2-135m"] and smol.pooling == "mean"
    hf = create_text_encoder("hf:/nowhere/model", pooling="last")
    assert isinstance(hf, TransformerEncoder) and hf._model is None and hf.model_ref == "/nowhere/model"
    st2 = create_text_encoder("st:/nowhere/st-model")
    assert isinstance(st2, SentenceTransformerEncoder) and st2._model is None
    assert set(te.TEXT_ENCODER_ASSETS) == set(list_text_encoders()) == {"all-minilm-l6-v2", "smollm2-135m"}


@pytest.mark.parametrize("name", ["", "nope", "bert-large-uncased", "hf:", "st: ", "openai:ada",
                                  "callable:", "callable:mod", "callable:mod:", "callable:1mod:f",
                                  "callable:mod:not-an-identifier"])
def test_bad_names_raise_value_error_listing_forms(name):
    with pytest.raises(ValueError, match="hf:<model id or path>"):
        TEXT_ENCODER_REGISTRY.check(name)
    with pytest.raises(ValueError, match="expected one of"):
        create_text_encoder(name)


def test_validate_accepts_every_form_without_importing():
    for name in ["all-minilm-l6-v2", "smollm2-135m", "hf:bert-large-uncased", "hf:roberta-large", "hf:gpt2",
                 "hf:/abs/path", "st:sentence-transformers/all-mpnet-base-v2",
                 "callable:module_that_does_not_exist.sub:fn"]:
        assert TEXT_ENCODER_REGISTRY.check(name) == name


def test_callable_name_imports_the_function(tmp_path, monkeypatch, nml_home):
    (tmp_path / "my_embeddings_mod.py").write_text(
        "import numpy as np\n"
        "CALLS = []\n"
        "def embed(texts):\n"
        "    CALLS.append(len(texts))\n"
        "    return np.array([[len(t), 1.0] for t in texts])\n"
        "NOT_CALLABLE = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    enc = create_text_encoder("callable:my_embeddings_mod:embed", batch_size=2, max_length=128, device="cpu")
    assert isinstance(enc, CallableEncoder) and enc.name == "callable:my_embeddings_mod:embed"
    np.testing.assert_array_equal(enc.encode(["ab", "c", "def"]), [[2, 1], [1, 1], [3, 1]])
    assert sys.modules["my_embeddings_mod"].CALLS == [2, 1]
    with pytest.raises(ValueError, match="cannot import 'missing'"):
        create_text_encoder("callable:my_embeddings_mod:missing")
    with pytest.raises(ValueError, match="cannot import"):
        create_text_encoder("callable:no_such_module_xyz:embed")
    with pytest.raises(ValueError, match="not callable"):
        create_text_encoder("callable:my_embeddings_mod:NOT_CALLABLE")


# ---- the real offline assets -----------------------------------------------------------------
def test_offline_assets_encode():
    from nml import assets

    for name in ("smollm2-135m", "all-minilm-l6-v2"):
        try:
            assets.asset_path(te.TEXT_ENCODER_ASSETS[name])
        except assets.AssetMissingError as err:
            pytest.skip(f"asset {name} is not fetched (run `nml assets fetch {name}`): {err}")
    texts = ["a great, moving film", "dull and far too long", "the cat sat on the mat"]
    start = time.perf_counter()
    smol = create_text_encoder("smollm2-135m", batch_size=8, max_length=32).encode(texts)
    seconds = time.perf_counter() - start
    print(f"smollm2-135m: load + encode 3 texts in {seconds:.1f}s")
    assert smol.shape == (3, 576) and smol.dtype == np.float32 and np.isfinite(smol).all()
    mini = create_text_encoder("all-minilm-l6-v2").encode(texts)
    assert mini.shape == (3, 384) and mini.dtype == np.float32 and np.isfinite(mini).all()
