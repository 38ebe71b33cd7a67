"""Frozen text encoders: anything that maps a list of texts to a feature matrix.

One registry turns a name into an encoder, timm-style (:func:`register_text_encoder`,
:func:`create_text_encoder`, :func:`list_text_encoders`; ``TEXT_ENCODER_REGISTRY.check(name)``
validates a name without importing or loading anything)::

    all-minilm-l6-v2                 sentence-transformers, fetched offline asset (384-d)
    smollm2-135m                     SmolLM2-135M-Instruct GGUF asset, mean-pooled hidden states (576-d)
    hf:<model id or local path>      any transformers AutoModel (hf:bert-large-uncased, hf:roberta-large, hf:gpt2)
    st:<model id or local path>      any sentence-transformers model
    callable:<module>:<function>     a user embedding function fn(list[str]) -> (n, D), e.g. a remote API

Every encoder has a ``name`` — its stable identity in cache keys, including the options that
change its outputs (``max_length``, ``pooling``, ``layer``) — and ``encode(texts) -> (N, D)``
float32. :func:`cached_text_embeddings` caches embeddings under ``NML_HOME/features``
(resumable: finished chunks of a long run survive an interruption); :func:`encode_split` adds
the SentEval / InferSent pair features ``[u, v, |u − v|, u ⊙ v]`` for sentence-pair tasks.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from nml._infra.cache import atomic_save_npz, record_cache_use, stable_hash
from nml._infra.paths import features_dir
from nml._infra.registry import Registry

log = logging.getLogger("nml.text")

__all__ = [
    "TEXT_ENCODER_ASSETS",
    "TEXT_ENCODER_REGISTRY",
    "CallableEncoder",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "TransformerEncoder",
    "cached_text_embeddings",
    "create_text_encoder",
    "encode_split",
    "list_text_encoders",
    "register_text_encoder",
    "text_embeddings_path",
]

#: Offline registry names and the fetched asset (``nml.assets``) each one loads.
TEXT_ENCODER_ASSETS: dict[str, str] = {
    "all-minilm-l6-v2": "all-minilm-l6-v2",
    "smollm2-135m": "smollm2-135m",
}

Pooling = Literal["mean", "last", "cls"]
POOLINGS: tuple[str, ...] = ("mean", "last", "cls")

#: Default rows per resumable chunk in :func:`cached_text_embeddings`.
CHUNK_SIZE = 512


@runtime_checkable
class TextEncoder(Protocol):
    """Maps texts to a float32 ``(N, D)`` matrix; ``name`` identifies it (and its options) in caches."""

    name: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


# ---- helpers ---------------------------------------------------------------------------------
def _options_suffix(**options: Any) -> str:
    """``[k=v,...]`` of the options that are set (not None), in the given order; "" when none."""
    parts = [f"{k}={v}" for k, v in options.items() if v is not None]
    return f"[{','.join(parts)}]" if parts else ""


def _set_offline_env() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _check_texts(texts: Sequence[str], who: str) -> list[str]:
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"text encoder {who!r}: texts must be str; item {bad[0]} is "
                        f"{type(texts[bad[0]]).__name__} (use encode_split for text pairs)")
    return texts


def _check_embeddings(who: str, arr: Any, n: int, dim: int | None = None, what: str = "returned") -> np.ndarray:
    """``arr`` as a finite float32 ``(n, D)`` matrix (``D == dim`` if given), else a ValueError naming ``who``."""
    try:
        out = np.asarray(arr, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"text encoder {who!r} {what} something that is not a numeric array "
                         f"for {n} texts ({err})") from err
    if out.ndim != 2 or out.shape[0] != n:
        raise ValueError(f"text encoder {who!r} {what} shape {out.shape} for {n} texts; expected ({n}, D)")
    if dim is not None and out.shape[1] != dim:
        raise ValueError(f"text encoder {who!r} {what} dimension {out.shape[1]}, but earlier batches had {dim}")
    if not np.isfinite(out).all():
        bad = int((~np.isfinite(out)).any(axis=1).sum())
        raise ValueError(f"text encoder {who!r} {what} non-finite values (NaN/inf) in {bad} of {n} rows")
    return out


def _length_order(texts: list[str]) -> np.ndarray:
    """Indices of ``texts`` from longest to shortest (characters), stable."""
    return np.argsort(-np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)), kind="stable")


def _dtype_kwarg() -> str:
    """``dtype`` (transformers >= 4.56) or ``torch_dtype`` (older) for ``from_pretrained``."""
    import transformers

    major, minor = (int(x) for x in re.findall(r"\d+", transformers.__version__)[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


# ---- sentence-transformers -------------------------------------------------------------------
class SentenceTransformerEncoder:
    """A sentence-transformers model: a fetched offline asset (default) or ``path`` (a folder or hub id).

    ``max_length`` sets ``model.max_seq_length`` (tokens kept per text) and enters ``name``;
    without it the model's own limit applies and ``name`` stays the asset name (as always).
    The model loads on the first :meth:`encode`, so building one (and cache hits) costs nothing.
    """

    def __init__(self, asset: str = "all-minilm-l6-v2", *, path: str | os.PathLike | None = None,
                 batch_size: int = 64, device: str = "cpu", max_length: int | None = None,
                 name: str | None = None, progress: bool = False):
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be positive, got {max_length}")
        self.asset = None if path is not None else asset
        self._path = None if path is None else str(path)
        self.batch_size = batch_size
        self.device = device
        self.max_length = max_length
        self.progress = progress
        base = name or (asset if path is None else f"st:{path}")
        self.name = base + _options_suffix(max_length=max_length)
        self._model = None

    @property
    def path(self) -> str:
        """The model folder (an asset's verified path) or hub id; resolving an asset verifies it."""
        if self._path is None:
            from nml import assets

            self._path = str(assets.asset_path(self.asset))
        return self._path

    def _load(self):
        if self._model is None:
            path = self.path
            local = Path(path).exists()
            if local:
                _set_offline_env()
            from sentence_transformers import SentenceTransformer

            log.info("loading sentence-transformers model %s from %s on %s", self.name, path, self.device)
            self._model = SentenceTransformer(path, device=self.device, local_files_only=local)
            if self.max_length is not None:
                self._model.max_seq_length = self.max_length
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        texts = _check_texts(texts, self.name)
        model = self._load()
        if not texts:
            return np.zeros((0, model.get_sentence_embedding_dimension() or 0), dtype=np.float32)
        out = model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                           show_progress_bar=self.progress and len(texts) > self.batch_size)
        return np.asarray(out, dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceTransformerEncoder({self.name!r})"


# ---- transformers AutoModel ------------------------------------------------------------------
class TransformerEncoder:
    """Pooled hidden states of any ``transformers`` AutoModel: BERT / RoBERTa or GPT-2 / Llama.

    ``model`` is a hub id or a local folder (or a ``.gguf`` file); ``asset`` names a fetched
    ``nml.assets`` asset instead (resolved on load). ``gguf_file`` loads a GGUF checkpoint in that
    folder (de-quantized to float32). Options:

    - ``pooling``: ``"mean"`` over the attention mask (default), ``"last"`` — the last real token
      (what a decoder has read everything by), ``"cls"`` — the first real token (BERT's [CLS]);
    - ``layer``: index into ``hidden_states`` (``-1``, the default, is the model's final output;
      ``0`` the embedding layer);
    - ``max_length``: tokens kept per text (default: the model's limit);
    - ``padding_side``: ``"right"`` (default) or ``"left"``; both give the same embeddings: pooling
      reads the attention mask, and with left padding position ids are passed that count real
      tokens only, so a text's embedding does not depend on the batch it is padded in.

    Decoders without a pad token pad with their EOS token (masked out anyway). Texts are sorted by
    length into batches (less padding) and returned in the input order. The model loads on the
    first :meth:`encode`, in eval mode, float32, under ``torch.inference_mode()``.

    ``name`` is ``label`` (default ``hf:<model>``) plus the output-changing options, e.g.
    ``hf:gpt2[pooling=last,max_length=128]``.
    """

    def __init__(self, model: str | os.PathLike | None = None, *, asset: str | None = None,
                 gguf_file: str | None = None, pooling: Pooling = "mean", layer: int = -1,
                 max_length: int | None = None, batch_size: int = 32, device: str = "cpu",
                 padding_side: Literal["right", "left"] = "right", revision: str | None = None,
                 label: str | None = None, progress: bool = True):
        if (model is None) == (asset is None):
            raise ValueError("TransformerEncoder needs exactly one of model (id or path) and asset")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be positive, got {max_length}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model_ref = None if model is None else str(model)
        self.asset = asset
        self.gguf_file = gguf_file
        self.pooling = pooling
        self.layer = int(layer)
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.padding_side = padding_side
        self.revision = revision
        self.progress = progress
        if label is None:
            label = f"asset:{asset}" if model is None else f"hf:{model}"
            if gguf_file is not None:
                label += f"/{gguf_file}"
        self.name = label + _options_suffix(pooling=pooling, layer=None if self.layer == -1 else self.layer,
                                            max_length=max_length, revision=revision)
        self._model = None
        self._tokenizer = None
        self._limit: int | None = None
        self._pass_positions = False

    # -- loading
    def _location(self) -> tuple[str, str | None]:
        """(folder or hub id, gguf file name or None)."""
        if self.model_ref is not None:
            ref = self.model_ref
        else:
            from nml import assets

            ref = str(assets.asset_path(self.asset))
        gguf = self.gguf_file
        if gguf is None and ref.endswith(".gguf") and Path(ref).is_file():
            ref, gguf = str(Path(ref).parent), Path(ref).name
        return ref, gguf

    def _load(self):
        if self._model is not None:
            return self._model, self._tokenizer
        import inspect

        import torch
        from transformers import AutoModel, AutoTokenizer

        ref, gguf = self._location()
        local = Path(ref).exists()
        if local:
            _set_offline_env()
        kwargs: dict[str, Any] = {"local_files_only": local}
        if gguf is not None:
            kwargs["gguf_file"] = gguf
        if self.revision is not None:
            kwargs["revision"] = self.revision
        log.info("loading %s from %s%s on %s", self.name, ref, f" ({gguf})" if gguf else "", self.device)
        tokenizer = AutoTokenizer.from_pretrained(ref, **kwargs)
        model = AutoModel.from_pretrained(ref, **kwargs, **{_dtype_kwarg(): torch.float32})
        if getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
            model = model.get_encoder()  # T5 / BART: embed with the encoder stack
        model = model.to(self.device).eval()

        if tokenizer.pad_token is None:
            if tokenizer.eos_token is not None:
                tokenizer.pad_token = tokenizer.eos_token
            elif tokenizer.unk_token is not None:
                tokenizer.pad_token = tokenizer.unk_token
            else:  # any id works: padded positions are masked out
                tokenizer.pad_token = tokenizer.convert_ids_to_tokens(0)
        tokenizer.padding_side = self.padding_side

        n_layers = getattr(model.config, "num_hidden_layers", None)
        if n_layers is not None and not -(n_layers + 1) <= self.layer <= n_layers:
            raise ValueError(f"text encoder {self.name!r}: layer {self.layer} out of range for "
                             f"{n_layers} layers (hidden_states has {n_layers + 1} entries)")

        limits = [v for v in (getattr(tokenizer, "model_max_length", None),
                              getattr(model.config, "max_position_embeddings", None),
                              getattr(model.config, "n_positions", None))
                  if isinstance(v, int) and 0 < v < 1_000_000]
        if self.max_length is not None:
            limits.append(self.max_length)
        self._limit = min(limits) if limits else None

        # Left padding shifts the real tokens' absolute positions unless position ids are given;
        # models that derive positions from input ids themselves (RoBERTa family) handle it.
        takes_positions = "position_ids" in inspect.signature(model.forward).parameters
        derives_positions = any(hasattr(m, "create_position_ids_from_input_ids") for m in model.modules())
        self._pass_positions = takes_positions and not derives_positions
        self._model, self._tokenizer = model, tokenizer
        return model, tokenizer

    @property
    def dim(self) -> int:
        """Hidden size (loads the model)."""
        model, _ = self._load()
        return int(model.config.hidden_size)

    # -- encoding
    def _embed_batch(self, texts: list[str]):
        import torch

        model, tokenizer = self._model, self._tokenizer
        enc = tokenizer(texts, padding=True, truncation=self._limit is not None, max_length=self._limit,
                        return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        mask = enc["attention_mask"].bool()
        if not mask.any(dim=1).all():
            raise ValueError(f"text encoder {self.name!r}: a text has no tokens at all "
                             "(empty text and no special tokens); drop empty texts first")
        inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        if self._pass_positions and not mask[:, 0].all():  # left padding present
            inputs["position_ids"] = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
        want_all = self.layer != -1
        out = model(**inputs, output_hidden_states=want_all, return_dict=True)
        hidden = out.hidden_states[self.layer] if want_all else out.last_hidden_state
        hidden = hidden.float()
        if self.pooling == "mean":
            summed = hidden.masked_fill(~mask[..., None], 0.0).sum(dim=1)
            pooled = summed / mask.sum(dim=1, keepdim=True).to(hidden.dtype)
        else:
            positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
            if self.pooling == "last":  # last real token, whichever side the padding is on
                index = positions.masked_fill(~mask, -1).argmax(dim=1)
            else:  # "cls": first real token
                index = positions.masked_fill(~mask, mask.shape[1]).argmin(dim=1)
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), index]
        return pooled.cpu().numpy().astype(np.float32, copy=False)

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        from nml._infra.progress import tqdm

        texts = _check_texts(texts, self.name)
        model, _ = self._load()
        if not texts:
            return np.zeros((0, int(model.config.hidden_size)), dtype=np.float32)
        order = _length_order(texts)
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        out: np.ndarray | None = None
        with torch.inference_mode():  # no autograd bookkeeping at all (the embeddings leave as numpy)
            for idx in tqdm(batches, desc=self.name, unit="batch", leave=False,
                            disable=not self.progress or len(batches) < 2):
                emb = self._embed_batch([texts[i] for i in idx])
                if out is None:
                    out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
                out[idx] = emb
        return out

    def __repr__(self) -> str:
        return f"TransformerEncoder({self.name!r})"


