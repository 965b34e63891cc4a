"""Generate the diffusers 0.25.1 reference fixtures under tests/fixtures/diffusers/.

    python tools/reference/make_diffusers_fixtures.py            # (re)write the fixtures
    python tools/reference/make_diffusers_fixtures.py --out DIR  # write somewhere else
    python tools/reference/make_diffusers_fixtures.py --check    # regenerate in memory and compare
                                                                 # with the files on disk (tolerance)

Every output is computed by the real diffusers modules (`UNet2DConditionModel`,
`ResnetBlock2D`, `Attention`, the schedulers, ...), imported, never re-written.  Parameters are
re-drawn away from their defaults (diffusers_reference.randomize_), each case has its own
seed, torch runs on one CPU thread with deterministic algorithms, so two runs on the same
machine and torch version give byte-identical files.  Each case also reports how far its
float32 result is from a float64 run with the same weights and inputs.

    blocks/<case>.safetensors       one module: config (metadata), state_dict, input.*, output
    <unet case>/                    save_pretrained() directory + inputs/expected.safetensors
    schedulers/<name>.safetensors   DDPM / DDIM / Euler: schedule, single steps, a whole loop

Formats and cases: tools/README.md, section "diffusers fixtures".
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path
from typing import Callable, Dict

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import diffusers_reference as R  # noqa: E402
from diffusers_reference import normal, uniform  # noqa: E402

diffusers = R.load_diffusers()
from diffusers import (DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler,  # noqa: E402
                       UNet2DConditionModel)
from diffusers.models.activations import get_activation  # noqa: E402
from diffusers.models.attention import BasicTransformerBlock, FeedForward  # noqa: E402
from diffusers.models.attention_processor import Attention  # noqa: E402
from diffusers.models.downsampling import Downsample2D  # noqa: E402
from diffusers.models.embeddings import (ImageHintTimeEmbedding, ImageTimeEmbedding,  # noqa: E402
                                         TextTimeEmbedding, TimestepEmbedding, Timesteps)
from diffusers.models.normalization import AdaGroupNorm  # noqa: E402
from diffusers.models.resnet import ResnetBlock2D  # noqa: E402
from diffusers.models.transformer_2d import Transformer2DModel  # noqa: E402
from diffusers.models.upsampling import Upsample2D  # noqa: E402
import diffusers.schedulers.scheduling_ddpm as ddpm_module  # noqa: E402

# ImageHintTimeEmbedding.input_hint_block is 8 convs with 7 SiLUs between them: at N(0, 1/fan_in)
# the hint comes out at std ~0.03 and barely moves a U-Net (0.1*N on the hint changes its output
# by ~3e-3, too close to the 1e-4 tolerance).  1.4x on each conv weight gives std ~0.3.
HINT_GAIN = {r"input_hint_block\.\d+\.weight$": 1.4}

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "diffusers"
B = 2

# case -> (build(config) -> module, call(module, config, **inputs) -> tensor or tuple,
#          output names); filled while generating, used again by verify_written().
BLOCKS: Dict[str, tuple] = {}


# --------------------------------------------------------------------------------------------
# Block fixtures: blocks/<case>.safetensors
# --------------------------------------------------------------------------------------------

def encoder_mask_to_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """What UNet2DConditionModel.forward / Transformer2DModel.forward do with a (B, L)
    encoder_attention_mask (1 = keep, 0 = discard) before it reaches Attention: an additive
    bias (B, 1, L) = (1 - mask) * -10000.  (Copied glue, the two lines in diffusers.)"""
    return ((1 - mask.to(dtype)) * -10000.0).unsqueeze(1)


def block_case(fx: R.Fixtures, case: str, seed: int, build: Callable, config: dict,
               inputs: Callable[[torch.Generator], Dict[str, torch.Tensor]],
               call: Callable = None, out_names=("output",), gains=None,
               limit=R.MAX_F32_F64_REL, exact: Callable = None):
    """Build the module from `config`, re-draw its parameters, draw inputs, store
    config + state_dict + input.<name> + output(s).  call(module, config, **inputs) defaults to
    module(**inputs).  `exact(**inputs)`, if given, is a float64 evaluation used instead of the
    module-in-double run for the f32-vs-f64 column (for modules that compute in float32
    whatever their dtype, e.g. Timesteps)."""
    call = call or (lambda m, cfg, **kw: m(**kw))
    BLOCKS[case] = (build, call, out_names)
    gen = torch.Generator().manual_seed(seed)
    module = build(config)
    R.randomize_(module, gen, gains)
    module.eval()
    args = inputs(gen)
    out, out64 = R.run_both(lambda m, **kw: call(m, config, **kw), module, args)
    if exact is not None:
        out64 = exact(**args)
    outs = out if isinstance(out, tuple) else (out,)
    outs64 = out64 if isinstance(out64, tuple) else (out64,)
    tensors = dict(module.state_dict())
    tensors.update({f"input.{k}": v for k, v in args.items()})
    for name, o, o64 in zip(out_names, outs, outs64):
        tensors[name] = o
        fx.note(f"blocks/{case}" + name[len("output"):], o, o64, limit)
    fx.tensors(f"blocks/{case}.safetensors", tensors, {"config": json.dumps(config)})


def exact_timesteps(timesteps, num_channels, flip_sin_to_cos, downscale_freq_shift):
    """Float64 evaluation of get_timestep_embedding's formula, only for the f32-vs-f64 column:
    diffusers computes the sinusoid in float32 whatever the model dtype, so its own
    double run says nothing about the float32 rounding of t * f (~1e-5 rad at t = 999)."""
    half = num_channels // 2
    freq = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float64)
                     / (half - downscale_freq_shift))
    arg = timesteps.double()[:, None] * freq[None, :]
    emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if num_channels % 2:
        emb = nn.functional.pad(emb, (0, 1))
    return emb


def block_fixtures(fx: R.Fixtures):
    # -- activations and norms (torch modules as diffusers uses them) ----------------------
    def act_input(g):
        special = torch.tensor([-30.0, -20.0, -10.0, -6.0, -5.0, -4.0, -3.0, -1.0, -1e-3, -1e-7,
                                0.0, 1e-7, 1e-3, 1.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0, 30.0])
        ramp = torch.linspace(-8.0, 8.0, 65)
        rest = normal(g, (B * 4 * 16 - special.numel() - ramp.numel(),), 3.0)
        return {"x": torch.cat([special, ramp, rest]).reshape(B, 4, 16)}

    act_build = lambda c: get_activation(c["act_fn"])  # noqa: E731
    act_call = lambda m, c, x: m(x)  # noqa: E731
    block_case(fx, "gelu", 401, act_build, {"act_fn": "gelu"}, act_input, act_call)
    block_case(fx, "silu", 402, act_build, {"act_fn": "silu"}, act_input, act_call)

    block_case(fx, "layer_norm", 403, lambda c: nn.LayerNorm(**c),
               {"normalized_shape": 24, "eps": 1e-5, "elementwise_affine": True},
               lambda g: {"x": normal(g, (B, 9, 24), 1.5) + uniform(g, (B, 9, 1), -3, 3)},
               act_call)

    def gn6_input(g):
        x = normal(g, (B, 32, 5, 7), 1.5) + uniform(g, (1, 32, 1, 1), -3, 3)
        # Group 2 of item 0 has variance ~1e-5, where eps 1e-6 vs 1e-5 changes the output ~35%.
        x[0, 8:12] = normal(g, (4, 5, 7), 0.003) + 0.01
        return {"x": x}

    block_case(fx, "group_norm_eps6", 404, lambda c: nn.GroupNorm(**c),
               {"num_groups": 8, "num_channels": 32, "eps": 1e-6, "affine": True},
               gn6_input, act_call)

    block_case(fx, "ada_group_norm", 405, lambda c: AdaGroupNorm(**c),
               {"embedding_dim": 16, "out_dim": 24, "num_groups": 8, "act_fn": None, "eps": 1e-5},
               lambda g: {"x": normal(g, (B, 24, 5, 7), 1.5) + uniform(g, (1, 24, 1, 1), -2, 2),
                          "emb": normal(g, (B, 16))})

    # -- ResnetBlock2D ----------------------------------------------------------------------
    def resnet(case, seed, cin, cout, norm):
        cfg = {"in_channels": cin, "out_channels": cout, "temb_channels": 32, "groups": 8,
               "eps": 1e-5, "non_linearity": "swish", "time_embedding_norm": norm,
               "output_scale_factor": 1.0}
        block_case(fx, case, seed, lambda c: ResnetBlock2D(**c), cfg,
                   lambda g: {"input_tensor": normal(g, (B, cin, 9, 11)),
                              "temb": normal(g, (B, 32))})

    resnet("resnet_block2d_default", 406, 16, 24, "default")
    resnet("resnet_block2d_default_same", 407, 24, 24, "default")
    resnet("resnet_block2d_ada_group", 408, 16, 24, "ada_group")
    resnet("resnet_block2d_ada_group_same", 409, 24, 24, "ada_group")

    # -- Down/Upsample2D --------------------------------------------------------------------
    block_case(fx, "downsample2d", 410, lambda c: Downsample2D(**c),
               {"channels": 16, "use_conv": True, "padding": 1, "name": "op"},
               lambda g: {"hidden_states": normal(g, (B, 16, 9, 11))})

    def up_build(c):
        return Upsample2D(**{k: v for k, v in c.items() if k != "output_size"})

    def up_call(m, c, hidden_states):
        size = tuple(c["output_size"]) if "output_size" in c else None
        return m(hidden_states, output_size=size)

    block_case(fx, "upsample2d", 411, up_build, {"channels": 16, "use_conv": True},
               lambda g: {"hidden_states": normal(g, (B, 16, 5, 7))}, up_call)
    # 5 -> 11 rows: src = floor(dst * 5/11), e.g. dst 10 -> 4 (not dst >> 1 = 5);
    # 7 -> 13 cols: the (2n-1) case the U-Net hits, where floor(dst * n/(2n-1)) == dst >> 1.
    block_case(fx, "upsample2d_size", 412, up_build,
               {"channels": 16, "use_conv": True, "output_size": [11, 13]},
               lambda g: {"hidden_states": normal(g, (B, 16, 5, 7))}, up_call)

    # -- time embeddings --------------------------------------------------------------------
    t_values = torch.tensor([0.0, 1.0, 2.5, 10.0, 99.9, 500.0, 998.7, 999.0])

    def ts(case, seed, c):
        block_case(fx, case, seed, lambda cfg: Timesteps(**cfg), c,
                   lambda g: {"timesteps": t_values.clone()},
                   exact=lambda timesteps: exact_timesteps(timesteps, **c), limit=1e-4)

    ts("timesteps", 413, {"num_channels": 32, "flip_sin_to_cos": True, "downscale_freq_shift": 0})
    ts("timesteps_odd", 414, {"num_channels": 33, "flip_sin_to_cos": False,
                              "downscale_freq_shift": 1})
    block_case(fx, "timestep_embedding", 415, lambda c: TimestepEmbedding(**c),
               {"in_channels": 32, "time_embed_dim": 128, "act_fn": "silu"},
               lambda g: {"sample": normal(g, (B, 32))})

    # -- Attention, FeedForward, BasicTransformerBlock, Transformer2DModel -------------------
    block_case(fx, "attention_self", 416, lambda c: Attention(**c),
               {"query_dim": 32, "heads": 4, "dim_head": 8, "bias": False},
               lambda g: {"hidden_states": normal(g, (B, 15, 32))})
    cross_cfg = {"query_dim": 32, "cross_attention_dim": 24, "heads": 2, "dim_head": 16,
                 "bias": False}
    block_case(fx, "attention_cross", 417, lambda c: Attention(**c), cross_cfg,
               lambda g: {"hidden_states": normal(g, (B, 15, 32)),
                          "encoder_hidden_states": normal(g, (B, 7, 24))})

    def mask_input(g):
        return {"hidden_states": normal(g, (B, 15, 32)),
                "encoder_hidden_states": normal(g, (B, 7, 24)),
                "encoder_attention_mask": torch.tensor([[1, 1, 1, 1, 1, 0, 0],
                                                        [0, 1, 1, 0, 1, 1, 1]], dtype=torch.float32)}

    def mask_call(m, c, hidden_states, encoder_hidden_states, encoder_attention_mask):
        bias = encoder_mask_to_bias(encoder_attention_mask, hidden_states.dtype)
        return m(hidden_states, encoder_hidden_states=encoder_hidden_states, attention_mask=bias)

    block_case(fx, "attention_cross_mask", 418, lambda c: Attention(**c), cross_cfg, mask_input,
               mask_call)

    block_case(fx, "feed_forward_geglu", 419, lambda c: FeedForward(**c),
               {"dim": 32, "activation_fn": "geglu"},
               lambda g: {"hidden_states": normal(g, (B, 15, 32))})

    btb = {"dim": 32, "num_attention_heads": 4, "attention_head_dim": 8, "cross_attention_dim": 24}
    btb_input = lambda g: {"hidden_states": normal(g, (B, 15, 32)),  # noqa: E731
                           "encoder_hidden_states": normal(g, (B, 7, 24))}
    block_case(fx, "basic_transformer_block", 420, lambda c: BasicTransformerBlock(**c), btb,
               btb_input)
    block_case(fx, "basic_transformer_block_only_cross", 421,
               lambda c: BasicTransformerBlock(**c), {**btb, "only_cross_attention": True},
               btb_input)

    t2d = {"num_attention_heads": 4, "attention_head_dim": 8, "in_channels": 32,
           "norm_num_groups": 8, "cross_attention_dim": 24}
    t2d_input = lambda g: {"hidden_states": normal(g, (B, 32, 5, 7)),  # noqa: E731
                           "encoder_hidden_states": normal(g, (B, 7, 24))}
    t2d_call = lambda m, c, **kw: m(**kw).sample  # noqa: E731
    block_case(fx, "transformer2d", 422, lambda c: Transformer2DModel(**c), t2d, t2d_input,
               t2d_call)
    block_case(fx, "transformer2d_linear", 423, lambda c: Transformer2DModel(**c),
               {**t2d, "use_linear_projection": True}, t2d_input, t2d_call)
    block_case(fx, "transformer2d_2layers", 424, lambda c: Transformer2DModel(**c),
               {**t2d, "num_layers": 2}, t2d_input, t2d_call)

    # -- addition embeddings ----------------------------------------------------------------
    block_case(fx, "image_time_embedding", 425, lambda c: ImageTimeEmbedding(**c),
               {"image_embed_dim": 12, "time_embed_dim": 64},
               lambda g: {"image_embeds": normal(g, (B, 12))})
    block_case(fx, "text_time_embedding", 426, lambda c: TextTimeEmbedding(**c),
               {"encoder_dim": 24, "time_embed_dim": 64, "num_heads": 4},
               lambda g: {"hidden_states": normal(g, (B, 7, 24)) + uniform(g, (B, 7, 1), -1, 1)})
    block_case(fx, "image_hint_time_embedding", 427, lambda c: ImageHintTimeEmbedding(**c),
               {"image_embed_dim": 12, "time_embed_dim": 64},
               lambda g: {"image_embeds": normal(g, (B, 12)), "hint": normal(g, (B, 3, 32, 40))},
               out_names=("output", "output.hint"), gains=HINT_GAIN)


# --------------------------------------------------------------------------------------------
# U-Net fixtures: <case>/{config.json, diffusion_pytorch_model.safetensors,
#                         inputs.safetensors, expected.safetensors}
# --------------------------------------------------------------------------------------------

SMALL = dict(in_channels=2, out_channels=1, block_out_channels=(16, 32), layers_per_block=1,
             norm_num_groups=8, cross_attention_dim=24,
             down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
             mid_block_type="UNetMidBlock2DCrossAttn",
             up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))

# diffusers.md section 3, plus the "image" addition embedding.
REFERENCE = dict(in_channels=2, out_channels=1, block_out_channels=(32, 64), layers_per_block=1,
                 norm_num_groups=8, cross_attention_dim=48, attention_head_dim=8,
                 num_class_embeds=5, resnet_time_scale_shift="ada_group",
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                 mid_block_type="UNetMidBlock2DCrossAttn",
                 up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                 addition_embed_type="image", encoder_hid_dim=48)

UNET_FORWARD_NAMES = ("sample", "timestep", "encoder_hidden_states", "class_labels")
ADDED_COND_NAMES = ("image_embeds", "hint", "text_embeds", "time_ids")


def unet_forward(model, **inputs) -> torch.Tensor:
    kw = {k: v for k, v in inputs.items() if k in UNET_FORWARD_NAMES}
    added = {k: v for k, v in inputs.items() if k in ADDED_COND_NAMES}
    assert len(kw) + len(added) == len(inputs), inputs.keys()
    return model(**kw, added_cond_kwargs=added or None).sample


def unet_case(fx: R.Fixtures, case: str, seed: int, config: dict, inputs: Callable,
              weight_dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    model = UNet2DConditionModel(**config)
    R.randomize_(model, gen, HINT_GAIN)
    model.eval()
    if weight_dtype != torch.float32:
        R.round_weights_(model, weight_dtype)
    args = inputs(gen)
    out, out64 = R.run_both(unet_forward, model, args)
    assert out.shape[0] == args["sample"].shape[0] and out.shape[2:] == args["sample"].shape[2:]
    fx.note(case, out, out64)

    to_save = copy.deepcopy(model).to(weight_dtype) if weight_dtype != torch.float32 else model
    for name, data in R.saved_pretrained(to_save).items():
        fx.raw(f"{case}/{name}", data)
    fx.tensors(f"{case}/inputs.safetensors", args)
    fx.tensors(f"{case}/expected.safetensors", {"out": out})


def unet_fixtures(fx: R.Fixtures):
    def inputs(h, w, enc_dim, timestep, class_labels=None, in_ch=2, **added):
        def draw(g):
            d = {"sample": normal(g, (B, in_ch, h, w)), "timestep": timestep,
                 "encoder_hidden_states": normal(g, (B, 7, enc_dim))}
            if class_labels is not None:
                d["class_labels"] = torch.tensor(class_labels, dtype=torch.int64)
            for name, shape in added.items():
                d[name] = shape(g) if callable(shape) else normal(g, shape)
            return d
        return draw

    f32 = lambda *v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    i64 = lambda *v: torch.tensor(v, dtype=torch.int64)  # noqa: E731

    unet_case(fx, "unet_ada_image", 501, REFERENCE,
              inputs(16, 24, 48, f32(37.5, 816.0), [1, 3], image_embeds=(B, 48)),
              weight_dtype=torch.float16)

    default = dict(SMALL, num_class_embeds=4)
    unet_case(fx, "unet_default", 502, default, inputs(16, 24, 24, i64(999, 1), [0, 3]))
    unet_case(fx, "unet_odd_frames", 503, default, inputs(16, 23, 24, f32(250.0, 3.25), [2, 2]))

    unet_case(fx, "unet_image_hint", 504,
              dict(SMALL, in_channels=2 + 4, resnet_time_scale_shift="ada_group",
                   addition_embed_type="image_hint", encoder_hid_dim=12),
              inputs(8, 12, 12, f32(500.0, 20.0), image_embeds=(B, 12), hint=(B, 3, 64, 96)))

    unet_case(fx, "unet_text", 505,
              dict(SMALL, addition_embed_type="text", addition_embed_type_num_heads=4),
              inputs(16, 24, 24, i64(10, 600)))

    unet_case(fx, "unet_text_time", 506,
              dict(SMALL, resnet_time_scale_shift="ada_group", addition_embed_type="text_time",
                   addition_time_embed_dim=8, projection_class_embeddings_input_dim=20 + 3 * 8),
              inputs(16, 24, 24, f32(123.0, 987.5), text_embeds=(B, 20),
                     time_ids=lambda g: f32([220.0, 1.5, 0.25], [95.5, 0.8, 0.75])))

    # attention_head_dim 4 = 4 heads: 4 x 8 at 32 channels, 4 x 12 at 48, 4 x 16 at 64 (mid).
    # Stored as BF16 (the other stored dtype a model directory may hold).
    unet_case(fx, "unet_heads", 507,
              dict(SMALL, block_out_channels=(32, 48, 64), attention_head_dim=4,
                   layers_per_block=2, transformer_layers_per_block=2, use_linear_projection=True,
                   down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                   up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")),
              inputs(16, 24, 24, f32(400.0, 50.0)), weight_dtype=torch.bfloat16)

    unet_case(fx, "unet_only_cross", 508,
              dict(SMALL, resnet_time_scale_shift="ada_group", only_cross_attention=True,
                   upcast_attention=True),
              inputs(16, 24, 24, f32(700.0, 5.0)))


# --------------------------------------------------------------------------------------------
# Scheduler fixtures: schedulers/<name>.safetensors
# --------------------------------------------------------------------------------------------

SCHED_SHAPE = (2, 1, 16, 24)
N_STEPS = 10
RECORD_STEPS = (0, 5, 9)
FAKE_MODEL = ("model_output = fake_model_a * x + fake_model_b * loop.pattern, where x is the "
              "model input: the sample passed to step() (DDPM, DDIM) or the scale_model_input() "
              "result (Euler); loop.pattern[b,c,h,w] = 0.5 * sin(0.3*h + 0.7*w + b); the loop "
              "starts from loop.init = init_noise_sigma * N(0,1) and runs over all `timesteps`")
# (a, b) per scheduler. DDPM/DDIM: 0.1*x + pattern, whose predicted x0 is far outside [-1, 1]
# early on, so clip_sample matters.  Euler: x_in + 0.1*pattern, roughly "predicts the noise",
# so the sample shrinks with sigma (157 -> ~1); with 0.1*x_in the loop would end at ~300 and
# a max-scaled tolerance would hide errors in the last steps.
FAKE_AB = {DDPMScheduler: (0.1, 1.0), DDIMScheduler: (0.1, 1.0), EulerDiscreteScheduler: (1.0, 0.1)}
DDPM_NOISE = ("step k draws its noise in DDPMScheduler.step as randn_tensor(shape, generator, "
              "dtype=float32) = torch.randn(shape, generator=torch.Generator().manual_seed("
              "noise_seed + k)); that tensor is stored as step<k>.variance_noise and "
              "loop.variance_noise[k]; prev_sample = mean + sqrt(variance) * noise for t > 0; "
              "at t = 0 nothing is drawn or added (the stored noise must be ignored)")


def pattern() -> torch.Tensor:
    b, c, h, w = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) for n in SCHED_SHAPE),
                                indexing="ij")
    return 0.5 * torch.sin(0.3 * h + 0.7 * w + b)


def scheduler_case(fx: R.Fixtures, name: str, cls, seed: int, noise_seed: int = None):
    sched = cls()
    sched.set_timesteps(N_STEPS)
    gen = torch.Generator().manual_seed(seed)
    init_sigma = torch.as_tensor(sched.init_noise_sigma, dtype=torch.float32).reshape(1)
    pat = pattern()
    fa, fb = FAKE_AB[cls]
    x = normal(gen, SCHED_SHAPE) * init_sigma
    tensors = {"timesteps": sched.timesteps.clone(), "init_noise_sigma": init_sigma,
               "alphas_cumprod": sched.alphas_cumprod.clone(), "loop.init": x.clone(),
               "loop.pattern": pat}
    if hasattr(sched, "sigmas"):
        tensors["sigmas"] = sched.sigmas.clone()
    noises = []
    with torch.no_grad():
        for k, t in enumerate(sched.timesteps):
            rec = {"sample": x.clone()}
            if cls is EulerDiscreteScheduler:
                xin = sched.scale_model_input(x, t)
                rec["scaled_input"] = xin
            else:
                xin = x
            mo = fa * xin + fb * pat
            rec["model_output"] = mo
            if cls is DDPMScheduler:
                noise = torch.randn(SCHED_SHAPE, generator=torch.Generator().manual_seed(
                    noise_seed + k), dtype=torch.float32)
                prev = sched.step(mo, t, x, generator=torch.Generator().manual_seed(
                    noise_seed + k)).prev_sample
                # The recorded tensor is exactly what step() drew: feeding it in through
                # randn_tensor gives the identical result.
                orig = ddpm_module.randn_tensor
                ddpm_module.randn_tensor = lambda *a, **kw: noise.clone()
                try:
                    again = sched.step(mo, t, x).prev_sample
                finally:
                    ddpm_module.randn_tensor = orig
                assert torch.equal(prev, again), f"{name}: DDPM noise not reproduced at step {k}"
                rec["variance_noise"] = noise
                noises.append(noise)
            elif cls is EulerDiscreteScheduler:
                # s_churn = 0: Euler draws noise but multiplies it by gamma = 0.
                prev = sched.step(mo, t, x, generator=torch.Generator().manual_seed(0)).prev_sample
            else:
                prev = sched.step(mo, t, x).prev_sample  # eta = 0: no noise drawn
            rec["prev_sample"] = prev
            if k in RECORD_STEPS:
                tensors[f"step{k}.timestep"] = t.reshape(1).clone()
                tensors.update({f"step{k}.{n}": v.clone() for n, v in rec.items()})
            x = prev
    tensors["loop.out"] = x
    if noises:
        tensors["loop.variance_noise"] = torch.stack(noises)
    cfg = R.scheduler_config(sched, num_inference_steps=N_STEPS, recorded_steps=list(RECORD_STEPS),
                             fake_model=FAKE_MODEL, fake_model_a=fa, fake_model_b=fb)
    if noise_seed is not None:
        cfg.update(noise_seed=noise_seed, noise=DDPM_NOISE)
    fx.tensors(f"schedulers/{name}.safetensors", tensors, {"config": json.dumps(cfg, sort_keys=True)})
    fx.summary.append((f"schedulers/{name} loop.out", x.abs().max().item(), float("nan")))


def scheduler_fixtures(fx: R.Fixtures):
    scheduler_case(fx, "ddpm", DDPMScheduler, 601, noise_seed=6100)
    scheduler_case(fx, "ddim", DDIMScheduler, 602)
    scheduler_case(fx, "euler_discrete", EulerDiscreteScheduler, 603)


# --------------------------------------------------------------------------------------------
# Sampling fixtures: sampling/<scheduler>_{inputs,expected}.safetensors
# The diffusers pipeline loop with the unet_default model (same seed, so the same weights). The
# model has in_channels 2 and out_channels 1: `sample` = (noise for the mel, speaker plane), and
# like diffusers' inpainting pipelines only the first out_channels channels are denoised while
# the rest are fixed conditioning concatenated after scale_model_input:
#   latents = sample[:, :1] * init_noise_sigma; cond = sample[:, 1:]
#   for t in timesteps: eps = unet(cat(scale_model_input(latents, t), cond), t, enc, class_labels)
#                       latents = scheduler.step(eps, t, latents).prev_sample
# The inputs file holds exactly what `diffblocks sample` takes for a Diffuser model.
# --------------------------------------------------------------------------------------------

SAMPLING_STEPS = 4
SAMPLERS = (("ddim", DDIMScheduler), ("euler", EulerDiscreteScheduler))


@torch.no_grad()
def sampling_loop(model, scheduler_cls, sample, encoder_hidden_states, class_labels):
    """The loop above with a fresh scheduler_cls() over SAMPLING_STEPS steps."""
    sched = scheduler_cls()
    sched.set_timesteps(SAMPLING_STEPS)
    x = sample[:, :1] * sched.init_noise_sigma
    cond = sample[:, 1:]
    for t in sched.timesteps:
        model_in = torch.cat([sched.scale_model_input(x, t), cond], dim=1)
        eps = model(model_in, t, encoder_hidden_states, class_labels=class_labels).sample
        x = sched.step(eps, t, x).prev_sample
    return x


def sampling_fixtures(fx: R.Fixtures):
    gen = torch.Generator().manual_seed(502)  # unet_default's seed: identical weights
    model = UNet2DConditionModel(**dict(SMALL, num_class_embeds=4))
    R.randomize_(model, gen, HINT_GAIN)
    model.eval()
    gen = torch.Generator().manual_seed(701)
    inputs = {"sample": normal(gen, (B, 2, 16, 24)), "encoder_hidden_states": normal(gen, (B, 7, 24)),
              "class_labels": torch.tensor([3, 1], dtype=torch.int64)}
    for name, cls in SAMPLERS:
        x = sampling_loop(model, cls, **inputs)
        cfg = {"model": "unet_default", "scheduler": name, "steps": SAMPLING_STEPS}
        fx.tensors(f"sampling/{name}_inputs.safetensors", inputs)
        fx.tensors(f"sampling/{name}_expected.safetensors", {"out": x},
                   {"config": json.dumps(cfg, sort_keys=True)})
        fx.summary.append((f"sampling/{name} out", x.abs().max().item(), float("nan")))


# --------------------------------------------------------------------------------------------
# Re-reading what was written, the way the C++ tests will
# --------------------------------------------------------------------------------------------

def load_block(path: Path):
    """Rebuild a block fixture from its file alone (BLOCKS must be filled, i.e. block_fixtures
    has run): (module, run, inputs, {output name: tensor}), where run(inputs) returns
    {output name: tensor} in eval mode."""
    build, call, out_names = BLOCKS[path.stem]
    config = json.loads(R.read_metadata(path)["config"])
    t = R.read_tensors(path)
    inputs = {k[len("input."):]: v for k, v in t.items() if k.startswith("input.")}
    state = {k: v for k, v in t.items() if not k.startswith("input.") and k not in out_names}
    m = build(config)
    m.load_state_dict(state, strict=True)
    m.eval()

    def run(inp):
        got = call(m, config, **inp)
        return dict(zip(out_names, got if isinstance(got, tuple) else (got,)))
    return m, run, inputs, {name: t[name] for name in out_names}


def verify_written(out_dir: Path):
    """Rebuild every module from the files alone (config + weights) and recompute."""
    with torch.no_grad():
        for path in sorted((out_dir / "blocks").glob("*.safetensors")):
            _, run, inputs, want = load_block(path)
            got = run(inputs)
            for name in want:
                assert torch.equal(got[name], want[name]), f"blocks/{path.stem}:{name}"

        for d in sorted(p for p in out_dir.glob("unet_*") if p.is_dir()):
            model = UNet2DConditionModel.from_pretrained(str(d)).float().eval()
            got = unet_forward(model, **R.read_tensors(d / "inputs.safetensors"))
            assert torch.equal(got, R.read_tensors(d / "expected.safetensors")["out"]), d.name

        classes = {"DDPMScheduler": DDPMScheduler, "DDIMScheduler": DDIMScheduler,
                   "EulerDiscreteScheduler": EulerDiscreteScheduler}
        for path in sorted((out_dir / "schedulers").glob("*.safetensors")):
            cfg = json.loads(R.read_metadata(path)["config"])
            t = R.read_tensors(path)
            sched = classes[cfg["_class_name"]].from_config(cfg)
            sched.set_timesteps(cfg["num_inference_steps"])
            assert torch.equal(sched.timesteps, t["timesteps"]), path.name
            x = t["loop.init"]
            for k, ts in enumerate(sched.timesteps):
                xin = sched.scale_model_input(x, ts)
                mo = cfg["fake_model_a"] * xin + cfg["fake_model_b"] * t["loop.pattern"]
                kw = {}
                if "loop.variance_noise" in t:
                    kw["generator"] = torch.Generator().manual_seed(cfg["noise_seed"] + k)
                x = sched.step(mo, ts, x, **kw).prev_sample
                if k in cfg["recorded_steps"]:
                    assert torch.equal(x, t[f"step{k}.prev_sample"]), f"{path.name} step {k}"
            assert torch.equal(x, t["loop.out"]), path.name
    print("verified: every written fixture reproduces its outputs when re-loaded "
          "(blocks from config + state_dict, U-Nets via from_pretrained, schedulers via from_config)")


# --------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="fixture root (tests/fixtures/diffusers)")
    ap.add_argument("--check", action="store_true",
                    help="compare with the files under --out instead of writing them")
    args = ap.parse_args()

    # One thread: reductions and oneDNN kernels then run in a fixed order, so reruns are
    # byte-identical regardless of how many cores the machine has.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    fx = R.Fixtures()
    block_fixtures(fx)
    unet_fixtures(fx)
    scheduler_fixtures(fx)
    sampling_fixtures(fx)

    if args.check:
        sys.exit(1 if fx.check(args.out) else 0)

    fx.write(args.out)
    verify_written(args.out)

    print(f"\ndiffusers {diffusers.__version__}, torch {torch.__version__}")
    print(f"{'case':<48} {'max|out|':>10} {'|f32-f64|/max(1,|out|)':>24}")
    for case, peak, rel in fx.summary:
        print(f"{case:<48} {peak:>10.4f} {rel:>24.2e}")
    total = sum((args.out / rel).stat().st_size for rel in fx.files)
    print(f"\n{len(fx.files)} files, {total / 2**20:.2f} MiB under {args.out}")


if __name__ == "__main__":
    main()
