#!/usr/bin/env python
"""Golden fixtures for autonat, computed with the AUTHORS' OWN CODE (scratch checkouts).

Run:  AUTHORS_DIR=/work/scratch/authors /work/scratch/authors/venv/bin/python bench/official_fixtures/make_fixtures.py \
        --out tests/fixtures/official      (the checkouts and venv as in docs/REFERENCE.md)

Uses (read-only, except the two one-line scratch patches documented in the README):
  /work/scratch/authors/ImprovedNAT  (AutoNAT: libs/nat_model.py UViT, libs/nat_misc.py NATSchedule,
                                      taming/ VQModel used as the tokenizer)
  /work/scratch/authors/ENAT         (ENAT: libs/models.py DiT, libs/nat_misc.py NATSchedule)
Both repos ship packages with the same names (libs, timm, taming), so each part purges them from
sys.modules before importing the other repo.
"""
import argparse
import importlib
import json
import math
import os
import sys
import types

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.abspath(__file__))
# the authors' checkouts (at COMMITS) live outside this repository: AUTHORS_DIR/{ImprovedNAT,ENAT}
AUTHORS = os.environ.get('AUTHORS_DIR', ROOT)
REPOS = {'ImprovedNAT': os.path.join(AUTHORS, 'ImprovedNAT'), 'ENAT': os.path.join(AUTHORS, 'ENAT')}
COMMITS = {'ImprovedNAT': '2ca99946b2ad1969672d05213d269e1256249f6b',
           'ENAT': '550f22c0d92442d333fd68ea5a24c0f364570a1b'}
# the CUDA-only torchvision wheel cannot load on CPU torch 2.13; the vendored timm (0.3.2) imports
# torchvision only for its data transforms, which are never used here -> empty stub package.
sys.path.insert(0, os.path.join(ROOT, 'stubs'))


def use_repo(name):
    for m in list(sys.modules):
        if m.split('.')[0] in ('libs', 'timm', 'taming'):
            del sys.modules[m]
    for p in REPOS.values():
        while p in sys.path:
            sys.path.remove(p)
    sys.path.insert(0, REPOS[name])
    importlib.invalidate_caches()


# ----------------------------------------------------------------------------------------------
# randomisation: every parameter gets a non-trivial random value (no zeros / identities left)
# ----------------------------------------------------------------------------------------------
BIAS_STD = 0.1     # all biases (Linear, Conv, mlm_layer.bias): N(0, 0.1)
NORM_STD = 0.1     # affine norms: weight 1 + N(0, 0.1), bias N(0, 0.1)


def randomize_(model, gen, emb_std):
    """Linear / Conv weight ~ N(0, 1/fan_in) (std = fan_in**-0.5), biases ~ N(0, BIAS_STD),
    LayerNorm / GroupNorm weight ~ 1 + N(0, NORM_STD), bias ~ N(0, NORM_STD),
    nn.Embedding weight ~ N(0, emb_std[module-name] or emb_std['default']),
    any other parameter (e.g. mlm_layer.bias) ~ N(0, BIAS_STD).
    Draws happen in model.named_parameters() order from one torch.Generator."""
    owner = {}
    for mname, mod in model.named_modules():
        for pname, _ in mod.named_parameters(recurse=False):
            owner[(mname + '.' + pname) if mname else pname] = (mname, mod, pname)
    with torch.no_grad():
        for name, p in model.named_parameters():
            mname, mod, pname = owner[name]
            z = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if isinstance(mod, (nn.Linear, nn.Conv2d)) and pname == 'weight':
                fan_in = p[0].numel()
                p.copy_(z / math.sqrt(fan_in))
            elif isinstance(mod, (nn.LayerNorm, nn.GroupNorm)):
                p.copy_(1.0 + NORM_STD * z if pname == 'weight' else NORM_STD * z)
            elif isinstance(mod, nn.Embedding):
                p.copy_(emb_std.get(mname, emb_std['default']) * z)
            else:
                p.copy_(BIAS_STD * z)


def sd_fp32(model):
    return {k: v.detach().to(torch.float32).contiguous().clone() for k, v in model.state_dict().items()}


