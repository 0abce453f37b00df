"""Full-size dry run of the MS-COCO text-to-image recipe on this CPU, with random weights of the
released shapes: a CLIP ViT-L/14 text tower (transformers `CLIPTextModel`: 12 layers, width 768,
77 tokens, vocabulary 49408; tokenizer: a byte-level BPE built locally, as the tests build theirs,
since the real vocabulary cannot be downloaded here), MaskGIT's VQGAN f16 (256 x 256 images,
16 x 16 = 256 tokens, 1024 codes) and the papers' S-size NATs with text conditioning: U-ViT-S
(AutoNAT-S, Tab. 4: 13 blocks, width 512) and ENAT-S (13 blocks: 11 encoder + 2 SC-Attention
decoder). Each model is saved as a self-contained model directory (its text encoder inside) and
sampled by `autonat sample --prompt ... --steps 8 --n 1` in its own process: wall-clock of the
first image (load + encode the prompt + 8 steps + VQGAN decode) and of a warm one, and the
process's peak resident memory (VmHWM). FLOPs per image (FlopCounterMode; the NAT's 8 steps, both
guidance passes, text encoder and VQGAN excluded and counted separately).

    python bench/coco_dry_run.py --out runs/coco-dry        (~5 min, ~1.5 GB of disk)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a man riding a wave on top of a surfboard"      # an MS-COCO val caption (COCO id 139)
CLIP_L14 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                max_position_embeddings=77, vocab_size=49408, projection_dim=768)


def clip_l14(path: Path) -> Path:
    """A CLIP ViT-L/14 text tower directory with random weights (shapes as released)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from text_fixtures import tiny_clip_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel
    tok = tiny_clip_tokenizer(max_length=77, words=tuple(PROMPT.split()))
    cfg = CLIPTextConfig(**CLIP_L14, bos_token_id=512, eos_token_id=513, pad_token_id=513)
    torch.manual_seed(0)
    CLIPTextModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build(out: Path) -> dict[str, Path]:
    from autonat.bundle import Bundle
    from autonat.models.registry import build_model, count_parameters
    from autonat.text.conditioner import TextConditioner
    from autonat.text.encoders import load_text_encoder
    from autonat.tokenizer.maskgit_vqgan import MaskGITVQGAN, MaskGITVQGANConfig
    clip = clip_l14(out / "clip-l14")
    torch.manual_seed(1)
    vq = MaskGITVQGAN(MaskGITVQGANConfig()).eval()
    dirs = {}
    for name in ("S", "enat-S"):
        torch.manual_seed(2)
        model = build_model(name, condition="text", text_dim=768, text_len=77, codebook_size=1024,
                            seq_len=256).eval()
        print(f"{name}: {count_parameters(model) / 1e6:.1f} M parameters", flush=True)
        d = out / f"coco-{name}"
        Bundle(model, vq, TextConditioner(load_text_encoder(str(clip))), name=f"coco-{name}").save(d)
        dirs[name] = d
    return dirs


def flops(model_dir: Path) -> dict:
    from autonat.bundle import Bundle
    from autonat.metrics.cost import count_flops, decode_flops, sampling_flops
    from autonat.presets import maskgit
    b = Bundle.load(str(model_dir))
    cond = b.conditioner.condition([PROMPT])
    st = maskgit(8)
    enc = b.conditioner.encoder
    res = {"nat_tflops": sampling_flops(b.model, st, cond) / 1e12,
           "text_encoder_gflops": count_flops(lambda: enc.encode([PROMPT]), (enc.model,)) / 1e9,
           "vqgan_decode_gflops": decode_flops(b.tokenizer) / 1e9}
    if b.model.arch == "enat":
        res["nat_tflops_no_reuse"] = sampling_flops(b.model.without_reuse(), st, cond) / 1e12
    return res


def measure(model_dir: Path, out: Path, prompt: str = PROMPT, steps: int = 8, strategy: str = "maskgit") -> dict:
    """`autonat sample` in a child process (first image: load + prompt + steps + decode), then a
    warm image in the same process in bf16 and in fp32, and that process's peak memory (VmHWM)."""
    code = (
        "import json, time\n"
        "from autonat.generate import SampleConfig, generate_to_dir\n"
        "from autonat.pipeline import Pipeline\n"
        "t = time.perf_counter()\n"
        f"generate_to_dir(SampleConfig(model={str(model_dir)!r}, prompt={prompt!r}, strategy={strategy!r}, "
        f"steps={steps}, n=1, device='cpu'), {str(out)!r}, show_progress=False)\n"
        "first = time.perf_counter() - t\n"
        f"pipe = Pipeline.from_pretrained({str(model_dir)!r})\n"
        "warm = []\n"
        "for bf16 in (True, False):\n"
        "    t = time.perf_counter()\n"
        f"    pipe(prompt=[{prompt!r}], num_steps={steps}, strategy={strategy!r}, bf16=bf16, progress=False)\n"
        "    warm.append(time.perf_counter() - t)\n"
        "hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
        "print(json.dumps({'first_seconds': round(first, 2), 'warm_seconds_bf16': round(warm[0], 2), "
        "'warm_seconds_fp32': round(warm[1], 2), 'peak_rss_gb': round(hwm / 2**20, 2)}))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"sampling {model_dir} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    dirs = build(out)
    rows = {}
    for name, d in dirs.items():
        rows[name] = {**flops(d), **measure(d, out / f"sample-{name}")}
        print(name, json.dumps(rows[name]), flush=True)
    rows["threads"] = torch.get_num_threads()
    rows["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