# ---- user embedding functions ----------------------------------------------------------------
class CallableEncoder:
    """Wraps an embedding function ``fn(list[str]) -> array-like (n, D)`` as a text encoder.

    This is how a remote embedding API plugs in (the paper's text-embedding-ada-002, say):
    ``fn`` is called on batches of at most ``batch_size`` texts, and every answer is checked —
    a 2-D ``(n, D)`` array, the same ``D`` for every batch, finite values — with a ValueError
    naming the encoder otherwise. ``name`` is the cache identity: change it whenever ``fn``'s
    outputs would change (another model, dimension, or preprocessing).

    Example (a sketch, not run; ``my_project/embeddings.py``)::

        import numpy as np
        from openai import OpenAI

        _client = OpenAI()  # reads OPENAI_API_KEY

        def ada002(texts: list[str]) -> np.ndarray:
            resp = _client.embeddings.create(model="text-embedding-ada-002", input=texts)
            return np.array([d.embedding for d in sorted(resp.data, key=lambda d: d.index)])

    then either ``CallableEncoder("ada-002", ada002, batch_size=256)`` in code, or the registry
    name ``"callable:my_project.embeddings:ada002"`` (e.g. in a params file), and wrap it in
    :func:`cached_text_embeddings` / :func:`encode_split` so each text is paid for once. Same
    signature as the image ``CallableEncoder``: ``CallableEncoder(name, fn, ...)``.
    """

    def __init__(self, name: str, fn: Callable[[list[str]], Any], *, batch_size: int = 64,
                 progress: bool = True):
        if not callable(fn):
            raise TypeError(f"CallableEncoder {name!r}: fn must be callable, got {type(fn).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.name = name
        self.fn = fn
        self.batch_size = batch_size
        self.progress = progress

    def encode(self, texts: list[str]) -> np.ndarray:
        from nml._infra.progress import tqdm

        texts = _check_texts(texts, self.name)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        starts = range(0, len(texts), self.batch_size)
        parts: list[np.ndarray] = []
        dim: int | None = None
        for s in tqdm(starts, desc=self.name, unit="batch", leave=False,
                      disable=not self.progress or len(starts) < 2):
            batch = texts[s:s + self.batch_size]
            emb = _check_embeddings(self.name, self.fn(batch), len(batch), dim)
            dim = emb.shape[1]
            parts.append(emb)
        return np.concatenate(parts, axis=0)

    def __repr__(self) -> str:
        return f"CallableEncoder({self.name!r}, {getattr(self.fn, '__qualname__', self.fn)!r})"


# ---- the registry ----------------------------------------------------------------------------
#: Every text encoder by name: the offline assets below, then the hf:, st: and callable: families.
TEXT_ENCODER_REGISTRY: Registry[TextEncoder] = Registry("text encoder")

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def register_text_encoder(name: str, factory: Callable[..., TextEncoder] | None = None, *,
                          description: str | None = None) -> Any:
    """Register a text-encoder factory under ``name`` (usable as a decorator).

    The factory takes :func:`create_text_encoder`'s options as keywords; ``description``
    defaults to its docstring's first line.
    """
    return TEXT_ENCODER_REGISTRY.register(name, factory, description=description)


@register_text_encoder("all-minilm-l6-v2")
def _all_minilm_l6_v2(**options: Any) -> SentenceTransformerEncoder:
    """sentence-transformers all-MiniLM-L6-v2 (offline asset), 384-d"""
    return SentenceTransformerEncoder(TEXT_ENCODER_ASSETS["all-minilm-l6-v2"], **options)


@register_text_encoder("smollm2-135m")
def _smollm2_135m(**options: Any) -> TransformerEncoder:
    """SmolLM2-135M-Instruct GGUF (offline asset), mean-pooled hidden states, 576-d"""
    options.setdefault("pooling", "mean")
    return TransformerEncoder(asset=TEXT_ENCODER_ASSETS["smollm2-135m"], label="smollm2-135m", **options)


def _nonempty(prefix: str, rest: str) -> None:
    """A family name needs something after its prefix (ValueError: the registry reports it)."""
    if not rest.strip():
        raise ValueError(f"nothing after {prefix}")


@TEXT_ENCODER_REGISTRY.register_family("hf:", pattern="hf:<model id or path>",
                                       description="any transformers AutoModel, pooled hidden states")
def _hf_text_encoder(model: str) -> Callable[..., TransformerEncoder]:
    _nonempty("hf:", model)
    return lambda **options: TransformerEncoder(model, **options)


@TEXT_ENCODER_REGISTRY.register_family("st:", pattern="st:<model id or path>",
                                       description="any sentence-transformers model")
def _st_text_encoder(path: str) -> Callable[..., SentenceTransformerEncoder]:
    _nonempty("st:", path)
    return lambda **options: SentenceTransformerEncoder(path=path, **options)


@TEXT_ENCODER_REGISTRY.register_family("callable:", pattern="callable:<module>:<function>",
                                       description="your embedding function fn(list[str]) -> (n, D), e.g. a remote API")
def _callable_text_encoder(target: str) -> Callable[..., CallableEncoder]:
    """``callable:<module>:<function>``: the function is imported when the encoder is created."""
    _nonempty("callable:", target)
    module, sep, func = target.rpartition(":")
    if not sep or not _DOTTED.match(module) or not func.isidentifier():
        raise ValueError("callable: needs <module>:<function>, e.g. callable:my_pkg.embed:ada002")
    return lambda **options: _import_callable(f"callable:{target}", module, func, **options)


def _import_callable(name: str, module: str, func: str, **options: Any) -> CallableEncoder:
    for ignored in ("max_length", "device"):
        if options.pop(ignored, None) is not None:
            log.debug("text encoder %s: option %s does not apply to a callable, ignored", name, ignored)
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"text encoder {name!r}: cannot import {func!r} from module {module!r} ({err})") from err
    if not callable(fn):
        raise ValueError(f"text encoder {name!r}: {module}.{func} is not callable")
    return CallableEncoder(name, fn, **options)


