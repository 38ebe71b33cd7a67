"""Pre-trained weights by name for the ``paper`` profile (timm, the Hugging Face hub cache):
described and checked here (``check() -> list[str]``: what is missing), never downloaded by nml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def _hf_cached(repo_id: str, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, filename), str)


@dataclass(frozen=True)
class TimmModel:
    """A timm architecture whose pretrained weights must be in the Hugging Face cache or ``root``."""

    name: str
    description: str = ""

    def check(self, root: str | Path | None = None) -> list[str]:
        import timm

        if not timm.is_model(self.name):
            return [f"timm has no model {self.name!r} (see timm.list_models())"]
        if root is not None:
            base = Path(root).expanduser()
            found = [p for p in (base / self.name, *(base / f"{self.name}{s}" for s in (".safetensors", ".pth", ".bin")))
                     if p.exists()]
            return [] if found else [f"{self.name}: no weights {base}/{self.name}[.safetensors|.pth|.bin]"]
        cfg = timm.models.get_pretrained_cfg(self.name)
        hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        if not hub_id:
            return [f"{self.name}: timm knows no hub weights for it; give a weights folder"]
        if not any(_hf_cached(hub_id, f) for f in ("model.safetensors", "pytorch_model.bin")):
            return [f"{self.name}: weights {hub_id} not in the Hugging Face cache "
                    f"(run once with network: timm.create_model({self.name!r}, pretrained=True))"]
        return []


@dataclass(frozen=True)
class HFModel:
    """A Hugging Face hub model: a snapshot in the hub cache, or a local folder ``root/<name>``."""

    name: str
    description: str = ""

    def check(self, root: str | Path | None = None) -> list[str]:
        local = Path(self.name).expanduser()
        if local.is_dir():  # a folder written by save_pretrained
            return [] if (local / "config.json").is_file() else [f"{self.name}: no config.json in that folder"]
        if root is not None:
            folder = Path(root).expanduser() / self.name
            if not (folder / "config.json").is_file():
                return [f"{self.name}: no {folder}/config.json"]
            return []
        if not _hf_cached(self.name, "config.json"):
            return [f"{self.name}: not in the Hugging Face cache (run once with network: "
                    f"huggingface_hub.snapshot_download({self.name!r}))"]
        return []


# The published models the paper profile names (NMTune Table 2, TURN's backbones).
PAPER_MODELS: dict[str, TimmModel | HFModel] = {
    m.name: m for m in [
        TimmModel("resnet50.a1_in1k", "ResNet-50 (ImageNet-1K)"),
        TimmModel("convnext_tiny.fb_in1k", "ConvNeXt-T (ImageNet-1K)"),
        TimmModel("vit_base_patch16_224.mae", "MAE ViT-B/16"),
        TimmModel("vit_base_patch16_clip_224.openai", "CLIP ViT-B/16 visual tower"),
        HFModel("facebook/vit-msn-base", "MSN ViT-B/16 (transformers)"),
        TimmModel("vit_base_patch16_224.augreg_in21k", "ViT-B/16 (ImageNet-21K)"),
        HFModel("openai/clip-vit-base-patch32", "CLIP ViT-B/32"),
    ]
}