def save_dir(out, name, weights, io, config):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    save_file(weights, os.path.join(d, 'weights.safetensors'))
    save_file({k: v.contiguous().clone() for k, v in io.items()}, os.path.join(d, 'io.safetensors'))
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(config, f, indent=1)
    total = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
    print(f'[{name}] {total / 1024:.1f} KiB  ({len(weights)} weight tensors, {len(io)} io tensors)')


# ----------------------------------------------------------------------------------------------
# deterministic replacements for the two random draws inside the authors' generate() loops
# ----------------------------------------------------------------------------------------------
class NoiseCtx:
    """Inside the context:
    * torch.distributions.Categorical(logits=L).sample() returns argmax(L + G_t) where G_t is the
      stored per-step Gumbel noise (Gumbel-max trick == exact categorical sampling), or argmax(L)
      in greedy mode (samp_noise is None).
    * numpy.random.gumbel(size=s) returns the stored per-step re-masking noise (float64), or zeros
      in greedy mode (mask_noise is None).
    Records every categorical draw (the raw argmax over ALL positions, before the authors'
    torch.where(is_mask, ...))."""

    def __init__(self, samp_noise=None, mask_noise=None):
        self.samp_noise, self.mask_noise = samp_noise, mask_noise
        self.i_samp = self.i_mask = 0
        self.draws = []
        self.margins = []

    def __enter__(self):
        ctx = self
        self._cat, self._gum = torch.distributions.Categorical, np.random.gumbel

        class _Cat:
            def __init__(self, logits=None, probs=None):
                assert logits is not None
                self.logits = logits

            def sample(self):
                score = self.logits
                if ctx.samp_noise is not None:
                    score = score + ctx.samp_noise[ctx.i_samp]
                ctx.i_samp += 1
                top2 = score.topk(2, dim=-1).values
                ctx.margins.append((top2[..., 0] - top2[..., 1]))
                out = score.argmax(-1)
                ctx.draws.append(out.clone())
                return out

        def _gumbel(loc=0.0, scale=1.0, size=None):
            assert loc == 0.0 and scale == 1.0
            if ctx.mask_noise is None:
                return np.zeros(size, dtype=np.float64)
            g = ctx.mask_noise[ctx.i_mask]
            ctx.i_mask += 1
            assert tuple(g.shape) == tuple(size)
            return g.numpy().astype(np.float64)

        torch.distributions.Categorical = _Cat
        np.random.gumbel = _gumbel
        return self

    def __exit__(self, *a):
        torch.distributions.Categorical = self._cat
        np.random.gumbel = self._gum


MIN_GAP = 1e-3


def make_noise(seed, T_s, T_m, B, N, K):
    """Gumbel noise. Sampling noise is rounded to fp16-representable values (so the fp16 file stores it
    exactly) and used in fp32; re-mask noise is float64 like numpy's."""
    gn = torch.Generator().manual_seed(seed)
    samp = [(-torch.log(-torch.log(torch.rand(B, N, K, generator=gn).clamp(1e-6, 1 - 1e-6)))).half().float()
            for _ in range(T_s)]
    mask = [-torch.log(-torch.log(torch.rand(B, N, generator=gn, dtype=torch.float64))) for _ in range(T_m)]
    return samp, mask


def pick_noise(run, T_s, T_m, B, N, K, first_seed):
    """first noise seed whose trajectory has argmax and cut-off gaps >= MIN_GAP."""
    for seed in range(first_seed, first_seed + 200):
        samp, mask = make_noise(seed, T_s, T_m, B, N, K)
        part, mg = run(samp, mask)
        if min(mg['min_argmax_gap'], mg['min_cutoff_gap']) >= MIN_GAP:
            return samp, mask, seed, part, mg
    raise RuntimeError('no robust noise seed found')


def cutoff_margin(conf, k):
    """gap between the k-th and (k+1)-th smallest confidence (robustness of the re-mask cut)."""
    s = conf.sort(dim=-1).values
    if k <= 0 or k >= s.shape[-1]:
        return float('inf')
    return float((s[:, k] - s[:, k - 1]).min())


