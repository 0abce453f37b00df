"""Full-size dry run of aMUSEd-256 on this CPU, without its weights: a diffusers AmusedPipeline
with random weights of the released shapes (UVit2DModel: 22 layers, width 1024, 16 x 16 = 256
tokens, 8192 codes + [MASK] 8255; VQModel f16 with 5 levels of 128..768 channels, 64-d latents,
8192 codes; CLIP ViT-L/14 text tower with projection, 77 tokens: the shapes of
diffusers/scripts/convert_amused.py) is saved as a pipeline directory, then loaded by autonat and
sampled by `autonat sample --model DIR --prompt ... --strategy amused --steps 12 --n 1` in its
own process: wall-clock of the first image and of a warm one, peak resident memory (VmHWM), and
FLOPs (FlopCounterMode) per step and per image at 12 steps with guidance (both passes).

    python bench/amused_dry_run.py --out runs/amused-dry        (~5 min, ~3 GB of disk)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from coco_dry_run import CLIP_L14, ROOT, measure  # noqa: E402

PROMPT = "a photo of a dog"


def build(out: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from diffusers import AmusedScheduler, UVit2DModel, VQModel
    from text_fixtures import tiny_clip_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers import AmusedPipeline
    torch.manual_seed(0)
    # diffusers UVit2DModel defaults are aMUSEd's (22 layers, width 1024, 3 res blocks, 768-d cross-attention,
    # 8192 codes, vocabulary 8256: convert_amused.py); amused-256 has no down/upsampling, 16 x 16 latents
    transformer = UVit2DModel(sample_size=16, downsample=False, upsample=False)
    vqvae = VQModel(act_fn="silu", block_out_channels=[128, 256, 256, 512, 768],
                    down_block_types=["DownEncoderBlock2D"] * 5, in_channels=3, latent_channels=64,
                    layers_per_block=2, norm_num_groups=32, num_vq_embeddings=8192, out_channels=3, sample_size=32,
                    up_block_types=["UpDecoderBlock2D"] * 5, mid_block_add_attention=False, lookup_from_codebook=True)
    tok = tiny_clip_tokenizer(max_length=77, words=tuple(PROMPT.split()))
    text = CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_L14, bos_token_id=512, eos_token_id=513,
                                                      pad_token_id=513))
    pipe = AmusedPipeline(vqvae=vqvae, tokenizer=tok, text_encoder=text, transformer=transformer,
                          scheduler=AmusedScheduler(mask_token_id=8255))
    pipe.save_pretrained(out / "amused-256-random")
    params = {k: sum(p.numel() for p in m.parameters()) / 1e6 for k, m in
              (("transformer", transformer), ("vqvae", vqvae), ("text_encoder", text))}
    print("parameters (M):", json.dumps(params), flush=True)
    return out / "amused-256-random"


def flops(path: Path) -> dict:
    from autonat.bundle import Bundle
    from autonat.metrics.cost import decode_flops, sampling_flops
    from autonat.presets import amused
    b = Bundle.load(str(path))
    cond = b.conditioner.condition([PROMPT])
    total = sampling_flops(b.model, amused(12), cond)
    return {"tflops_per_image_T12": total / 1e12, "gflops_per_step": total / 12 / 1e9,
            "vqvae_decode_gflops": decode_flops(b.tokenizer) / 1e9,
            "transformer_parameters_M": sum(p.numel() for p in b.model.parameters()) / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    path = build(out)
    res = {**flops(path), **measure(path, out / "sample", PROMPT, steps=12, strategy="amused"),
           "threads": torch.get_num_threads()}
    res["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
