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
import warnings
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
        with warnings.catch_warnings():          # torch warns about odd pickle protocols of junk files
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle/zip errors come in many types
        raise AutonatError(f"{path}: {_unreadable_reason(path, e)}") from None
    for key in ("state_dict", "model", "nnet", "model_ema", "ema"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict) and not torch.is_tensor(obj.get(key)):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise AutonatError(f"{path}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _unreadable_reason(path: Path, error: Exception) -> str:
    """Why torch.load(weights_only=True) refused a file, in words (no terminal codes, no hints
    about torch versions that do not apply)."""
    import pickle
    with open(path, "rb") as f:
        head = f.read(4)
    if not (head[:2] == b"PK" or head[:1] == b"\x80"):
        return "not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle)"
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    what = re.search(r"(?:Unsupported global: |unsupported )GLOBAL ([\w.]+)", text)
    if isinstance(error, pickle.UnpicklingError) and what:
        return (f"holds a pickled {what.group(1)}, not only tensors; autonat reads plain tensor state dicts "
                f"(torch.load with weights_only=True never runs code from a file)")
    detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    first = (detail.group(1) if detail else text.splitlines()[0] if text else type(error).__name__).split(". ")[0][:160]
    return f"damaged, truncated or not a PyTorch checkpoint ({first})"


def detect(state: dict[str, torch.Tensor]) -> str:
    """The layout, from the key families (a missing key is the converter's to name)."""
    def has(*prefixes):
        return any(k.startswith(prefixes) for k in state)
    if has("context_embed.", "in_blocks.", "mid_block."):
        return "uvit"
    if has("x_embedder.", "y_embedder."):
        return "enat"
    if has("encoder.") and has("quantize."):
        return "vqgan"
    raise AutonatError("unrecognised checkpoint: expected the authors' AutoNAT U-ViT (context_embed.*), "
                       "ENAT (x_embedder.*, y_embedder.*) or MaskGIT VQGAN (encoder.*, quantize.*) keys")


class _Keys:
    """Takes tensors out of a state dict by name; at the end, every key must have been taken.
    Remembers which checkpoint key each taken tensor came from, so errors can name it."""

    def __init__(self, state: dict[str, torch.Tensor], what: str):
        self.state, self.what, self.used = state, what, set()
        self._origin: dict[int, str] = {}

    def __call__(self, key: str, cols: int | None = None) -> torch.Tensor:
        """The tensor `key` as fp32 (every released weight is floating point and finite); `cols`:
        the size its last dimension must have (the model width)."""
        if key not in self.state:
            raise AutonatError(f"{self.what}: missing key {key!r}")
        t = self.state[key]
        if not t.is_floating_point():
            raise AutonatError(f"{self.what}: weight {key} is stored as {t.dtype}, expected floating point")
        if cols is not None and (t.ndim < 1 or t.shape[-1] != cols):
            raise AutonatError(f"{self.what}: {key}: expected shape [..., {cols}] (the model width), "
                               f"found {list(t.shape)}")
        t = t.float()
        if t.device.type != "meta" and not bool(torch.isfinite(t).all()):
            raise AutonatError(f"{self.what}: weight {key} contains non-finite values (NaN/inf)")
        self.used.add(key)
        self._origin[id(t)] = key
        return t

    def consistent(self, pattern: str) -> None:
        """Keys matching `pattern` (whose group 1 is a block index) must have the same shape in
        every block; the odd one out is named with the shape the other blocks have."""
        rx = re.compile(pattern)
        by_suffix: dict[str, dict[str, tuple]] = {}
        for key, t in self.state.items():
            m = rx.match(key)
            if m:
                by_suffix.setdefault(key[m.end(1):], {})[key] = tuple(t.shape)
        for suffix, shapes in by_suffix.items():
            counts: dict[tuple, int] = {}
            for sh in shapes.values():
                counts[sh] = counts.get(sh, 0) + 1
            want = max(counts, key=counts.get)
            for key, sh in shapes.items():
                if sh != want:
                    raise AutonatError(f"{self.what}: {key}: expected shape {list(want)} (as in the other "
                                       f"blocks), found {list(sh)}")

    def labeller(self, converted: dict[str, torch.Tensor]):
        """name -> 'checkpoint key (autonat name)' for messages about the converted state."""
        def label(name: str) -> str:
            src = self._origin.get(id(converted[name])) if name in converted else None
            return f"{src} (-> {name})" if src and src != name else name
        return label

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


def _block(k: _Keys, src: str, dst: str, out: dict, names=("norm1", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"),
           optional: tuple[str, ...] = ()):
    """Copy a block's weights and biases; a missing one is an error unless it is an `optional`
    bias (qkv biases exist only in some layouts)."""
    for n in names:
        for p in ("weight", "bias"):
            key = f"{src}.{n}.{p}"
            if key in k.state or not (p == "bias" and n in optional):
                out[f"{dst}.{n}.{p}"] = k(key)


def uvit_from_official(state: dict, heads: int | None = None, keys: _Keys | None = None) -> tuple[Any, dict, list[str]]:
    """(UViTConfig, autonat state dict, ignored keys) of the authors' U-ViT."""
    from .models.uvit import UViTConfig
    k = keys or _Keys(state, "AutoNAT U-ViT checkpoint")
    k.consistent(r"(?:in_blocks\.\d+|mid_block|out_blocks\.\d+)()\.(?!skip_linear)")
    k.consistent(r"out_blocks\.(\d+)\.skip_linear")
    dim = k("mid_block.norm1.weight").shape[0]
    tok, ctx = k("token_emb.word_embeddings.weight", dim), k("context_embed.word_embeddings.weight", dim)
    n_in = k.count(r"in_blocks\.(\d+)\.")
    pos = k("token_emb.position_embeddings.weight", dim)
    cfg = UViTConfig(codebook_size=tok.shape[0] - 1, seq_len=pos.shape[0],
                     num_classes=ctx.shape[0] - 1, dim=dim, depth=2 * n_in + 1, heads=_heads(dim, heads),
                     mlp_ratio=k("mid_block.mlp.fc1.weight", dim).shape[0] / dim,
                     qkv_bias="mid_block.attn.qkv.bias" in state, **VARIANTS["uvit"]["official"])
    out = {"token_emb.weight": tok, "class_emb.weight": ctx,
           "pos_emb": torch.cat([k("context_embed.position_embeddings.weight", dim), pos]).unsqueeze(0),
           "in_norm.weight": k("token_emb.LayerNorm.weight"), "in_norm.bias": k("token_emb.LayerNorm.bias"),
           "class_norm.weight": k("context_embed.LayerNorm.weight"),
           "class_norm.bias": k("context_embed.LayerNorm.bias"),
           "out_norm.weight": k("norm.weight"), "out_norm.bias": k("norm.bias"),
           "head.fc.weight": k("mlm_layer.fc.weight"), "head.fc.bias": k("mlm_layer.fc.bias"),
           "head.norm.weight": k("mlm_layer.ln.weight"), "head.norm.bias": k("mlm_layer.ln.bias"),
           "head.bias": k("mlm_layer.bias").flatten()[:cfg.codebook_size]}
    names = [f"in_blocks.{i}" for i in range(n_in)] + ["mid_block"] + [f"out_blocks.{i}" for i in range(n_in)]
    for b in names:
        blocks = ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2") + \
            (("skip_linear",) if b.startswith("out_blocks") else ())
        _block(k, b, b, out, blocks, optional=("attn.qkv",))
    return cfg, out, k.finish()


def enat_from_official(state: dict, heads: int | None = None, enc_dec: tuple[int, int] | None = None,
                       keys: _Keys | None = None) -> tuple[Any, dict, list[str]]:
    """(ENATConfig, autonat state dict, ignored keys) of the authors' ENAT."""
    from .models.enat import ENATConfig
    k = keys or _Keys(state, "ENAT checkpoint")
    k.consistent(r"blocks\.(\d+)\.")
    dim = k("blocks.0.mlp.fc2.bias").shape[0]
    tok = k("x_embedder.word_embeddings.weight", dim)
    n_blocks = k.count(r"blocks\.(\d+)\.")
    E, D = enc_dec or RELEASED_ENC_DEC.get(n_blocks, (None, None))
    if E is None or E + D != n_blocks or min(E, D) < 1:
        raise AutonatError(f"the checkpoint has {n_blocks} blocks; pass --enc-dec E,D with E + D = {n_blocks} "
                           f"(the split is not stored in the weights)")
    cfg = ENATConfig(codebook_size=tok.shape[0] - 1, seq_len=k("x_embedder.position_embeddings.weight", dim).shape[0],
                     num_classes=k("y_embedder.embedding_table.weight", dim).shape[0] - 1, dim=dim,
                     encoder_depth=E, decoder_depth=D, heads=_heads(dim, heads),
                     mlp_ratio=k("blocks.0.mlp.fc1.weight", dim).shape[0] / dim, **VARIANTS["enat"]["official"])
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


def vqgan_from_official(state: dict, image_size: int = 256, groups: int = 32,
                        keys: _Keys | None = None) -> tuple[Any, dict, list[str]]:
    """(MaskGITVQGANConfig, state dict, ignored keys): the parameter names are the authors'."""
    from .tokenizer.maskgit_vqgan import MaskGITVQGANConfig
    k = keys or _Keys(state, "MaskGIT VQGAN checkpoint")
    conv_in = k("encoder.conv_in.weight")
    ch = conv_in.shape[0]
    levels = k.count(r"encoder\.down\.(\d+)\.")
    mult = tuple(k(f"encoder.down.{i}.block.0.conv1.weight").shape[0] // ch for i in range(levels))
    cfg = MaskGITVQGANConfig(image_size=image_size, channels=conv_in.shape[1], ch=ch,
                             ch_mult=mult, num_res_blocks=k.count(r"encoder\.down\.0\.block\.(\d+)\."),
                             z_channels=k("encoder.conv_out.weight").shape[0],
                             codebook_size=k("quantize.embedding.weight").shape[0], groups=groups)
    out = {key: k(key) for key in state if not key.startswith(IGNORED)}
    return cfg, out, k.finish()


def _converted(fn, state: dict, path, *args):
    """(config, converted state, ignored keys, key labeller) of `fn(state, *args)`; a checkpoint
    whose tensors do not have the released layout (so the conversion itself fails) is an error
    naming the file."""
    keys = _Keys(state, str(path))
    try:
        cfg, out, ignored = fn(state, *args, keys=keys)
    except AutonatError:
        raise
    except (RuntimeError, ValueError, IndexError, KeyError, ZeroDivisionError) as e:
        raise AutonatError(f"{path}: the tensors do not have the released layout ({str(e).splitlines()[0][:200]})") \
            from None
    return cfg, out, ignored, keys.labeller(out)


def _checked(cls, cfg, state: dict, path, label) -> dict:
    """The converted state checked against the target model's every name, shape and dtype kind
    (and for non-finite values) before anything is loaded."""
    from .weights import check_state
    with torch.device("meta"):
        skeleton = cls(cfg)
    return check_state(skeleton.state_dict(), state, str(path), label)


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
        vstate = read_checkpoint(vqgan)
        tcfg, tstate, ignored, label = _converted(vqgan_from_official, vstate, vqgan, image_size, groups)
        tok = MaskGITVQGAN(tcfg)
        tok.load_state_dict(_checked(MaskGITVQGAN, tcfg, tstate, vqgan, label))
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
    cfg, mstate, ignored, label = (_converted(uvit_from_official, state, checkpoint, heads) if kind == "uvit"
                                   else _converted(enat_from_official, state, checkpoint, heads, enc_dec))
    cls = UViT if kind == "uvit" else ENAT
    model = cls(cfg)
    model.load_state_dict(_checked(cls, cfg, mstate, checkpoint, label))
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
