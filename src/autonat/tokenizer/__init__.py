"""VQ tokenizer: images <-> token ids. `autonat.tokenizer.load("fashion-mnist")` gives the shipped one."""
from .model import Tokenizer, TokenizerConfig, load
from .quantizer import VectorQuantizer

__all__ = ["Tokenizer", "TokenizerConfig", "VectorQuantizer", "load"]
