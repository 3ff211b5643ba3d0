"""The independent reference for `tandem eval bfcl`'s scoring: BFCL's own AST checker
(`bfcl_eval/eval_checker/ast_eval/ast_checker.py` from the pinned wheel, run as is) on the answers
a `tandem eval bfcl` run stored, compared item by item with the verdicts tandem's Rust port gave.

    python3 -m tools.bfcl_check_reference WHEEL RESULTS.jsonl [RESULTS.jsonl ...]

The checker's package imports every model handler (vendor SDKs, torch); only its checker module
and the two small modules it needs are loaded here, with the model table reduced to the one
entry the OpenAI function-calling models use (dots in names become underscores). Prints the
agreement and every disagreement; exits 1 on any.
"""

import importlib.util
import json
import sys
import types
import zipfile

CATEGORIES = {
    "simple": "BFCL_v4_simple_python",
    "multiple": "BFCL_v4_multiple",
    "parallel": "BFCL_v4_parallel",
    "parallel_multiple": "BFCL_v4_parallel_multiple",
    "irrelevance": "BFCL_v4_irrelevance",
}
MODEL = "gpt-4o-2024-11-20-FC"


def load_checker(wheel):
    z = zipfile.ZipFile(wheel)

    def module(name, path):
        spec = importlib.util.spec_from_loader(name, loader=None)
        m = importlib.util.module_from_spec(spec)
        sys.modules[name] = m
        exec(compile(z.read(path).decode(), path, "exec"), m.__dict__)
        return m

    for pkg in ["bfcl_eval", "bfcl_eval.constants", "bfcl_eval.eval_checker", "bfcl_eval.eval_checker.ast_eval",
                "bfcl_eval.eval_checker.ast_eval.type_convertor"]:
        sys.modules[pkg] = types.ModuleType(pkg)
    module("bfcl_eval.constants.enums", "bfcl_eval/constants/enums.py")
    module("bfcl_eval.constants.type_mappings", "bfcl_eval/constants/type_mappings.py")
    config = types.ModuleType("bfcl_eval.constants.model_config")
    config.MODEL_CONFIG_MAPPING = {MODEL.replace("_", "/"): types.SimpleNamespace(underscore_to_dot=True)}
    sys.modules["bfcl_eval.constants.model_config"] = config
    for conv in ["java_type_converter", "js_type_converter"]:
        module(f"bfcl_eval.eval_checker.ast_eval.type_convertor.{conv}",
               f"bfcl_eval/eval_checker/ast_eval/type_convertor/{conv}.py")
    checker = module("bfcl_eval.eval_checker.ast_eval.ast_checker", "bfcl_eval/eval_checker/ast_eval/ast_checker.py")
    enums = sys.modules["bfcl_eval.constants.enums"]
    data = {}
    for cat, stem in CATEGORIES.items():
        qs = {}
        for line in z.read(f"bfcl_eval/data/{stem}.json").decode().splitlines():
            if line.strip():
                q = json.loads(line)
                qs[q["id"]] = {"function": q["function"]}
        if cat != "irrelevance":
            for line in z.read(f"bfcl_eval/data/possible_answer/{stem}.json").decode().splitlines():
                if line.strip():
                    a = json.loads(line)
                    qs[a["id"]]["answer"] = a["ground_truth"]
        data[cat] = qs
    return checker, enums.Language.PYTHON, data


def verdict(checker, language, data, r):
    cat = r["category"]
    calls = r.get("calls") or []
    if cat == "irrelevance" or cat.startswith("no_call"):
        # tandem's false-call sets score as irrelevance does: any call is wrong.
        return len(calls) == 0
    if not calls:
        return False
    try:
        # As BFCL's OpenAI FC handler decodes: [{name: json.loads(arguments)}].
        output = [{name: json.loads(args)} for name, args in calls]
    except Exception:
        return False
    item = data[cat][r["id"]]
    res = checker.ast_checker(item["function"], output, item["answer"], language, cat, MODEL)
    return bool(res["valid"])


def main():
    wheel, files = sys.argv[1], sys.argv[2:]
    checker, language, data = load_checker(wheel)
    n = same = 0
    for f in files:
        for line in open(f):
            r = json.loads(line)
            if str(r.get("error", "")).startswith("http "):
                continue
            ref = verdict(checker, language, data, r)
            n += 1
            if ref == r["valid"]:
                same += 1
            else:
                print(f"{f}: {r['id']}: BFCL says {ref}, tandem says {r['valid']} ({r.get('error')})")
    print(f"agreement: {same}/{n}")
    sys.exit(0 if same == n else 1)


if __name__ == "__main__":
    main()