def create_text_encoder(name: str, **options: Any) -> TextEncoder:
    """The encoder called ``name`` (see the module docstring for the forms), not loaded yet.

    ``options`` go to the encoder's constructor (``batch_size``, ``max_length``, ``device``,
    ``pooling``, ``layer``, ...). ``callable:`` encoders ignore ``max_length`` and ``device``
    (an embedding function decides those itself). An unknown name raises an error that is both
    a ``KeyError`` and a ``ValueError``, naming the valid forms.
    """
    return TEXT_ENCODER_REGISTRY.create(name, **options)


def list_text_encoders(pattern: str | None = None) -> list[str]:
    """Names of the registered text encoders (fnmatch ``pattern``); the hf:, st: and callable: forms are valid too."""
    return TEXT_ENCODER_REGISTRY.names(pattern)


# ---- caching ---------------------------------------------------------------------------------
def text_embeddings_path(encoder: TextEncoder | str, texts: Sequence[str]) -> Path:
    """Where :func:`cached_text_embeddings` keeps the embeddings of ``texts`` (keyed by name + texts)."""
    name = encoder if isinstance(encoder, str) else encoder.name
    key = stable_hash({"encoder": name, "texts": list(texts)}, length=24)
    return features_dir() / f"text-{key}.npz"


def _load_rows(path: Path, n: int) -> np.ndarray | None:
    """The ``features`` of an npz if it is readable and has ``n`` rows, else None (logged)."""
    try:
        with np.load(path) as f:
            feats = f["features"]
    except Exception as err:
        log.warning("ignoring unreadable text cache %s (%s)", path, err)
        return None
    if feats.ndim != 2 or feats.shape[0] != n:
        log.warning("ignoring text cache %s: shape %s, expected %d rows", path, feats.shape, n)
        return None
    return feats


