"""Tiny random-weight text encoders built offline, the way diffusers' and transformers' own tests
build theirs: a CLIP byte-level BPE tokenizer made here (256 byte symbols, their end-of-word forms,
a few merges) and a 2-layer CLIP text tower with random weights. Nothing is downloaded."""
from __future__ import annotations

from pathlib import Path

import torch


def _byte_symbols() -> list[str]:
    """CLIP/GPT-2's printable stand-ins for the 256 byte values."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    extra = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]


def tiny_clip_tokenizer(max_length: int = 16, words: tuple[str, ...] = ("red", "apple", "cat", "face")):
    from transformers import CLIPTokenizer
    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": 256 + i for i, s in enumerate(symbols)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = 512, 513
    merges = []
    for w in words:          # merge each word left to right into one symbol
        parts = list(w[:-1]) + [w[-1] + "</w>"]
        while len(parts) > 1:
            merges.append((parts[0], parts[1]))
            parts = [parts[0] + parts[1]] + parts[2:]
            vocab.setdefault(parts[0], len(vocab))
    tok = CLIPTokenizer(vocab=vocab, merges=list(dict.fromkeys(merges)))
    tok.model_max_length = max_length
    return tok


def tiny_clip_dir(path: str | Path, max_length: int = 16, hidden: int = 32, seed: int = 0,
                  projection: bool = False) -> Path:
    """A CLIP text encoder directory (config + weights + tokenizer) with random weights."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    path = Path(path)
    tok = tiny_clip_tokenizer(max_length)
    cfg = CLIPTextConfig(vocab_size=len(tok.get_vocab()), hidden_size=hidden, intermediate_size=37,
                         num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=max_length,
                         projection_dim=hidden, bos_token_id=512, eos_token_id=513, pad_token_id=513)
    torch.manual_seed(seed)
    model = (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def tiny_clip_model_dir(path: str | Path, max_length: int = 16, hidden: int = 32, image_size: int = 16,
                        seed: int = 0) -> Path:
    """A two-tower CLIP (`CLIPModel`, what CLIP score needs) with random weights + tokenizer."""
    from transformers import CLIPConfig, CLIPModel
    path = Path(path)
    tok = tiny_clip_tokenizer(max_length)
    text = dict(vocab_size=len(tok.get_vocab()), hidden_size=hidden, intermediate_size=37, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=max_length, bos_token_id=512, eos_token_id=513,
                pad_token_id=513)
    vision = dict(hidden_size=hidden, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                  image_size=image_size, patch_size=8)
    torch.manual_seed(seed)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=hidden)).save_pretrained(path)
    tok.save_pretrained(path)
    return path
