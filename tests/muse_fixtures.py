"""A tiny random-weight aMUSEd pipeline directory, built offline the way diffusers' own tests
build theirs (UVit2DModel + VQModel + CLIPTextModelWithProjection + a locally made CLIP tokenizer +
AmusedScheduler), saved with `save_pretrained`. Nothing is downloaded."""
from __future__ import annotations

from pathlib import Path

import torch

from text_fixtures import tiny_clip_tokenizer


def tiny_amused_pipeline(max_length: int = 16, sample_size: int = 4, codebook: int = 8, vocab: int = 32,
                         vq_codebook: int | None = None):
    import warnings

    from diffusers import AmusedScheduler, UVit2DModel, VQModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers import AmusedPipeline
    torch.manual_seed(0)
    transformer = UVit2DModel(hidden_size=8, use_bias=False, hidden_dropout=0.0, cond_embed_dim=8,
                              micro_cond_encode_dim=2, micro_cond_embed_dim=10, encoder_hidden_size=8,
                              vocab_size=vocab, codebook_size=codebook, in_channels=8, block_out_channels=8,
                              num_res_blocks=1, downsample=True, upsample=True, block_num_heads=1,
                              num_hidden_layers=1, num_attention_heads=1, attention_dropout=0.0,
                              intermediate_size=8, layer_norm_eps=1e-06, ln_elementwise_affine=True,
                              sample_size=sample_size)
    torch.manual_seed(0)
    vqvae = VQModel(act_fn="silu", block_out_channels=[8], down_block_types=["DownEncoderBlock2D"], in_channels=3,
                    latent_channels=8, layers_per_block=1, norm_num_groups=8, num_vq_embeddings=vq_codebook or codebook,
                    out_channels=3, sample_size=8, up_block_types=["UpDecoderBlock2D"],
                    mid_block_add_attention=False, lookup_from_codebook=True)
    tok = tiny_clip_tokenizer(max_length, words=("red", "apple", "cat", "face", "a", "dog"))
    torch.manual_seed(0)
    text = CLIPTextModelWithProjection(CLIPTextConfig(
        bos_token_id=512, eos_token_id=513, pad_token_id=513, hidden_size=8, intermediate_size=8,
        layer_norm_eps=1e-05, num_attention_heads=1, num_hidden_layers=2, vocab_size=len(tok.get_vocab()),
        projection_dim=8, max_position_embeddings=max_length))
    return AmusedPipeline(vqvae=vqvae, tokenizer=tok, text_encoder=text, transformer=transformer,
                          scheduler=AmusedScheduler(mask_token_id=vocab - 1))


def tiny_amused_dir(path: str | Path, **kw) -> Path:
    path = Path(path)
    tiny_amused_pipeline(**kw).save_pretrained(path)
    return path