def cached_text_embeddings(encoder: TextEncoder, texts: Sequence[str], *,
                           chunk_size: int = CHUNK_SIZE) -> np.ndarray:
    """Embeddings of ``texts``, cached under ``NML_HOME/features`` by encoder name and texts.

    Resumable: more than ``chunk_size`` texts are encoded chunk by chunk, each chunk saved
    atomically in ``text-<key>.partial/`` beside the final file; a re-run after an interruption
    reuses the finished chunks. The final ``text-<key>.npz`` is written atomically, then the
    chunks are removed. The key (encoder name + texts) is independent of ``chunk_size``.
    """
    texts = _check_texts(texts, encoder.name)
    n = len(texts)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if n == 0:
        return _check_embeddings(encoder.name, encoder.encode([]), 0)
    path = text_embeddings_path(encoder, texts)
    if path.exists():
        feats = _load_rows(path, n)
        if feats is not None:
            log.debug("reusing text embeddings %s (%s, %d texts)", path.name, encoder.name, n)
            record_cache_use(f"text/{path.stem}", reused=True)
            return feats

    bounds = [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]
    if len(bounds) == 1:
        feats = _check_embeddings(encoder.name, encoder.encode(texts), n)
    else:
        feats = _encode_in_chunks(encoder, texts, bounds, path.with_name(path.stem + ".partial"))
    atomic_save_npz(path, {"features": feats})
    record_cache_use(f"text/{path.stem}", reused=False)
    log.debug("cached text embeddings %s (%s, %d texts, dim %d)", path.name, encoder.name, *feats.shape)
    partial = path.with_name(path.stem + ".partial")
    if partial.exists():
        shutil.rmtree(partial, ignore_errors=True)
    return feats


