"""Text encoders: what turns prompts into the states a text-conditional NAT attends to.

Every encoder fulfils one small contract:

    encoder.name        what it is, for messages
    encoder.identity    a hash of its weights, config and tokenizer: saved with every model and
                        embedding cache it produced, so states of another encoder are refused
    encoder.max_length  L: every prompt is padded to L tokens (CLIP: 77)
    encoder.dim         D: width of the states
    encoder.token_count(prompt) -> tokens the prompt needs (special tokens included); a prompt
                        longer than L is refused, never silently truncated
    encoder.check(prompts)   that refusal without encoding (a pre-flight before writing anything)
    encoder.encode(prompts) -> (states [B, L, D] float32, padding mask [B, L] bool); refuses a
                        too-long prompt itself
    encoder.save_pretrained(dir)   a directory `load_text_encoder` opens again

Two kinds: autonat's own small dual encoder trained on the user's captions (`dual_encoder`; the
offline default) and `HFTextEncoder`, the papers' choice: a frozen `transformers` encoder - the CLIP text tower (U-ViT
and AutoNAT's MS-COCO model take CLIP ViT-L/14's 77 last-layer token states) or a T5 encoder
(Muse) - from a local directory or, when the user is online, a hub id. A local directory may be a
model directory holding its tokenizer files, or a diffusers pipeline directory with
`text_encoder/` and `tokenizer/`. `transformers` is an optional extra (`pip install autonat[text]`).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import torch

from ..io import AutonatError


@runtime_checkable
class TextEncoder(Protocol):
    name: str
    identity: str
    max_length: int
    dim: int

    def token_count(self, prompt: str) -> int: ...

    def check(self, prompts: Sequence[str]) -> None: ...

    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]: ...

    def save_pretrained(self, path: str | Path) -> None: ...


def _transformers():
    try:
        import transformers
    except ImportError as e:   # pragma: no cover - depends on the environment
        raise AutonatError("text encoders from transformers need the optional extra: "
                           "pip install 'autonat[text]'") from e
    return transformers


def _locate(spec: str) -> tuple[str, str | None, str | None, bool]:
    """(where, model subfolder, tokenizer subfolder, local) of a directory or hub id."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / "text_encoder" / "config.json").is_file():      # a diffusers pipeline
            tok = "tokenizer" if (path / "tokenizer").is_dir() else None
            return str(path), "text_encoder", tok, True
        if not (path / "config.json").is_file():
            raise AutonatError(f"{path} is not a text encoder directory (no config.json, and no "
                               "text_encoder/config.json of a diffusers pipeline)")
        return str(path), None, None, True
    if path.exists():
        raise AutonatError(f"{path} is not a directory; give a text encoder directory or a hub id")
    if spec.startswith((".", "/", "~")) or spec.count("/") != 1:     # hub ids are "org/name"
        raise AutonatError(f"no text encoder directory {spec}")
    return spec, None, None, False


