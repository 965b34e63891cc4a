"""Record PyTorch's own half-precision error ("the peer's error") for every fixture case.

    python tools/reference/make_half_fixtures.py          # write half_peer.safetensors + docs
    python tools/reference/make_half_fixtures.py --check  # recompute, compare, write nothing

The bf16/fp16 accuracy contract of diffblocks is relative to PyTorch run the way users run these
models in half precision: the float32 model under torch.autocast("cpu", dtype).  For every
fixture case this script rebuilds the PyTorch module from the committed files (with the
generators' own loaders: make_fixtures.load_block / load_diffusion, ref.load_origin,
make_diffusers_fixtures.load_block / unet_forward / sampling_loop), checks that float32
reproduces the stored expected output, then measures against that expected output

* autocast: the float32 module under torch.autocast("cpu", bf16 / f16);
* storage:  the float32 module with weights and float inputs rounded to the half type and
            back, its output rounded likewise (what half storage costs even where autocast
            changes nothing, e.g. Mish, GroupNorm, the sinusoids; timesteps are inputs too).

Per case, output key and dtype it stores an F32 [4] tensor `<case>/<key>/<bf16|f16>` =
[autocast max_abs, autocast rel_l2, storage max_abs, storage rel_l2], where max_abs =
max|y - ref| and rel_l2 = ||y - ref||_2 / ||ref||_2.  Torch runs on one thread with
deterministic algorithms, so reruns write identical files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import diffusers_reference as R  # noqa: E402
import gradtts_reference as ref  # noqa: E402
import make_diffusers_fixtures as D  # noqa: E402  (imports diffusers 0.25.1)
import make_fixtures as G  # noqa: E402
from diffusers import UNet2DConditionModel  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
OUT = FIXTURES / "half_peer.safetensors"
DOC = REPO / "docs" / "half_peer.md"
DTYPES = (("bf16", torch.bfloat16), ("f16", torch.float16))
REPRODUCE_REL = 1e-4   # float32 rebuild vs the fixture's expected output, relative to max|ref|
CHECK_REL = 1e-3       # --check tolerance, relative, per number
COLUMNS = ("autocast_max_abs", "autocast_rel_l2", "storage_max_abs", "storage_rel_l2")


def _errors(y: torch.Tensor, want: torch.Tensor):
    d = y.double() - want.double()
    return d.abs().max().item(), (d.norm() / want.double().norm()).item()


# Times stay float32 in diffblocks' half models (and in autocast): the sinusoidal embeddings
# magnify a rounded time (pe_scale 1000, timesteps up to 1000) into radians of error.
TIME_KEYS = {"t", "timestep", "timesteps", "time_ids"}


def _rounded(inputs: dict, dt: torch.dtype) -> dict:
    return {k: v.to(dt).float() if v.is_floating_point() and k not in TIME_KEYS else v
            for k, v in inputs.items()}


class Peer:
    """Collects [autocast max_abs, rel_l2, storage max_abs, rel_l2] per case/key/dtype."""

    def __init__(self):
        self.results = {}

    @torch.no_grad()
    def record(self, case: str, module: torch.nn.Module, run, inputs: dict, expected: dict):
        """run(inputs) -> {key: output} with `module`'s current weights; expected: {key: ref}."""
        got = run(inputs)
        for key, want in expected.items():
            rel = (got[key] - want).abs().max().item() / want.abs().max().item()
            assert rel <= REPRODUCE_REL, f"{case}/{key}: float32 rebuild {rel:.1e} from the fixture"
        saved = [p.detach().clone() for p in module.parameters()]
        for tag, dt in DTYPES:
            with torch.autocast("cpu", dtype=dt):
                auto = run(inputs)
            R.round_weights_(module, dt)
            store = run(_rounded(inputs, dt))
            for p, s in zip(module.parameters(), saved):
                p.copy_(s)
            for key, want in expected.items():
                numbers = _errors(auto[key], want) + _errors(store[key].to(dt), want)
                self.results[f"{case}/{key}/{tag}"] = torch.tensor(numbers, dtype=torch.float32)


# --------------------------------------------------------------------------------------------
# One function per fixture family
# --------------------------------------------------------------------------------------------

