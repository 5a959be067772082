"""Prints the side-by-side table of a compare_llama_cpp.sh run: each variant's median over the
rounds, then each ratio lowrank / llama.cpp as the median of the per-round ratios and their range
(the engines ran alternately within a round, so a ratio compares runs minutes apart at most)."""
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
variants = []  # (engine, variant) in first-seen order
for r in rows:
    if (r["engine"], r["variant"]) not in variants:
        variants.append((r["engine"], r["variant"]))


def reports(engine, variant):
    return {r.get("round", 1): r["report"] for r in rows if r["engine"].split()[0] == engine and r["variant"] == variant}


print(f"{'engine':<22}{'variant':<13}{'KV cache':<10}{'rounds':>7}{'prefill tok/s':>15}{'decode tok/s':>14}")
for engine, variant in variants:
    by_round = reports(engine.split()[0], variant)
    kv = next(iter(by_round.values())).get("kv_cache", "?")
    prefill = statistics.median(r["prefill_tokens_per_second"] for r in by_round.values())
    decode = statistics.median(r["decode_tokens_per_second"] for r in by_round.values())
    print(f"{engine:<22}{variant:<13}{kv:<10}{len(by_round):>7}{prefill:>15.1f}{decode:>14.1f}")
print()
for ours, theirs in [("f32-kv-f16", "F32"), ("f32", "F32"), ("f16", "F16"), ("bf16", "F16")]:
    a, b = reports("lowrank", ours), reports("llama.cpp", theirs)
    shared = sorted(set(a) & set(b))
    if not shared:
        continue
    line = f"lowrank {ours} / llama.cpp {theirs}:"
    for key, name in [("prefill_tokens_per_second", "prefill"), ("decode_tokens_per_second", "decode")]:
        ratios = [a[k][key] / b[k][key] for k in shared]
        line += f" {name} {statistics.median(ratios):.2f}x [{min(ratios):.2f}, {max(ratios):.2f}]"
    print(line + f" ({len(shared)} rounds)")
