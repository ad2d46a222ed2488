"""Why the tiny prior's training step is replayed as a CUDA graph: eager step times of the tiny prior on CUDA.

Times 30 eager training steps (batch 256 of random images, text encoder + UNet + AdamW + clipping, like
``benchmarks/train_prior.py``) in several precisions / memory layouts, once with ``torch.compile``, prints a
``torch.profiler`` table of one variant (GPU time per step vs wall time per step) and measures the synthetic-data
render rate. Writes ``$OUT/profile.json`` and ``$OUT/profile.txt`` (default /tmp). CUDA only.

Result on an H100 (``benchmarks/results/train_step_profile_h100.json``): 83-118 ms per eager step whatever the
precision or layout (92 ms compiled), while the profiler counts only ~35 ms of GPU work per step: the step is
bound by Python and kernel launches. Replaying the captured step (train_prior.py) takes 39.6 ms.

    python benchmarks/train_step_profile.py
"""

import sys, time, json, os
sys.path.insert(0, os.getcwd())
import torch, torch.nn.functional as F
from csdtex.tinyprior import model as tiny_prior
from csdtex.tinyprior import synthetic
out = os.environ.get("OUT", "/tmp")
dev = torch.device("cuda")
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
torch.backends.cudnn.benchmark = True
res = {}
def bench(name, channels_last, autocast_dtype, compile_, batch=256, steps=30):
    comp = tiny_prior.build_tiny_prior(None, seed=0)
    unet, te = comp.unet.to(dev).train(), comp.text_encoder.to(dev).train()
    if channels_last: unet.to(memory_format=torch.channels_last)
    params = list(unet.parameters()) + list(te.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)
    fwd = torch.compile(unet) if compile_ else unet
    ids = torch.randint(3, 50, (batch, 77), device=dev); mask = torch.ones_like(ids)
    x = torch.randn(batch, 3, 64, 64, device=dev)
    if channels_last: x = x.contiguous(memory_format=torch.channels_last)
    ac = torch.autocast("cuda", dtype=autocast_dtype) if autocast_dtype else torch.autocast("cuda", enabled=False)
    def step():
        t = torch.randint(0, 1000, (batch,), device=dev)
        with ac:
            text = te(ids, attention_mask=mask)[0]
            eps = fwd(x, t, encoder_hidden_states=text).sample
        loss = F.mse_loss(eps.float(), x)
        opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step()
    t0 = time.perf_counter()
    for _ in range(5): step()
    torch.cuda.synchronize(); warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps): step()
    torch.cuda.synchronize(); ms = 1000 * (time.perf_counter() - t0) / steps
    res[name] = {"ms_per_step": round(ms, 2), "warmup_s": round(warm, 1), "batch": batch}
    print(name, res[name], flush=True)
    return step
bench("bf16_cl", True, torch.bfloat16, False)
bench("bf16_contig", False, torch.bfloat16, False)
bench("fp32_tf32_contig", False, None, False)
bench("fp16_contig", False, torch.float16, False)
bench("bf16_contig_b512", False, torch.bfloat16, False, batch=512)
s = bench("bf16_contig_again", False, torch.bfloat16, False)
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
    for _ in range(5): s()
    torch.cuda.synchronize()
tbl = prof.key_averages().table(sort_by="cuda_time_total", row_limit=30)
print(tbl)
open(f"{out}/profile.txt", "w").write(tbl)
try:
    bench("bf16_contig_compile", False, torch.bfloat16, True)
except Exception as e:
    print("compile failed", repr(e)[:500])
# data generation speed
for backend, b in [("auto", 64), ("auto", 256), ("torch", 64)]:
    t0 = time.perf_counter()
    try:
        synthetic.generate_dataset(4000, seed=1, device=dev, batch=b, backend=backend)
        torch.cuda.synchronize()
        r = 4000 / (time.perf_counter() - t0)
    except Exception as e:
        r = repr(e)[:300]
    res[f"data_{backend}_b{b}"] = r
    print("data", backend, b, r, flush=True)
json.dump(res, open(f"{out}/profile.json", "w"), indent=1)