def _encode_in_chunks(encoder: TextEncoder, texts: list[str], bounds: list[tuple[int, int]],
                      partial: Path) -> np.ndarray:
    from nml._infra.progress import tqdm

    chunk_path = {b: partial / f"rows-{b[0]:09d}-{b[1]:09d}.npz" for b in bounds}
    parts: dict[tuple[int, int], np.ndarray] = {}
    for b, p in chunk_path.items():
        if p.exists() and (rows := _load_rows(p, b[1] - b[0])) is not None:
            parts[b] = rows
    dims = {a.shape[1] for a in parts.values()}
    if len(dims) > 1:
        log.warning("partial text cache %s mixes dimensions %s; encoding again", partial, sorted(dims))
        parts = {}
    if parts:
        log.info("resuming text embeddings %s (%s): reusing %d of %d chunks (%d of %d texts)",
                 partial.name, encoder.name, len(parts), len(bounds),
                 sum(b[1] - b[0] for b in parts), len(texts))
    todo = [b for b in bounds if b not in parts]
    dim = next(iter(parts.values())).shape[1] if parts else None
    for b in tqdm(todo, desc=f"{encoder.name} chunks", unit="chunk", disable=len(todo) < 2):
        emb = _check_embeddings(encoder.name, encoder.encode(texts[b[0]:b[1]]), b[1] - b[0], dim)
        dim = emb.shape[1]
        atomic_save_npz(chunk_path[b], {"features": emb})
        log.debug("cached chunk %s of %s (%d texts)", chunk_path[b].name, partial.name, b[1] - b[0])
        parts[b] = emb
    return np.concatenate([parts[b] for b in bounds], axis=0)