# ----------------------------------------------------------------------------------------------
# (i) AutoNAT U-ViT
# ----------------------------------------------------------------------------------------------
def make_uvit(out):
    use_repo('ImprovedNAT')
    from libs.nat_model import UViT
    from libs import nat_misc

    K, FS, NCLS = 32, 4, 10
    N = FS * FS
    ctor = dict(img_size=FS, codebook_size=K, embed_dim=32, depth=4, num_heads=2, mlp_ratio=4,
                qkv_bias=False, num_classes=NCLS + 1, use_checkpoint=False, skip=True)
    torch.manual_seed(0)
    model = UViT(**ctor)
    gen = torch.Generator().manual_seed(1001)
    randomize_(model, gen, emb_std={'default': 0.3})
    model.eval()
    MASK, NULL = K, NCLS

    io = {}
    # ---- one forward pass ----
    g = torch.Generator().manual_seed(1)
    B = 4
    ids = torch.randint(0, K, (B, N), generator=g)
    m = torch.rand(B, N, generator=g) < 0.5
    m[0] = True          # row 0: every token masked (first generation step)
    m[1] = False         # row 1: nothing masked
    ids = torch.where(m, torch.full_like(ids, MASK), ids)
    labels = torch.tensor([[3], [7], [NULL], [0]])
    with torch.no_grad():
        logits = model(ids, context=labels)
    io['fwd.input_ids'] = ids
    io['fwd.labels'] = labels
    io['fwd.logits'] = logits

    # ---- generation loop (their NATSchedule.generate), T = 4 ----
    T = 4
    strategy = dict(
        manual_ratios=[float(x) for x in np.cos(np.linspace(0, math.pi / 2, T + 1))[1:-1]],
        manual_temp=[1.0, 0.75, 0.5],
        manual_samp_temp=[2.0, 1.5, 1.0, 0.5],
        manual_cfg=[1e-4, 0.5, 1.0, 1.5],
    )
    gen_labels = torch.tensor([[1], [5]])
    BG = gen_labels.shape[0]
    schedule = nat_misc.NATSchedule(codebook_size=K, device='cpu', ignore_ind=-1, smoothing=0.1)
    empty_ctx = torch.tensor([[NULL]])

    def run(samp_noise, mask_noise, tag):
        io = {}
        rec = dict(ids_in=[], cond=[], uncond=[], guided=[], scale=[])

        def cfg_nnet(x, scale, **kwargs):          # same formula as ImprovedNAT train.py:158-163
            _cond = model(x, **kwargs)
            kwargs['context'] = empty_ctx.repeat(x.size(0), 1)
            _uncond = model(x, **kwargs)
            res = _cond + scale * (_cond - _uncond)
            rec['ids_in'].append(x.clone()); rec['cond'].append(_cond); rec['uncond'].append(_uncond)
            rec['guided'].append(res); rec['scale'].append(scale)
            return res

        with NoiseCtx(samp_noise, mask_noise) as nctx:
            z = schedule.generate(T, BG, cfg_nnet, lambda z: z, context=gen_labels, fmap_size=FS, **strategy)
        io[f'{tag}.ids_in'] = torch.stack(rec['ids_in'])            # (T, B, N) input ids of each step
        io[f'{tag}.logits_cond'] = torch.stack(rec['cond'])          # (T, B, N, K)
        io[f'{tag}.logits_uncond'] = torch.stack(rec['uncond'])      # (T, B, N, K)
        io[f'{tag}.logits_guided'] = torch.stack(rec['guided'])      # (T, B, N, K)
        sampled = torch.stack([torch.where(rec['ids_in'][t] == MASK, nctx.draws[t], rec['ids_in'][t])
                               for t in range(T)])
        io[f'{tag}.sampled_ids'] = sampled                            # (T, B, N) after where(is_mask, ...)
        io[f'{tag}.final_tokens'] = z.reshape(BG, N)                  # returned tokens (raster order)
        # robustness margins
        amarg = min(float(mg[io[f'{tag}.ids_in'][t] == MASK].min()) for t, mg in enumerate(nctx.margins))
        cmarg = []
        for t in range(T - 1):
            conf = torch.log_softmax(rec['guided'][t], -1).gather(-1, sampled[t].unsqueeze(-1)).squeeze(-1)
            conf = torch.where(rec['ids_in'][t] == MASK, conf, torch.full_like(conf, float('inf')))
            if mask_noise is not None:
                conf = conf + torch.Tensor(strategy['manual_temp'][t] * mask_noise[t].numpy())
            nmask = int((rec['ids_in'][t][0] == MASK).sum())
            k = max(1, min(nmask - 1, int(np.floor(N * strategy['manual_ratios'][t]))))
            cmarg.append(cutoff_margin(conf, k))
        return io, dict(min_argmax_gap=amarg, min_cutoff_gap=min(cmarg))

    io['gen.labels'] = gen_labels
    part, mg = run(None, None, 'gen_greedy')
    assert min(mg.values()) >= MIN_GAP, mg
    io.update(part)
    margins = {'greedy': mg}
    samp_noise, mask_noise, seed, part, mg = pick_noise(lambda sn, mn: run(sn, mn, 'gen_noise'), T, T, BG, N, K,
                                                       first_seed=7)
    io.update(part)
    io['gen_noise.samp_gumbel'] = torch.stack(samp_noise).half()     # (T, B, N, K) fp16 (values exact)
    io['gen_noise.mask_gumbel'] = torch.stack(mask_noise)             # (T, B, N) float64
    margins['noise'] = dict(mg, noise_seed=seed)

    config = dict(
        model='AutoNAT U-ViT: ImprovedNAT libs/nat_model.py class UViT',
        repo='LeapLabTHU/ImprovedNAT', commit=COMMITS['ImprovedNAT'],
        constructor=ctor,
        meaning=dict(
            img_size='token grid side: N = img_size**2 = 16 tokens, raster order',
            codebook_size='K = 32 codes; [MASK] id = K = 32; token vocabulary K+1 = 33',
            embed_dim='width d', depth='in_blocks = depth//2 = 2, one mid_block, out_blocks = depth//2 = 2 (5 blocks)',
            num_heads='heads (head dim 16)', mlp_ratio='MLP hidden = 4d', qkv_bias='no bias on attn.qkv',
            num_classes='context vocabulary INCLUDING the null class: 10 real classes 0..9, null id = 10',
            skip='long skips: out_blocks[i].skip_linear(cat[x, skip]) with skips popped LIFO'),
        mask_id=MASK, null_label=NULL, n_tokens=N,
        randomisation=dict(seed_construct=0, generator_seed=1001, linear_weight='N(0, 1/fan_in)',
                           bias='N(0, 0.1)', layernorm='weight 1+N(0,0.1), bias N(0,0.1)',
                           embeddings='N(0, 0.3) (token_emb.* and context_embed.*)',
                           mlm_layer_bias='N(0, 0.1)'),
        mode='model.eval() (all dropout off), fp32, CPU',
        forward=dict(inputs='fwd.input_ids (B,N) int64, fwd.labels (B,1) int64', output='fwd.logits (B,N,K): '
                     'model(ids, context=labels); row 0 all [MASK], row 1 no [MASK], rows 2-3 mixed'),
        generation=dict(
            function='NATSchedule.generate (ImprovedNAT libs/nat_misc.py), gen_steps T=4, fmap 4x4',
            strategy=strategy,
            guidance='cfg wrapper identical to train.py cfg_nnet: l = l_c + s*(l_c - l_u), both passes always run',
            labels='gen.labels (B,1)',
            greedy='prefix gen_greedy: Categorical(...).sample() replaced by argmax of its logits '
                   '(= argmax of guided logits / max(tau1,1e-4)); np.random.gumbel replaced by zeros',
            noise='prefix gen_noise: Categorical(...).sample() replaced by argmax(logits/max(tau1,1e-4) + '
                  'gen_noise.samp_gumbel[t]) (Gumbel-max == exact categorical sampling); np.random.gumbel(size) '
                  'returns gen_noise.mask_gumbel[t] (float64); their code adds float32(tau2_t * g) to the '
                  'float32 confidence',
            tensors=dict(ids_in='(T,B,N) ids fed to step t (ids_in[0] all MASK; ids_in[t+1] = ids after re-masking at t)',
                         logits_cond='(T,B,N,K)', logits_uncond='(T,B,N,K)', logits_guided='(T,B,N,K)',
                         sampled_ids='(T,B,N) where(is_mask, draw, ids_in)', final_tokens='(B,N) returned tokens '
                         '(= sampled_ids[T-1])', samp_gumbel='gen_noise only: (T,B,N,K) stored as fp16 (values '
                         'exactly fp16-representable), use as fp32', mask_gumbel='gen_noise only: (T,B,N) float64; '
                         'their loop draws at every step, the last draw is multiplied by tau2 = 0'),
            margins=margins,
        ),
    )
    save_dir(out, 'uvit', sd_fp32(model), io, config)
    print('uvit margins', margins)


