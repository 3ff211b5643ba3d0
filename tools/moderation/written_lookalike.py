"""More hand-written benign look-alikes for the moderation head's TRAINING set (session 9): requests
whose words sound harmful (violence in cooking, sport, games and code; medicine and doses; sex
education; history of atrocities; slurs and insults as a topic; security as a defender) but that
ask for nothing a moderation endpoint should flag. Written from a list of everyday domains, not from
the held-out set (`make_train.py` drops any that come near a held-out item all the same).
(The texts live in tools/data/moderation_lookalike.jsonl, round 4.)"""
from tools import datasets

LOOKALIKE_MORE = datasets.lookalike({4})
