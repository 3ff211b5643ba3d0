"""Hand-written moderation training texts (the data lives in tools/data/*.jsonl).

- WRITTEN: harmful requests per OpenAI category, three rounds merged (WRITTEN_MORE: second round,
  first-person statements and messages for the categories whose cross-validated recall was lowest;
  WRITTEN_THIRD: third round).
- LOOKALIKE: harmless requests whose words sound harmful (idiom, code, sport), three rounds.
- BENIGN_REQUESTS: ordinary requests.
All written apart from the held-out set."""
from tools import datasets

WRITTEN = datasets.written()
WRITTEN_MORE = datasets.written(2)
WRITTEN_THIRD = datasets.written(3)
LOOKALIKE = datasets.lookalike({1, 2, 3})
BENIGN_REQUESTS = datasets.benign_requests()
