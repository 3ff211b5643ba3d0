"""The KV cache's rounding at ~4k tokens of depth: tandem's logits after a ~4,000-token prompt (real
text: excerpts of the Python stdlib's argparse.py and a question) with the cache in f16, q8_0 and
q4_0, against the same run with an f32 cache (exact kernels throughout, so only the cache differs).
Prints per prompt: top-1 the same, overlap of the top-5 sets, and the largest difference of the
reference's top-5 logits relative to its top-1 (inf: one fell out of the other's top 10).

    python3 tools/kv_quality_at_depth.py [path/to/tandem]
"""
import json, subprocess, sys
T = sys.argv[1] if len(sys.argv) > 1 else "target/release/tandem"
src = open(__import__("argparse").__file__).read()
out = {}
for name, start in [("argparse@0", 0), ("argparse@40000", 40000), ("argparse@80000", 80000)]:
    text = src[start:start + 19500] + "\n# Question: what does the function defined last above return?\n# Answer:"
    ids = json.loads(subprocess.check_output([T, "tokenize", "-m", "mini", text]))
    ids = ids[-4096:]
    toks = ",".join(map(str, ids))
    res = {}
    for kv in ["f32", "f16", "q8_0", "q4_0"]:
        r = subprocess.run([T, "logits", "-m", "mini", "--tokens", toks, "--top", "10", "--kv-type", kv,
                            "--prompt-kernel", "exact", "--decode-kernel", "exact"], capture_output=True, text=True, check=True)
        res[kv] = json.loads(r.stdout.strip().splitlines()[-1])["top"]
    ref = res["f32"]; rid = [t[0] for t in ref[:5]]
    print(name, len(ids), "tokens")
    for kv in ["f16", "q8_0", "q4_0"]:
        got = {t[0]: t[1] for t in res[kv]}
        top1 = res[kv][0][0]
        # relative logits of the reference's top-5 (ids missing from our top-10: unknown -> report)
        diffs = []
        for i, l in ref[:5]:
            if i in got:
                diffs.append(abs((got[i] - got[ref[0][0]] if ref[0][0] in got else float("nan")) - (l - ref[0][1])))
            else:
                diffs.append(float("inf"))
        overlap = len(set(rid) & set(t[0] for t in res[kv][:5]))
        print(f"  {kv}: top-1 {'same' if top1 == ref[0][0] else 'DIFFERENT'}, top-5 overlap {overlap}/5, max rel-logit diff {max(diffs):.3f}")