# ----------------------------------------------------------------------------------------------
# (ii) ENAT
# ----------------------------------------------------------------------------------------------
def make_enat(out):
    use_repo('ENAT')
    from libs.models import DiT
    from libs import nat_misc

    K, FS, NCLS = 32, 4, 10
    N = FS * FS
    args = types.SimpleNamespace(enc_dec=[2, 2])
    ctor = dict(input_size=FS, hidden_size=32, num_heads=2, mlp_ratio=4.0, class_dropout_prob=0.1,
                num_classes=NCLS, codebook_size=K, args={'enc_dec': [2, 2]})
    torch.manual_seed(0)
    model = DiT(input_size=FS, hidden_size=32, num_heads=2, mlp_ratio=4.0, class_dropout_prob=0.1,
                num_classes=NCLS, codebook_size=K, args=args)
    gen = torch.Generator().manual_seed(2002)
    randomize_(model, gen, emb_std={'default': 0.3, 'y_embedder.embedding_table': 1.0})
    model.eval()
    MASK, NULL = K, NCLS
    io = {}

    # ---- forward without reuse (equal masked count per row is REQUIRED by their code) ----
    g = torch.Generator().manual_seed(3)
    B = 4
    labels = torch.tensor([3, 7, NULL, 0])
    x0 = torch.randint(0, K, (B, N), generator=g)
    perm = torch.rand(B, N, generator=g).argsort(-1)
    m8 = perm < 8
    ids = torch.where(m8, torch.full_like(x0, MASK), x0)
    with torch.no_grad():
        d = model(ids, context=labels, return_dict=True)
    io['fwd.input_ids'] = ids
    io['fwd.labels'] = labels
    io['fwd.logits'] = d['logits']
    io['fwd.feat'] = d['feat']
    with torch.no_grad():
        d_all = model(torch.full_like(ids, MASK), context=labels, return_dict=True)
    io['fwd_allmask.logits'] = d_all['logits']
    io['fwd_allmask.feat'] = d_all['feat']

    # ---- forward WITH reuse (training-style): prev = 10 masked (6 old visible), now 6 masked (4 new) ----
    m10 = perm < 10
    m6 = perm < 6
    prev_ids = torch.where(m10, torch.full_like(x0, MASK), x0)
    cur_ids = torch.where(m6, torch.full_like(x0, MASK), x0)
    with torch.no_grad():
        prev = model(prev_ids, context=labels, return_dict=True)
        cur = model(cur_ids, context=labels, return_dict=True, prev_dict=prev)
        cur_noreuse = model(cur_ids, context=labels, return_dict=True)
    io['reuse.prev_ids'] = prev_ids
    io['reuse.prev_feat'] = prev['feat']
    io['reuse.prev_logits'] = prev['logits']
    io['reuse.ids'] = cur_ids
    io['reuse.labels'] = labels
    io['reuse.logits'] = cur['logits']
    io['reuse.feat'] = cur['feat']
    io['reuse.logits_noreuse'] = cur_noreuse['logits']

    # ---- generation (their NATSchedule.generate with reuse) T = 4 ----
    T = 4
    gen_labels = torch.tensor([1, 5])
    BG = gen_labels.shape[0]
    io['gen.labels'] = gen_labels

    def run(samp_noise, mask_noise, tag, cfg_scale, mask_temp, samp_temp):
        sargs = types.SimpleNamespace(mask_temp=mask_temp, samp_temp=samp_temp, cfg_scale=cfg_scale,
                                      seq_len=N, null_class=NULL)
        schedule = nat_misc.NATSchedule(codebook_size=K, device='cpu', args=sargs)
        rec = []
        io = {}

        def nnet(ids, context=None, return_dict=True, prev_dict=None):
            o = model(ids, context=context, return_dict=return_dict, prev_dict=prev_dict)
            rec.append(dict(ids=ids.clone(), ctx=context.clone(), reuse=prev_dict is not None, **o))
            return o

        with NoiseCtx(samp_noise, mask_noise) as nctx, torch.no_grad():
            z = schedule.generate(T, BG, nnet, lambda z: z, latent_size=FS, context=gen_labels)
        assert len(rec) == 2 * T
        cond, unc = rec[0::2], rec[1::2]
        assert all(int(r['ctx'].reshape(-1)[0]) == NULL for r in unc)
        io[f'{tag}.ids_in'] = torch.stack([r['ids'] for r in cond])
        io[f'{tag}.logits_cond'] = torch.stack([r['logits'] for r in cond])
        io[f'{tag}.logits_uncond'] = torch.stack([r['logits'] for r in unc])
        io[f'{tag}.feat_cond'] = torch.stack([r['feat'] for r in cond])
        sampled = torch.stack([torch.where(cond[t]['ids'] == MASK, nctx.draws[t], cond[t]['ids'])
                               for t in range(T)])
        io[f'{tag}.sampled_ids'] = sampled
        io[f'{tag}.final_tokens'] = z.reshape(BG, N)
        with torch.no_grad():   # same step inputs, but each forward WITHOUT reuse (for the no-reuse variant)
            io[f'{tag}.logits_cond_noreuse'] = torch.stack([model(r['ids'], context=gen_labels) for r in cond])
        amarg = min(float(mg[cond[t]['ids'] == MASK].min()) for t, mg in enumerate(nctx.margins))
        cmarg = []
        for t in range(T):
            s = t / T * cfg_scale
            lp = torch.log_softmax(cond[t]['logits'] + s * (cond[t]['logits'] - unc[t]['logits']), -1)
            conf = lp.gather(-1, sampled[t].unsqueeze(-1)).squeeze(-1)
            conf = torch.where(cond[t]['ids'] == MASK, conf, torch.full_like(conf, float('inf')))
            ratio = (t + 1) / T
            if mask_noise is not None:
                conf = conf + torch.Tensor(mask_temp * (1 - ratio) * mask_noise[t].numpy())
            cmarg.append(cutoff_margin(conf, math.floor(N * np.cos(ratio * math.pi * 0.5))))
        return io, dict(min_argmax_gap=amarg, min_cutoff_gap=min(cmarg),
                        masked_count_after_step=[int((r['ids'][0] == MASK).sum()) for r in cond[1:]] + [0])

    part, mg = run(None, None, 'gen_greedy', cfg_scale=2.5, mask_temp=0.0, samp_temp=6.0)
    assert min(mg['min_argmax_gap'], mg['min_cutoff_gap']) >= MIN_GAP, mg
    io.update(part)
    margins = {'greedy': mg}
    samp_noise, mask_noise, seed, part, mg = pick_noise(
        lambda sn, mn: run(sn, mn, 'gen_noise', cfg_scale=2.5, mask_temp=1.5, samp_temp=6.0), T, T, BG, N, K,
        first_seed=8)
    io.update(part)
    io['gen_noise.samp_gumbel'] = torch.stack(samp_noise).half()
    io['gen_noise.mask_gumbel'] = torch.stack(mask_noise)
    margins['noise'] = dict(mg, noise_seed=seed)

    config = dict(
        model='ENAT: ENAT libs/models.py class DiT (args.enc_dec = [n_enc, n_dec])',
        repo='LeapLabTHU/ENAT', commit=COMMITS['ENAT'],
        constructor=ctor,
        meaning=dict(
            input_size='token grid side: N = 16 tokens, raster order', hidden_size='width d',
            num_heads='heads (head dim 16)', mlp_ratio='block MLP hidden 4d (PrevProj / prev_embedder are always 4d)',
            class_dropout_prob='>0 adds the null row: y_embedder table has num_classes+1 rows; the drop itself '
                               'only happens in train mode', num_classes='10 real classes, null id = 10',
            codebook_size='K = 32, [MASK] id = 32', args='enc_dec=[2,2]: blocks[0:2] encode visible tokens, '
                                                           'blocks[2:4] decode [MASK] tokens'),
        mask_id=MASK, null_label=NULL, n_tokens=N,
        randomisation=dict(seed_construct=0, generator_seed=2002, linear_weight='N(0, 1/fan_in) (incl. adaLN '
                           'modulation, so nothing is zero-initialised)', bias='N(0, 0.1)',
                           layernorm='affine ones: weight 1+N(0,0.1), bias N(0,0.1) (norm1/norm1_/norm2 are '
                           'non-affine: no params)', embeddings='x_embedder.* N(0,0.3); y_embedder N(0,1)',
                           mlm_layer_bias='N(0, 0.1)', prev_embedder='randomised too but NEVER used by forward'),
        mode='model.eval() (dropout off, no label drop), fp32, CPU',
        forward=dict(fwd='model(fwd.input_ids, context=fwd.labels, return_dict=True): 8 of 16 tokens masked per '
                         'row; logits (B,N,K) for ALL positions, feat (B,N,d) = pre-final-norm features',
                     fwd_allmask='same labels, every token [MASK] (the first generation step)',
                     reuse='prev = model(reuse.prev_ids) (10 masked per row); then model(reuse.ids, prev_dict='
                           '{feat: reuse.prev_feat, masking: prev_ids==MASK}) with 6 masked per row: 6 old visible '
                           'tokens (visible in prev), 4 new ones. reuse.logits_noreuse = same ids without prev_dict'),
        generation=dict(
            function='NATSchedule.generate (ENAT libs/nat_misc.py), sample_steps T=4, latent_size 4',
            released_defaults_imagenet256=dict(cfg_scale=2.5, mask_temp=1.5, samp_temp=6.0, gen_steps=8),
            greedy='prefix gen_greedy: cfg_scale 2.5, samp_temp 6 (irrelevant under argmax), mask_temp 0; '
                   'Categorical(...).sample() -> argmax; np.random.gumbel -> zeros',
            noise='prefix gen_noise: cfg_scale 2.5, mask_temp 1.5, samp_temp 6; Categorical(logits=L).sample() '
                  '-> argmax(L + gen_noise.samp_gumbel[t]) with L = log_softmax(guided)/max(6*(1-(t+1)/T),1e-3); '
                  'np.random.gumbel -> gen_noise.mask_gumbel[t] (float64), added as float32(mask_temp*(1-(t+1)/T)*g)',
            labels='gen.labels (B,); unconditional pass uses the null id 10',
            tensors=dict(ids_in='(T,B,N) ids fed to step t', logits_cond='(T,B,N,K) cond pass WITH their reuse '
                         'cache', logits_uncond='(T,B,N,K) uncond pass with its own cache', feat_cond='(T,B,N,d) '
                         'the cache written by step t (return_d["feat"], pre-final-norm)',
                         sampled_ids='(T,B,N) where(is_mask, draw, ids_in)', final_tokens='(B,N) returned tokens',
                         logits_cond_noreuse='(T,B,N,K) same step inputs, cond pass, plain forward without prev_dict',
                         samp_gumbel='gen_noise only: (T,B,N,K) stored as fp16 (values exactly fp16-representable), '
                                     'use as fp32', mask_gumbel='gen_noise only: (T,B,N) float64'),
            margins=margins,
        ),
    )
    save_dir(out, 'enat', sd_fp32(model), io, config)
    print('enat margins', margins)