class HFTextEncoder:
    """A frozen CLIP-text or T5 encoder from `transformers` (see module docstring)."""

    def __init__(self, spec: str, device: str | torch.device = "cpu", batch_size: int = 64):
        tf = _transformers()
        where, sub, tok_sub, local = _locate(str(spec))
        kw = {"local_files_only": local or bool(os.environ.get("HF_HUB_OFFLINE"))}
        try:
            config = tf.AutoConfig.from_pretrained(where, subfolder=sub or "", **kw)
            kind = config.model_type
            if kind in ("clip", "clip_text_model"):
                cls = tf.CLIPTextModelWithProjection if "WithProjection" in str(
                    getattr(config, "architectures", None)) else tf.CLIPTextModel
            elif kind in ("t5", "umt5", "mt5"):
                cls = tf.T5EncoderModel
            else:
                raise AutonatError(f"{spec}: a {kind!r} model is not a supported text encoder "
                                   "(CLIP text or T5 encoders)")
            self.model = cls.from_pretrained(where, subfolder=sub or "", **kw).eval().requires_grad_(False)
            self.tokenizer = tf.AutoTokenizer.from_pretrained(where, subfolder=tok_sub or sub or "", **kw)
        except AutonatError:
            raise
        except (OSError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise AutonatError(f"cannot load the text encoder {spec}: {first}") from None
        self.kind = kind
        self.spec = str(Path(where).resolve()) if local else str(spec)   # what a model records
        self.name = f"{kind} text encoder {spec}"
        self.model.to(device)
        self.device, self.batch_size = torch.device(device), batch_size
        text_cfg = getattr(config, "text_config", config)
        self.dim = int(getattr(text_cfg, "hidden_size", None) or getattr(text_cfg, "d_model"))
        limit = getattr(text_cfg, "max_position_embeddings", None)
        tok_limit = self.tokenizer.model_max_length
        if limit is None:      # T5: relative positions; the tokenizer's limit is the one to keep
            limit = tok_limit if tok_limit and tok_limit < 1 << 20 else 512
        self.max_length = int(min(limit, tok_limit) if tok_limit and tok_limit < 1 << 20 else limit)
        self.identity = self._identity(config)

    def _identity(self, config) -> str:
        """Hash of the config, the tokenizer's vocabulary and a strided sample of every weight."""
        where = ("_name_or_path", "name_or_path", "_commit_hash", "transformers_version")   # not what it computes
        cfg = {k: v for k, v in config.to_dict().items() if k not in where}
        h = hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode())
        h.update(json.dumps(sorted(self.tokenizer.get_vocab().items())).encode())
        for name, p in sorted(self.model.state_dict().items()):
            flat = p.detach().flatten()
            h.update(name.encode())
            h.update(flat[:: max(1, flat.numel() // 4096)].float().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def save_pretrained(self, path: str | Path) -> None:
        """Weights, config and tokenizer in one directory (loadable by `load_text_encoder`)."""
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    def token_count(self, prompt: str) -> int:
        return len(self.tokenizer(prompt, truncation=False)["input_ids"])

    def _too_long(self, prompt: str, n: int) -> AutonatError:
        return AutonatError(f"prompt {prompt[:60]!r}{'...' if len(prompt) > 60 else ''} is {n} tokens long; "
                            f"{self.name} takes at most {self.max_length}")

    def check(self, prompts: Sequence[str]) -> None:
        for p in prompts:
            if not isinstance(p, str):
                raise AutonatError(f"a prompt must be text, got {p!r}")
            n = self.token_count(p)
            if n > self.max_length:
                raise self._too_long(p, n)

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        prompts = list(prompts)
        bad = [p for p in prompts if not isinstance(p, str)]
        if bad:
            raise AutonatError(f"a prompt must be text, got {bad[0]!r}")
        states, masks = [], []
        for lo in range(0, len(prompts), self.batch_size):
            batch = prompts[lo:lo + self.batch_size]
            enc = self.tokenizer(batch, padding="max_length", max_length=self.max_length, truncation=False)
            for p, row in zip(batch, enc["input_ids"]):
                if len(row) > self.max_length:
                    raise self._too_long(p, len(row))
            ids = torch.tensor(enc["input_ids"], device=self.device)
            mask = torch.tensor(enc["attention_mask"], device=self.device)
            # CLIP's causal text tower ignores its attention mask in the released models (padding
            # is the EOS token and every state attends only to earlier ones); T5 uses it.
            out = self.model(input_ids=ids, attention_mask=None if self.kind.startswith("clip") else mask)
            states.append(out.last_hidden_state.float().cpu())
            masks.append(mask.bool().cpu())
        if not prompts:
            return torch.zeros(0, self.max_length, self.dim), torch.zeros(0, self.max_length, dtype=torch.bool)
        return torch.cat(states), torch.cat(masks)


def load_checked(spec: str, identity: str | None, what: str, device: str | torch.device = "cpu") -> TextEncoder:
    """The text encoder at `spec`, refused unless it has `identity` (the one `what` was made
    with; None = no record to check against)."""
    enc = load_text_encoder(spec, device)
    if identity and enc.identity != identity:
        raise AutonatError(f"text encoder {spec} (identity {enc.identity}) is not the one {what} was made with "
                           f"(identity {identity})")
    return enc


def load_text_encoder(spec: str, device: str | torch.device = "cpu") -> TextEncoder:
    """A text encoder from a directory or hub id: autonat's own dual encoder
    (`autonat text-encoder train`) or a transformers CLIP-text / T5 encoder."""
    from .dual_encoder import DualTextEncoder, is_dual_encoder_dir
    if is_dual_encoder_dir(spec):
        return DualTextEncoder(spec, device)
    return HFTextEncoder(spec, device)
