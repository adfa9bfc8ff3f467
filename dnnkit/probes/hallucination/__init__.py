"""Hidden-state probes that flag wrong answers of a causal LM (`dnnkit probe-hallucination`).

Modules: quiz (bsdgames quiz parser), facts (fact tables + overrides), arithmetic, dataset (QA
records and JSONL), generate (prompts, batched greedy decoding, teacher-forced hidden states),
grade (exact-match labels), probes (linear, MLP, SAPLMA), layersearch, baselines, evaluate,
pipeline (train / score), plots. Nothing heavy is imported here.
"""