# ----------------------------------------------------------------------------------------------
# (iii) MaskGIT-architecture VQGAN (taming VQModel + diffusionmodules Encoder/Decoder)
# ----------------------------------------------------------------------------------------------
GN_GROUPS = 2


def make_vqgan(out):
    use_repo('ImprovedNAT')
    import taming.modules.diffusionmodules.model as tm
    # size budget: the real Normalize is GroupNorm(32, C, eps=1e-6); with 32 groups the smallest
    # f16 model (ch=32) is ~3M params. We substitute the helper at run time with 4 groups, same eps.
    tm.Normalize = lambda c: torch.nn.GroupNorm(num_groups=GN_GROUPS, num_channels=c, eps=1e-6, affine=True)
    from taming.models.vqgan import VQModel

    dd = dict(double_z=False, z_channels=8, resolution=32, in_channels=3, out_ch=3, ch=4,
              ch_mult=[1, 1, 2, 2, 4], num_res_blocks=2, attn_resolutions=[16], dropout=0.0)
    torch.manual_seed(0)
    model = VQModel(ddconfig=dd, lossconfig=None, n_embed=32, embed_dim=8)
    gen = torch.Generator().manual_seed(3003)
    randomize_(model, gen, emb_std={'default': 1.0})
    model.eval()

    g = torch.Generator().manual_seed(4)
    H, W = 32, 48                                       # non-square on purpose: token grid 2 x 3
    yy, xx = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing='ij')
    img0 = torch.stack([xx, yy, 0.5 + 0.5 * torch.sin(6.28 * (xx + yy))])
    img1 = torch.rand(3, H, W, generator=g)
    images = torch.stack([img0, img1]).float()          # (2,3,32,48) in [0,1] (their input range)
    with torch.no_grad():
        z = model.encoder(images)                       # (2, 8, 2, 3)
        # codebook: random, scaled to the encoder output statistics so the lookup is non-trivial
        mu = z.mean(dim=(0, 2, 3))
        sd = z.std(dim=(0, 2, 3))
        cb = mu + sd * torch.randn(32, 8, generator=gen)
        model.quantize.embedding.weight.copy_(cb)
        quant, _, info = model.encode(images)
        ids = info[2].reshape(2, H // 16, W // 16)        # row-major (h, w)
        zf = z.permute(0, 2, 3, 1).reshape(-1, 8)
        dist = torch.cdist(zf, model.quantize.embedding.weight) ** 2
        ds = dist.sort(-1).values
        q_margin = float((ds[:, 1] - ds[:, 0]).min())
        dec = model.decode_code(ids)                     # (2,3,32,48), NOT clamped
        rand_ids = torch.randint(0, 32, (2, 3, 2), generator=g)
        dec_rand = model.decode_code(rand_ids)           # (2,3,48,32)
    io = {'images': images, 'z': z, 'quant': quant, 'ids': ids, 'decoded': dec,
          'rand_ids': rand_ids, 'decoded_rand': dec_rand}
    config = dict(
        model='taming.models.vqgan.VQModel (ImprovedNAT == ENAT copy) with '
              'taming.modules.diffusionmodules.model.Encoder/Decoder and quantize.VectorQuantizer2',
        repo='LeapLabTHU/ImprovedNAT', commit=COMMITS['ImprovedNAT'],
        constructor=dict(ddconfig=dd, n_embed=32, embed_dim=8, lossconfig=None),
        real_config='configs/vq-f16-jax.yaml: ch 128, ch_mult [1,1,2,2,4], num_res_blocks 2, z_channels 256, '
                    'n_embed 1024, embed_dim 256, GroupNorm 32 groups',
        deviation_from_real=f'GroupNorm num_groups = {GN_GROUPS} instead of 32 (Normalize replaced at run time; '
                            'eps 1e-6, affine) -- channels here are only 4/8/16',
        randomisation=dict(seed_construct=0, generator_seed=3003, conv_weight='N(0, 1/fan_in), fan_in = in*kh*kw',
                           conv_bias='N(0, 0.1)', groupnorm='weight 1+N(0,0.1), bias N(0,0.1)',
                           codebook='mu_c + sd_c * N(0,1) with per-channel mean/std of encoder(images) '
                                    '(same generator, drawn after all other parameters)'),
        tensors=dict(images='(2,3,32,48) float in [0,1] (their encoder input range); H=32, W=48',
                     z='(2,8,2,3) encoder output (pre-quantisation)', quant='(2,8,2,3) codebook vectors',
                     ids='(2,2,3) int64 nearest-code ids (h, w); flattened row-major = their token order',
                     decoded='(2,3,32,48) decode_code(ids), raw (their eval clamps to [0,1] afterwards)',
                     rand_ids='(2,3,2) random ids (h=3, w=2)', decoded_rand='(2,3,48,32) decode_code(rand_ids), raw'),
        min_quantisation_distance_gap=q_margin,
        mode='eval, fp32, CPU',
    )
    save_dir(out, 'vqgan', sd_fp32(model), io, config)
    print('vqgan q margin', q_margin, 'params', sum(p.numel() for p in model.parameters()))


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='/work/main/tests/fixtures/official')
    ap.add_argument('--only', nargs='*', default=['uvit', 'enat', 'vqgan'])
    a = ap.parse_args()
    torch.set_num_threads(1)
    for part in a.only:
        {'uvit': make_uvit, 'enat': make_enat, 'vqgan': make_vqgan}[part](a.out)