def gradtts_blocks(peer: Peer):
    for path in sorted((FIXTURES / "blocks").glob("*.safetensors")):
        m, run, inputs, want = G.load_block(path)
        peer.record(f"blocks/{path.stem}", m, lambda i: {"output": run(i)}, inputs,
                    {"output": want})


def origins(peer: Peer):
    # origin_b/inputs_vec.safetensors holds the very table rows spk_id selects (same resolved
    # inputs, same expected output), so origin_b is measured once, from the ids.
    cases = [(f"origin_{c}", f"origin_{c}", f"origin_{c}/inputs", f"origin_{c}/expected")
             for c in "abcd"]
    cases.append(("origin_e", "origin_e.safetensors", "origin_e_inputs", "origin_e_expected"))
    for case, model_path, inputs, expected in cases:
        model, tables, _ = ref.load_origin(str(FIXTURES / model_path))
        # Resolved inputs: ids are looked up here, so rounding the inputs rounds the table rows.
        kw = ref.resolve_inputs(G._read(FIXTURES / f"{inputs}.safetensors"), tables)
        want = G._read(FIXTURES / f"{expected}.safetensors")["out"]
        peer.record(case, model, lambda i: {"out": model(**i)}, kw, {"out": want})


def gradtts_sampler(peer: Peer):
    d = FIXTURES / "sample_ode"
    diff = G.load_diffusion(d)
    exp = G._read(d / "expected.safetensors")
    peer.record("sample_ode", diff,
                lambda i: {name: diff.reverse_diffusion(i["z"], i["mask"], i["mu"], steps)
                           for steps, name in G.SAMPLE_STEPS},
                G._read(d / "inputs.safetensors"), {name: exp[name] for _, name in G.SAMPLE_STEPS})

    # forward_diffusion is element-wise (autocast changes nothing); same betas as the sampler.
    path = d / "forward_diffusion.safetensors"
    cfg = json.loads(R.read_metadata(path)["config"])
    assert (cfg["beta_min"], cfg["beta_max"]) == (diff.beta_min, diff.beta_max), cfg
    f = G._read(path)
    peer.record("sample_ode/forward_diffusion", diff,
                lambda i: {"xt": diff.forward_diffusion(i["x0"], i["mask"], i["mu"], i["t"],
                                                        z=i["z"])[0]},
                {k: f[k] for k in ("x0", "mask", "mu", "t", "z")}, {"xt": f["xt"]})


def diffusers_blocks(peer: Peer):
    D.block_fixtures(R.Fixtures())  # fills D.BLOCKS (builder, call, output names) for load_block
    for path in sorted((FIXTURES / "diffusers" / "blocks").glob("*.safetensors")):
        m, run, inputs, want = D.load_block(path)
        peer.record(f"diffusers/blocks/{path.stem}", m, run, inputs, want)


def _unet(d: Path):
    return UNet2DConditionModel.from_pretrained(str(d)).float().eval()


def diffusers_unets(peer: Peer):
    for d in sorted(p for p in (FIXTURES / "diffusers").glob("unet_*") if p.is_dir()):
        model = _unet(d)
        peer.record(f"diffusers/{d.name}", model, lambda i: {"out": D.unet_forward(model, **i)},
                    R.read_tensors(d / "inputs.safetensors"),
                    {"out": R.read_tensors(d / "expected.safetensors")["out"]})


def diffusers_sampling(peer: Peer):
    d = FIXTURES / "diffusers" / "sampling"
    model = _unet(FIXTURES / "diffusers" / "unet_default")
    for name, cls in D.SAMPLERS:
        path = d / f"{name}_expected.safetensors"
        cfg = json.loads(R.read_metadata(path)["config"])
        assert cfg == {"model": "unet_default", "scheduler": name, "steps": D.SAMPLING_STEPS}, cfg
        peer.record(f"diffusers/sampling/{name}", model,
                    lambda i: {"out": D.sampling_loop(model, cls, **i)},
                    R.read_tensors(d / f"{name}_inputs.safetensors"),
                    {"out": R.read_tensors(path)["out"]})


# --------------------------------------------------------------------------------------------

