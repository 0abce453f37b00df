"""`autonat convert`: the authors' released checkpoints -> self-contained autonat model directories.

    AutoNAT-L (LeapLabTHU/ImprovedNAT, U-ViT)  -> U-ViT with the authors' layout (`autonat-L`)
    ENAT-L    (LeapLabTHU/ENAT)                -> ENAT with the authors' layout (`enat-L-official`)
    MaskGIT VQGAN f16 (their `vqgan_jax_strongaug.ckpt`) -> `autonat.tokenizer.MaskGITVQGAN`
    the authors' strategy YAML                 -> a strategy (their rules: floor counts, uncond always)

Checkpoints are read with `torch.load(weights_only=True)` only. The kind is detected from the key
names and every dimension from the tensor shapes; what shapes cannot tell (attention heads, ENAT's
encoder/decoder split) comes from the released configurations or from `--heads` / `--enc-dec`.
Every key is accounted for: keys the authors' forward never uses (`prev_embedder.*`) are reported
and dropped; any other unknown or missing key is an error listing them.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import torch

from .bundle import Bundle
from .io import AutonatError, AtomicDir
from .models.enat import ENAT
from .models.registry import VARIANTS
from .models.uvit import UViT

RELEASED_HEADS = {768: 8, 1024: 16}            # AutoNAT-L: d 768, 8 heads; ENAT-L: d 1024, 16 heads
RELEASED_ENC_DEC = {24: (22, 2)}               # ENAT-L: 22 encoder + 2 decoder blocks
IGNORED = ("prev_embedder.",)                  # in ENAT's checkpoint, unused by its forward
# the authors' adaLN chunk order -> autonat's (shift, scale, gate; shift, scale, gate; ctx shift, scale)
ADALN_ORDER = (0, 1, 4, 5, 6, 7, 2, 3)


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a .pth/.ckpt file (unwrapping {"state_dict": ...}-style containers)."""
    path = Path(path)
    if not path.is_file():
        raise AutonatError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle/zip errors come in many types
        raise AutonatError(f"{path}: cannot be read safely with torch.load(weights_only=True) "
                           f"({str(e).splitlines()[0][:200]})") from None
    for key in ("state_dict", "model", "nnet", "model_ema", "ema"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict) and not torch.is_tensor(obj.get(key)):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise AutonatError(f"{path}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def detect(state: dict[str, torch.Tensor]) -> str:
    if "context_embed.word_embeddings.weight" in state:
        return "uvit"
    if "x_embedder.word_embeddings.weight" in state and "y_embedder.embedding_table.weight" in state:
        return "enat"
    if "encoder.conv_in.weight" in state and "quantize.embedding.weight" in state:
        return "vqgan"
    raise AutonatError("unrecognised checkpoint: expected the authors' AutoNAT U-ViT (context_embed.*), "
                       "ENAT (x_embedder.*, y_embedder.*) or MaskGIT VQGAN (encoder.*, quantize.*) keys")


class _Keys:
    """Takes tensors out of a state dict by name; at the end, every key must have been taken."""

    def __init__(self, state: dict[str, torch.Tensor], what: str):
        self.state, self.what, self.used = state, what, set()

    def __call__(self, key: str) -> torch.Tensor:
        if key not in self.state:
            raise AutonatError(f"{self.what}: missing key {key!r}")
        self.used.add(key)
        return self.state[key].float()

    def count(self, pattern: str) -> int:
        rx = re.compile(pattern)
        return len({m.group(1) for k in self.state if (m := rx.match(k))})

    def finish(self) -> list[str]:
        ignored = sorted(k for k in self.state if k.startswith(IGNORED))
        unknown = sorted(set(self.state) - self.used - set(ignored))
        if unknown:
            raise AutonatError(f"{self.what}: {len(unknown)} key(s) this converter does not know: "
                               f"{', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}")
        return ignored


def _heads(dim: int, heads: int | None) -> int:
    h = heads or RELEASED_HEADS.get(dim)
    if h is None:
        raise AutonatError(f"attention heads cannot be read from a checkpoint; pass --heads (width {dim})")
    return h


def _block(k: _Keys, src: str, dst: str, out: dict, names=("norm1", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")):
    for n in names:
        for p in ("weight", "bias"):
            if f"{src}.{n}.{p}" in k.state:
                out[f"{dst}.{n}.{p}"] = k(f"{src}.{n}.{p}")


def uvit_from_official(state: dict, heads: int | None = None) -> tuple[Any, dict, list[str]]:
    """(UViTConfig, autonat state dict, ignored keys) of the authors' U-ViT."""
    from .models.uvit import UViTConfig
    k = _Keys(state, "AutoNAT U-ViT checkpoint")
    tok, ctx = k("token_emb.word_embeddings.weight"), k("context_embed.word_embeddings.weight")
    dim, n_in = tok.shape[1], k.count(r"in_blocks\.(\d+)\.")
    cfg = UViTConfig(codebook_size=tok.shape[0] - 1, seq_len=state["token_emb.position_embeddings.weight"].shape[0],
                     num_classes=ctx.shape[0] - 1, dim=dim, depth=2 * n_in + 1, heads=_heads(dim, heads),
                     mlp_ratio=state["mid_block.mlp.fc1.weight"].shape[0] / dim,
                     qkv_bias="mid_block.attn.qkv.bias" in state, **VARIANTS["uvit"]["official"])
    out = {"token_emb.weight": tok, "class_emb.weight": ctx,
           "pos_emb": torch.cat([k("context_embed.position_embeddings.weight"),
                                 k("token_emb.position_embeddings.weight")]).unsqueeze(0),
           "in_norm.weight": k("token_emb.LayerNorm.weight"), "in_norm.bias": k("token_emb.LayerNorm.bias"),
           "class_norm.weight": k("context_embed.LayerNorm.weight"),
           "class_norm.bias": k("context_embed.LayerNorm.bias"),
           "out_norm.weight": k("norm.weight"), "out_norm.bias": k("norm.bias"),
           "head.fc.weight": k("mlm_layer.fc.weight"), "head.fc.bias": k("mlm_layer.fc.bias"),
           "head.norm.weight": k("mlm_layer.ln.weight"), "head.norm.bias": k("mlm_layer.ln.bias"),
           "head.bias": k("mlm_layer.bias").flatten()[:cfg.codebook_size]}
    names = [f"in_blocks.{i}" for i in range(n_in)] + ["mid_block"] + [f"out_blocks.{i}" for i in range(n_in)]
    for b in names:
        _block(k, b, b, out, ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2", "skip_linear"))
    return cfg, out, k.finish()


def enat_from_official(state: dict, heads: int | None = None,
                       enc_dec: tuple[int, int] | None = None) -> tuple[Any, dict, list[str]]:
    """(ENATConfig, autonat state dict, ignored keys) of the authors' ENAT."""
    from .models.enat import ENATConfig
    k = _Keys(state, "ENAT checkpoint")
    tok = k("x_embedder.word_embeddings.weight")
    dim, n_blocks = tok.shape[1], k.count(r"blocks\.(\d+)\.")
    E, D = enc_dec or RELEASED_ENC_DEC.get(n_blocks, (None, None))
    if E is None or E + D != n_blocks or min(E, D) < 1:
        raise AutonatError(f"the checkpoint has {n_blocks} blocks; pass --enc-dec E,D with E + D = {n_blocks} "
                           f"(the split is not stored in the weights)")
    cfg = ENATConfig(codebook_size=tok.shape[0] - 1, seq_len=state["x_embedder.position_embeddings.weight"].shape[0],
                     num_classes=state["y_embedder.embedding_table.weight"].shape[0] - 1, dim=dim,
                     encoder_depth=E, decoder_depth=D, heads=_heads(dim, heads),
                     mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / dim, **VARIANTS["enat"]["official"])
    out = {"token_emb.weight": tok, "pos_emb": k("x_embedder.position_embeddings.weight").unsqueeze(0),
           "embed_norm.weight": k("x_embedder.LayerNorm.weight"), "embed_norm.bias": k("x_embedder.LayerNorm.bias"),
           "class_emb.weight": k("y_embedder.embedding_table.weight"),
           "reuse_norm.weight": k("prev_proj.norm.weight"), "reuse_norm.bias": k("prev_proj.norm.bias"),
           "out_norm.weight": k("norm.weight"), "out_norm.bias": k("norm.bias"),
           "head.fc.weight": k("mlm_layer.fc.weight"), "head.fc.bias": k("mlm_layer.fc.bias"),
           "head.norm.weight": k("mlm_layer.ln.weight"), "head.norm.bias": k("mlm_layer.ln.bias"),
           "head.bias": k("mlm_layer.bias").flatten()[:cfg.codebook_size]}
    for n in ("fc1", "fc2"):
        for p in ("weight", "bias"):
            out[f"reuse_mlp.{n}.{p}"] = k(f"prev_proj.mlp.{n}.{p}")
    for i in range(n_blocks):
        src, dst = f"blocks.{i}", (f"encoder.{i}" if i < E else f"decoder.{i - E}")
        _block(k, src, dst, out, ("attn.proj", "mlp.fc1", "mlp.fc2"))
        out[f"{dst}.proj.weight"], out[f"{dst}.proj.bias"] = out.pop(f"{dst}.attn.proj.weight"), out.pop(f"{dst}.attn.proj.bias")
        for p in ("weight", "bias"):
            out[f"{dst}.qkv.{p}"] = torch.cat([k(f"{src}.attn.q.{p}"), k(f"{src}.attn.kv.B.{p}")])
            out[f"{dst}.kv_ctx.{p}"] = k(f"{src}.attn.kv.A.{p}")
            chunks = k(f"{src}.adaLN_modulation.1.{p}").chunk(8, dim=0)
            out[f"{dst}.ada.1.{p}"] = torch.cat([chunks[j] for j in ADALN_ORDER])
    return cfg, out, k.finish()


def vqgan_from_official(state: dict, image_size: int = 256, groups: int = 32) -> tuple[Any, dict, list[str]]:
    """(MaskGITVQGANConfig, state dict, ignored keys): the parameter names are the authors'."""
    from .tokenizer.maskgit_vqgan import MaskGITVQGANConfig
    k = _Keys(state, "MaskGIT VQGAN checkpoint")
    ch = state["encoder.conv_in.weight"].shape[0]
    levels = k.count(r"encoder\.down\.(\d+)\.")
    mult = tuple(state[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // ch for i in range(levels))
    cfg = MaskGITVQGANConfig(image_size=image_size, channels=state["encoder.conv_in.weight"].shape[1], ch=ch,
                             ch_mult=mult, num_res_blocks=k.count(r"encoder\.down\.0\.block\.(\d+)\."),
                             z_channels=state["encoder.conv_out.weight"].shape[0],
                             codebook_size=state["quantize.embedding.weight"].shape[0], groups=groups)
    out = {key: k(key) for key in state if not key.startswith(IGNORED)}
    return cfg, out, k.finish()


def _digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def convert(checkpoint: str | Path | None, out: str | Path, *, vqgan: str | Path | None = None,
            tokenizer: str | Path | None = None, strategy: str | Path | None = None, heads: int | None = None,
            enc_dec: tuple[int, int] | None = None, image_size: int = 256, groups: int = 32) -> dict:
    """Write a self-contained model directory (or a tokenizer directory when only `vqgan` is
    given) to `out`, atomically. Returns a summary (what was converted, keys ignored)."""
    from .strategy import Strategy
    from .tokenizer import MaskGITVQGAN, load as load_tokenizer
    if checkpoint is None and vqgan is None:
        raise AutonatError("nothing to convert: give a NAT checkpoint and/or --vqgan")
    out = Path(out)
    if out.exists():
        raise AutonatError(f"--out {out} already exists; convert writes a new directory")
    summary: dict[str, Any] = {"out": str(out), "ignored_keys": []}
    tok = None
    if vqgan is not None:
        tcfg, tstate, ignored = vqgan_from_official(read_checkpoint(vqgan), image_size, groups)
        tok = MaskGITVQGAN(tcfg)
        tok.load_state_dict(tstate)
        summary.update(tokenizer=f"maskgit-vqgan f{tcfg.factor}, {tcfg.codebook_size} codes",
                       ignored_keys=summary["ignored_keys"] + ignored)
    elif tokenizer is not None:
        tok = load_tokenizer(tokenizer)
    if checkpoint is None:
        with AtomicDir(out) as tmp:
            tok.save_pretrained(tmp)
        return summary
    if tok is None:
        raise AutonatError("a converted model needs its tokenizer: pass --vqgan (the authors' VQGAN "
                           "checkpoint) or --tokenizer (a converted tokenizer directory)")
    state = read_checkpoint(checkpoint)
    kind = detect(state)
    if kind == "vqgan":
        raise AutonatError(f"{checkpoint} is a VQGAN checkpoint; pass it as --vqgan")
    cfg, mstate, ignored = (uvit_from_official(state, heads) if kind == "uvit"
                            else enat_from_official(state, heads, enc_dec))
    model = (UViT if kind == "uvit" else ENAT)(cfg)
    model.load_state_dict(mstate)
    model.meta = {"tokenizer": {"name": "tokenizer", "grid": [tok.config.grid_size] * 2},
                  "training": {"source": f"converted from {Path(checkpoint).name} (sha256 {_digest(checkpoint)})",
                               "mask_dist": "beta:12,3", "class_names": [str(i) for i in range(cfg.num_classes)]}}
    try:
        bundle = Bundle(model, tok)
    except AutonatError as e:
        raise AutonatError(f"{e} (check --image-size)") from None
    st = Strategy.load(strategy) if strategy else None
    if st is None and kind == "uvit" and (cfg.dim, cfg.depth, cfg.seq_len) == (768, 25, 256):
        from .presets import autonat_imagenet_t8
        st = autonat_imagenet_t8()                      # the strategy searched for AutoNAT-L
    bundle.save(out, strategies=[st] if st is not None else (),
                strategy_extra={"searched_for": "the authors' release"})
    if st is not None:
        summary["strategy"] = f"strategies/T{st.steps}.json ({st.name}, rounding {st.rounding})"
    summary.update(kind=kind, parameters=sum(v.numel() for v in mstate.values()),
                   ignored_keys=summary["ignored_keys"] + ignored)
    return summary
