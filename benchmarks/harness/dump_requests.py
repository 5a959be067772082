"""Dumps the (context, continuation) requests lm-evaluation-harness builds for the first N items of
each zero-shot task, read from this repository's data/zeroshot files, into a JSON fixture that
Tests/EvaluationTests/HarnessRequestTests.swift compares our prompts against.

The harness's own task YAMLs are used (prompts, process_docs, doc_to_choice, target delimiter);
only the dataset is swapped for the local file. No model runs: a recording LM answers every
request by a fixed rule on the characters (`rule_loglikelihood`), and the harness's per-item acc
and acc_norm under that rule are kept, so the test also checks our metrics and gold indices
against the harness's own `process_results`. Usage (no torch needed):
    python -m venv /tmp/lmeval && /tmp/lmeval/bin/pip install --no-deps lm-eval==0.4.13 &&
    /tmp/lmeval/bin/pip install datasets dill evaluate jinja2 more_itertools numpy pytablewriter \
        rouge-score sacrebleu scikit-learn sqlitedict tqdm typing_extensions word2number
    /tmp/lmeval/bin/python benchmarks/harness/dump_requests.py 50 Tests/Fixtures/harness_requests.json
"""
import json, os, sys, tempfile
from importlib.metadata import version

import lm_eval
from lm_eval.api.model import LM
from lm_eval.tasks import TaskManager

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HARNESS_TASKS = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")
# task -> (harness yaml, split the harness scores, our file)
TASKS = {
    "arc_easy": ("arc/arc_easy.yaml", "test", "arc_easy.jsonl"),
    "arc_challenge": ("arc/arc_challenge.yaml", "test", "arc_challenge.jsonl"),
    "hellaswag": ("hellaswag/hellaswag.yaml", "validation", "hellaswag.jsonl.gz"),
    "openbookqa": ("openbookqa/openbookqa.yaml", "test", "openbookqa.jsonl"),
    "winogrande": ("winogrande/default.yaml", "validation", "winogrande.jsonl"),
    "mathqa": ("mathqa/mathqa.yaml", "test", "mathqa.jsonl"),
    "piqa": ("piqa/piqa.yaml", "validation", "piqa.jsonl"),
}


def rule_loglikelihood(context, continuation):
    """log p under the rule the Swift test's model uses, one token per Unicode character:
    −log p(next | prefix) = ((Σ prefix code points + 3·next) mod 17) / 4. The context's trailing
    spaces move to the continuation first, as the harness's `_encode_pair` does."""
    stripped = context.rstrip(" ")
    continuation = context[len(stripped):] + continuation
    prefix = sum(ord(ch) for ch in stripped)
    total = 0.0
    for ch in continuation:
        total -= ((prefix + 3 * ord(ch)) % 17) / 4
        prefix += ord(ch)
    return total


class Recorder(LM):
    def __init__(self):
        super().__init__()
        self.seen = []

    def loglikelihood(self, requests, disable_tqdm=False):
        self.seen.extend(requests)
        return [(rule_loglikelihood(*r.arguments), False) for r in requests]

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError

    def generate_until(self, requests, disable_tqdm=False):
        raise NotImplementedError


def main():
    limit, out = int(sys.argv[1]), sys.argv[2]
    result = {"harness_version": version("lm_eval"), "limit": limit, "tasks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for task, (yaml, split, file) in TASKS.items():
            # Same directory as the original so `!function utils...` resolves; a fresh name.
            src = os.path.join(HARNESS_TASKS, yaml)
            local = os.path.join(os.path.dirname(src), f"lowrank_local_{task}.yaml")
            with open(local, "w") as f:
                f.write(f"include: {os.path.basename(src)}\ntask: lowrank_{task}\ntag: []\n"
                        f"dataset_path: json\ndataset_name: null\n"
                        f"dataset_kwargs:\n  data_files:\n    {split}: {os.path.join(REPO, 'data/zeroshot', file)}\n"
                        f"training_split: null\nvalidation_split: {split if split == 'validation' else 'null'}\n"
                        f"test_split: {split if split == 'test' else 'null'}\nfewshot_split: null\n")
            try:
                lm = Recorder()
                manager = TaskManager()
                evaluated = lm_eval.simple_evaluate(model=lm, tasks=[f"lowrank_{task}"], task_manager=manager, limit=limit,
                                                    num_fewshot=0, bootstrap_iters=0, log_samples=True)
                samples = {s["doc_id"]: s for s in evaluated["samples"][f"lowrank_{task}"]}
                items = {}
                for inst in lm.seen:
                    items.setdefault(inst.doc_id, {})[inst.idx] = list(inst.arguments)
                result["tasks"][task] = [
                    {"requests": [items[d][i] for i in sorted(items[d])],
                     "loglikelihoods": [rule_loglikelihood(*items[d][i]) for i in sorted(items[d])],
                     "acc": samples[d]["acc"], **({"acc_norm": samples[d]["acc_norm"]} if "acc_norm" in samples[d] else {})}
                    for d in sorted(items)
                ]
            finally:
                os.remove(local)
    with open(out + ".tmp", "w") as f:
        json.dump(result, f, ensure_ascii=False, indent=0)
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