# ---- splits: single texts and text pairs -----------------------------------------------------
def encode_split(encoder: TextEncoder, texts: Sequence[str] | Sequence[tuple[str, str]], *,
                 cache: bool = True) -> np.ndarray:
    """Features of a split's inputs: single texts → embeddings; pairs ``(a, b)`` → ``[u, v, |u−v|, u⊙v]``.

    Each distinct text is encoded once (pairs often repeat a premise); pair features have
    ``4·D`` columns (SentEval / InferSent). ``cache`` goes through :func:`cached_text_embeddings`
    (keyed by the distinct texts in first-seen order).
    """
    items = list(texts)
    is_pair = [isinstance(t, (tuple, list)) for t in items]
    if any(is_pair) and not all(is_pair):
        raise TypeError(f"text encoder {encoder.name!r}: a split mixes single texts and pairs")
    pairs = bool(items) and all(is_pair)
    if pairs:
        lengths = {len(t) for t in items}
        if lengths != {2}:
            raise ValueError(f"text encoder {encoder.name!r}: pairs must have 2 texts, got lengths {sorted(lengths)}")
        flat = [t[0] for t in items] + [t[1] for t in items]
    else:
        flat = items
    flat = _check_texts(flat, encoder.name)
    unique = list(dict.fromkeys(flat))
    where = {t: i for i, t in enumerate(unique)}
    emb = cached_text_embeddings(encoder, unique) if cache else \
        _check_embeddings(encoder.name, encoder.encode(unique), len(unique))
    idx = np.fromiter((where[t] for t in flat), dtype=np.int64, count=len(flat))
    if not pairs:
        return emb[idx]
    n = len(items)
    u, v = emb[idx[:n]], emb[idx[n:]]
    return np.concatenate([u, v, np.abs(u - v), u * v], axis=1).astype(np.float32, copy=False)
