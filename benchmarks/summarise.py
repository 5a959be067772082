"""Prints the side-by-side table of a compare_llama_cpp.sh run."""
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
by = {(r["engine"].split()[0], r["variant"].lower()): r["report"] for r in rows}
print(f"{'engine':<22}{'weights':<9}{'prefill tok/s':>15}{'decode tok/s':>14}")
for r in rows:
    rep = r["report"]
    print(f"{r['engine']:<22}{r['variant']:<9}{rep['prefill_tokens_per_second']:>15.1f}{rep['decode_tokens_per_second']:>14.1f}")
ref32, ref16 = by.get(("llama.cpp", "f32")), by.get(("llama.cpp", "f16"))
for variant, ref in [("f32", ref32), ("f16", ref16), ("bf16", ref16)]:
    ours = by.get(("lowrank", variant))
    if ours and ref:
        print(f"lowrank {variant} / llama.cpp {'F32' if ref is ref32 else 'F16'}: prefill "
              f"{ours['prefill_tokens_per_second'] / ref['prefill_tokens_per_second']:.2f}x, decode "
              f"{ours['decode_tokens_per_second'] / ref['decode_tokens_per_second']:.2f}x")
