"""Independent check of fisher_importance.json (issue 12): the fixture's recipe run again with
PyTorch + transformers from the same GGUF, in float32 (as the fixture) and in float64.

Not part of the product or the tests: it answers whether a difference between our backward pass and
the fixture is ours or the float32 reference's rounding. Usage (a venv with torch (CPU),
transformers, gguf and accelerate; about 2 minutes per dtype on 2 cores):
    python scripts/reference/fisher_reference.py MODEL.gguf data/c4/train_sample.jsonl \
        ../shared/fixtures/smollm2/fisher_importance.json OUT.json [float32|float64 ...]
Writes, per dtype, the first window's loss, the gradient norms and both alpha variants, keyed as the
fixture is ("layer.proj"). Tests/Fixtures/fisher_importance_float64.json is its float64 output.
"""
import json, os, sys, time
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf_path, c4_path, fixture_path, out_path = sys.argv[1:5]
dtypes = sys.argv[5:] or ["float32", "float64"]
fixture = json.load(open(fixture_path))
starts, length = fixture["starts"], fixture["length"]
directory, name = os.path.split(os.path.abspath(gguf_path))
tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
text = "\n\n".join(json.loads(line)["text"] for line in open(c4_path))
ids = tokenizer(text, add_special_tokens=False)["input_ids"]
print(f"{len(ids)} tokens", file=sys.stderr)
windows = [torch.tensor(ids[s:s + length]).unsqueeze(0) for s in starts]
torch.set_num_threads(int(os.environ.get("THREADS", "2")))

results = {}
for dtype_name in dtypes:
    dtype = getattr(torch, dtype_name)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, torch_dtype=torch.float32,
                                                 attn_implementation="eager").to(dtype)
    model.eval()
    projections = {}
    for p in model.parameters():
        p.requires_grad_(False)
    for layer_index, layer in enumerate(model.model.layers):
        for proj_name, module in [("q_proj", layer.self_attn.q_proj), ("k_proj", layer.self_attn.k_proj),
                                  ("v_proj", layer.self_attn.v_proj), ("o_proj", layer.self_attn.o_proj),
                                  ("gate_proj", layer.mlp.gate_proj), ("up_proj", layer.mlp.up_proj),
                                  ("down_proj", layer.mlp.down_proj)]:
            module.weight.requires_grad_(True)
            projections[f"{layer_index}.{proj_name}"] = module.weight
    sum_of_squares = {k: 0.0 for k in projections}
    summed_gradient = {k: torch.zeros_like(w, dtype=torch.float64) for k, w in projections.items()}
    norms, first_loss = {}, None
    started = time.time()
    for index, window in enumerate(windows):
        model.zero_grad(set_to_none=True)
        logits = model(window).logits[0, :-1].to(dtype)
        loss = torch.nn.functional.cross_entropy(logits, window[0, 1:])
        loss.backward()
        if index == 0:
            first_loss = loss.item()
        for key, weight in projections.items():
            g = weight.grad.to(torch.float64)
            w = weight.detach().to(torch.float64)
            if index == 0:
                norms[key] = g.norm().item()
            sum_of_squares[key] += ((g * w) ** 2).sum().item()
            summed_gradient[key] += g
        print(f"{dtype_name}: window {index + 1}/{len(windows)} loss {loss.item():.8f} ({time.time() - started:.0f} s)", file=sys.stderr)
    square_of_sum = {k: ((summed_gradient[k] * projections[k].detach().to(torch.float64)) ** 2).sum().item() for k in projections}
    results[dtype_name] = {"first_window_loss": first_loss, "gradient_norm_first_window": norms,
                           "alpha_sum_over_windows_of_squares": sum_of_squares,
                           "alpha_square_of_summed_gradient": square_of_sum}
    json.dump(results, open(out_path, "w"), indent=1)
