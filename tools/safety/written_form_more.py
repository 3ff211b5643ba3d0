"""More benign requests in jailbreak FORM for the attack head's TRAINING set (session 9): personas,
"ignore / forget / override what I said", new rules, modes, system-prompt talk, encodings, "no
limits" meant as length or style, and attack words in their ordinary senses. Thirty training items
(`written_benign.TRAIN`) were too few against the hundreds of jailbreaks: the head learned the form.
Written by scenario (everyday tasks), not from `written_benign.EVAL`; `make_sets.py` drops any that
come near an EVAL item all the same.
(The texts live in tools/data/attack_benign_form.jsonl, split train_more.)"""
from tools import datasets

TRAIN_MORE = datasets.benign_form("train_more")
