"""The model registry: named models, the hub files each one needs, and how to check them.

Like open_clip's pretrained table, a name maps to pinned hub sources, and the settings that must
travel with the weights (mapper type, prefix sizes, QuickGELU) travel here with them.

Pins: huggingface_hub wants full 40-character commit hashes. Where one is recorded the file is
fixed by it; the others (short hashes, a branch) could not be resolved from the machines that
wrote this (no hub access), so a download through them is checked by size and by its key set
instead (`HubFile.size_range`, `HubFile.keys`; see docs/models-offline.md, "Model pins").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from indexer.config import DEFAULT_TEXT_TOWER

_FULL_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class HubFile:
    repo: str
    filename: str
    revision: str  # a full commit hash, or (unverified) a short hash or branch
    # Accepted file size in bytes, for files whose pin doesn't fix the content: the tensors'
    # bytes from the architecture, plus up to 1 % container overhead (zip/pickle, JSON header).
    size_range: tuple[int, int] | None = None
    keys: int | None = None  # tensors in the file, for checkpoints (legacy buffers included)

    @property
    def verified_pin(self) -> bool:
        """True if revision is a full commit hash (the hub then serves exactly that content)."""
        return bool(_FULL_SHA.fullmatch(self.revision))


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    description: str
    clipcap: dict  # ClipCapConfig fields
    checkpoint: HubFile | None  # None = no hub mirror; the user supplies the file
    clip_files: tuple[HubFile, ...]
    quick_gelu: bool
    tokenizer_files: tuple[HubFile, ...]
    manual: str = ""  # where to get a checkpoint that has no hub mirror


def _band(tensor_bytes: int) -> tuple[int, int]:
    return tensor_bytes, tensor_bytes + tensor_bytes // 100


# OpenAI CLIP weights as open_clip publishes them on the hub (open_clip >= 2.29 reads these).
_VIT_B32 = "timm/vit_base_patch32_clip_224.openai"
_VIT_B32_REV = "a6f597a30f7b82c51704746581f9a4e41421e878"
_RN50X4 = "timm/resnet50x4_clip.openai"
_RN50X4_REV = "main"  # unverified: full commit not recorded yet (resolved on a connected machine)
_GPT2 = "openai-community/gpt2"
_GPT2_REV = "607a30d783dfa663caf39e06633721c8d4cfcd7e"

# Bytes of the fp32 tensors of each architecture (open_clip's state_dict; ClipCap's published
# layout: GPT-2 small with lm_head stored once, the MLP mapper, 12 uint8 causal masks and 12 fp32
# masked_bias scalars). Computed from the architectures; clipcap-reference.md §3 gives the same
# 636,217,392 for the MLP checkpoints.
CLIPCAP_MLP_BYTES = 636_217_392
CLIPCAP_MLP_KEYS = 177  # 148 GPT-2 weights + lm_head + 24 legacy buffers + 4 mapper tensors
VIT_B32_BYTES = 605_109_252
RN50X4_BYTES = 713_642_124


def _clip(repo: str, rev: str, tensor_bytes: int) -> tuple[HubFile, ...]:
    check = None if _FULL_SHA.fullmatch(rev) else _band(tensor_bytes)
    return (
        HubFile(repo, "open_clip_config.json", rev),
        HubFile(repo, "open_clip_model.safetensors", rev, size_range=check),
    )


_TOKENIZER = (HubFile(_GPT2, "vocab.json", _GPT2_REV), HubFile(_GPT2, "merges.txt", _GPT2_REV))

REGISTRY: dict[str, RegistryEntry] = {
    e.name: e
    for e in (
        RegistryEntry(
            name="clipcap-coco",
            description="ClipCap MLP + fine-tuned GPT-2, COCO captions (published default)",
            clipcap={"mapping": "mlp", "prefix_dim": 512, "prefix_length": 10},
            checkpoint=HubFile(
                "akhaliq/CLIP-prefix-captioning-COCO-weights",
                "coco_weights.pt",
                "cecb9cd",  # unverified short hash
                size_range=_band(CLIPCAP_MLP_BYTES),
                keys=CLIPCAP_MLP_KEYS,
            ),
            clip_files=_clip(_VIT_B32, _VIT_B32_REV, VIT_B32_BYTES),
            quick_gelu=True,
            tokenizer_files=_TOKENIZER,
        ),
        RegistryEntry(
            name="clipcap-conceptual",
            description="ClipCap MLP + fine-tuned GPT-2, Conceptual Captions",
            clipcap={"mapping": "mlp", "prefix_dim": 512, "prefix_length": 10},
            checkpoint=HubFile(
                "akhaliq/CLIP-prefix-captioning-conceptual-weights",
                "conceptual_weights.pt",
                # full hash of the short pin 7851f7b, from the hub's commit page
                "7851f7b3a552313405818648fe807ada460478b0",
                size_range=_band(CLIPCAP_MLP_BYTES),
                keys=CLIPCAP_MLP_KEYS,
            ),
            clip_files=_clip(_VIT_B32, _VIT_B32_REV, VIT_B32_BYTES),
            quick_gelu=True,
            tokenizer_files=_TOKENIZER,
        ),
        RegistryEntry(
            name="clipcap-coco-transformer",
            description="ClipCap transformer mapper, frozen GPT-2, CLIP RN50x4, COCO",
            clipcap={
                "mapping": "transformer",
                "prefix_dim": 640,
                "prefix_length": 40,
                "clip_length": 40,
                "num_layers": 8,
                "normalize_prefix": True,
            },
            checkpoint=None,
            clip_files=_clip(_RN50X4, _RN50X4_REV, RN50X4_BYTES),
            quick_gelu=True,  # only the text tower has GELUs in RN50x4; keep it OpenAI-exact
            tokenizer_files=_TOKENIZER,
            manual=(
                "Google Drive id 1GYPToCqFREwi285wPLhuVExlz7DDUDfJ "
                "(https://drive.google.com/file/d/1GYPToCqFREwi285wPLhuVExlz7DDUDfJ)"
            ),
        ),
    )
}


@dataclass(frozen=True)
class TextTowerEntry:
    """A query-side text tower (indexer/models/text_tower.py), trained into one CLIP's text space:
    its vectors search the image and caption vectors that CLIP already put in the index."""

    name: str
    description: str
    files: tuple[HubFile, ...]  # the first is config.json: its folder is the tower directory
    clip_repo: str  # the CLIP whose space it shares (stored models with another CLIP can't use it)


# sentence-transformers/clip-ViT-B-32-multilingual-v1 (Apache-2.0): multilingual DistilBERT, mean
# pooling, Dense 768->512, distilled into OpenAI ViT-B/32's text space, 50+ languages. Commit
# 238402c1 (hub tree page: model.safetensors and 2_Dense/model.safetensors present, PR #7).
_ML_REPO = "sentence-transformers/clip-ViT-B-32-multilingual-v1"
_ML_REV = "238402c12a26c6cb9d823b90bc8a4d32a27e434c"
TEXT_TOWERS: dict[str, TextTowerEntry] = {
    e.name: e
    for e in (
        TextTowerEntry(
            name=DEFAULT_TEXT_TOWER,
            description="multilingual query text tower for ViT-B/32 (DistilBERT, 50+ languages)",
            files=tuple(
                HubFile(_ML_REPO, f, _ML_REV)
                for f in (
                    "config.json",
                    "model.safetensors",
                    "tokenizer.json",
                    "sentence_bert_config.json",
                    "1_Pooling/config.json",
                    "2_Dense/config.json",
                    "2_Dense/model.safetensors",
                )
            ),
            clip_repo=_VIT_B32,
        ),
    )
}


def unverified_pins() -> list[HubFile]:
    """Hub files pinned by something other than a full commit hash (docs/models-offline.md,
    "Model pins")."""
    seen: dict[tuple[str, str], HubFile] = {}
    for e in REGISTRY.values():
        for f in (e.checkpoint, *e.clip_files, *e.tokenizer_files):
            if f is not None and not f.verified_pin:
                seen.setdefault((f.repo, f.filename), f)
    for t in TEXT_TOWERS.values():
        for f in t.files:
            if not f.verified_pin:
                seen.setdefault((f.repo, f.filename), f)
    return list(seen.values())