def table(results: dict) -> list:
    head = f"| case | key | dtype | {' | '.join(COLUMNS)} |"
    rows = [head, "|" + "---|" * (3 + len(COLUMNS))]
    for name, v in results.items():
        case, key, tag = name.rsplit("/", 2)
        rows.append(f"| `{case}` | `{key}` | {tag} | " + " | ".join(f"{x:.3e}" for x in v.tolist())
                    + " |")
    return rows


def write_doc(rows: list):
    runs = [f"{steps} (`{name}`)" for steps, name in G.SAMPLE_STEPS]
    sampler_runs = ", ".join(runs[:-1]) + " and " + runs[-1] + " steps"
    DOC.write_text(f"""# PyTorch's own half-precision error on the fixtures ("the peer's error")

Written by `python tools/reference/make_half_fixtures.py` (torch {torch.__version__}, diffusers
{D.diffusers.__version__}, one CPU thread); the same numbers are in
`tests/fixtures/half_peer.safetensors` as F32 [4] tensors `<case>/<key>/<bf16|f16>` in the column
order below. The accuracy contract for diffblocks' bf16/f16 models: within 2x of the peer's
error per case, in max abs error and in relative L2 error, the peer's error being the larger
of the two peers:

* **autocast**: the float32 PyTorch model under `torch.autocast("cpu", dtype)`, the way users run
  these models in half precision;
* **storage**: the float32 model with its weights and float inputs (timesteps included) rounded
  to the half type and back, and its output rounded likewise. Cases without an op on
  autocast's lower-precision list (Mish, GroupNorm, LayerNorm, activations, the sinusoids,
  forward_diffusion) have autocast error 0; this column is what half storage costs there.
  Timesteps are rounded like any other input: where one feeds a sinusoid with large
  arguments (`sinusoidal_pos_emb`, `timesteps*`, `origin_a`-`c` with pe_scale 1000, a
  non-integral F32 `timestep` such as `unet_text_time`'s 987.5) that rounding dominates this
  column.

Errors are against the float32 expected output the fixture stores (the tensor the float32 C++
tests compare with): max_abs = max |y - ref|, rel_l2 = ||y - ref||_2 / ||ref||_2. Cases: the
fixture's path under `tests/fixtures` without extension; `sample_ode` holds the ODE sampler
runs of {sampler_runs};
`diffusers/sampling/*` the 4-step pipeline loops on `unet_default`. `origin_b` is measured from
its ids (`inputs_vec` resolves to the same inputs); the scheduler fixtures run no U-Net and are
not listed.

{chr(10).join(rows)}
""")


def check(results: dict) -> int:
    with safe_open(str(OUT), framework="pt") as f:
        on_disk = {k: f.get_tensor(k) for k in f.keys()}
    bad = sorted(set(results) ^ set(on_disk))
    for name in bad:
        print(f"MISSING {name}" if name in results else f"EXTRA {name}")
    for name in sorted(set(results) & set(on_disk)):
        want, got = on_disk[name].double(), results[name].double()
        if not ((got - want).abs() <= CHECK_REL * want.abs()).all():
            print(f"DIFFERS {name}: {want.tolist()} on disk, {got.tolist()} now")
            bad.append(name)
    print(f"checked {len(results)} entries, {len(bad)} differ")
    return len(bad)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help=f"recompute and compare with {OUT.relative_to(REPO)}, write nothing")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    peer = Peer()
    for family in (gradtts_blocks, origins, gradtts_sampler, diffusers_blocks, diffusers_unets,
                   diffusers_sampling):
        family(peer)
    rows = table(peer.results)
    print("\n".join(rows))

    if args.check:
        sys.exit(1 if check(peer.results) else 0)
    meta = {"torch": torch.__version__, "diffusers": D.diffusers.__version__, "columns": COLUMNS,
            "description": "PyTorch's half-precision error per fixture case/output/dtype vs the "
                           "fixture's float32 expected output: autocast(cpu) and storage-rounded "
                           "peers, see docs/half_peer.md"}
    # One metadata key: safetensors writes metadata from a hash map (see make_fixtures.py).
    save_file(peer.results, str(OUT), metadata={"half_peer": json.dumps(meta, sort_keys=True)})
    OUT.chmod(0o644)
    write_doc(rows)
    print(f"\n{len(peer.results)} entries, {OUT.stat().st_size} bytes in {OUT.relative_to(REPO)}; "
          f"{DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
