"""llama.cpp throughput with the protocol of `lowrank bench`: a 512-token prompt in one batch
(prefill tokens/s), then 128 tokens decoded one at a time (decode tokens/s); medians of RUNS runs
after a warm-up; 2 threads; an F16 KV cache (llama.cpp's default, named here so the report can say
it). Prints one JSON object. Benchmark helper only."""
import json, statistics, sys, time
import llama_cpp
import numpy as np

path, runs = sys.argv[1], int(sys.argv[2])
llm = llama_cpp.Llama(model_path=path, n_ctx=1024, n_batch=512, n_ubatch=512, n_threads=2, n_threads_batch=2,
                      type_k=llama_cpp.GGML_TYPE_F16, type_v=llama_cpp.GGML_TYPE_F16, verbose=False, logits_all=False)
seed = llm.tokenize(b"The lighthouse keeper climbed the spiral stairs each evening, counting the steps as the sea grew dark. ",
                    add_bos=False)
prompt = [seed[i % len(seed)] for i in range(512)]
vocabulary = llm.n_vocab()


def last_argmax():
    # Logits of the last evaluated token, read without logits_all (which would store every row).
    pointer = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return int(np.ctypeslib.as_array(pointer, shape=(vocabulary,)).argmax())


prefill, decode, first = [], [], []
for run in range(runs + 1):
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    token = last_argmax()
    t1 = time.perf_counter()
    for _ in range(127):
        llm.eval([token])
        token = last_argmax()
    t2 = time.perf_counter()
    if run > 0:
        prefill.append(512 / (t1 - t0))
        decode.append(127 / (t2 - t1))
        first.append(t1 - t0)
print(json.dumps({"prefill_tokens_per_second": statistics.median(prefill), "decode_tokens_per_second": statistics.median(decode),
                  "time_to_first_token_seconds": statistics.median(first), "prefill_runs": prefill, "decode_runs": decode,
                  "threads": 2, "kv_cache": "f16", "llama_cpp_python": llama_cpp.__version__}))
