//! HumanEval: 164 Python problems (prompt = signature + docstring, hidden `check` tests), scored
//! pass@1 by running the model's function against the tests in the sandbox.
//!
//! The prompt is EvalPlus's instruct prompt — the one behind the Qwen2.5-Coder report's instruct
//! figures — and the answer starts from EvalPlus's response prefix, which opens a ```python block;
//! generation stops at the closing fence.

use std::io::Read;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
pub struct Problem {
    pub task_id: String,
    pub prompt: String,
    pub entry_point: String,
    pub test: String,
}

/// Reads the problems from `HumanEval.jsonl.gz`.
pub fn load(gz: &[u8]) -> Result<Vec<Problem>, String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .map_err(|e| format!("HumanEval.jsonl.gz: {e}"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("HumanEval.jsonl.gz line {}: {e}", i + 1)))
        .collect()
}

/// The user message.
pub fn instruction(p: &Problem) -> String {
    format!(
        "Please provide a self-contained Python script that solves the following problem in a markdown code block:\n```\n{}\n```\n",
        p.prompt.trim()
    )
}

/// The start of the assistant's answer; the model continues inside the code block.
pub const RESPONSE_PREFIX: &str =
    "Below is a Python script with a self-contained function that solves the problem and passes corresponding tests:\n```python\n";

/// Generation stops at the closing fence.
pub const STOP: &str = "```";

/// The program the sandbox runs: the prompt's imports, then the model's code reduced to what a
/// solution consists of — imports, function and class definitions, and assignments that call
/// nothing — then the tests and the check. Like EvalPlus's sanitizer, this drops the example calls,
/// prints, asserts and `__main__` blocks a chat model adds around its function, which would
/// otherwise fail (or pass) on their own. The reduction is Python's `ast`, inside the sandbox.
pub fn program(p: &Problem, completion: &str) -> String {
    let code = completion.split(STOP).next().unwrap_or("");
    let imports: Vec<&str> = p
        .prompt
        .lines()
        .filter(|l| l.starts_with("import ") || l.starts_with("from "))
        .collect();
    // A JSON string is a valid Python string literal (serde_json never writes `\/`).
    let literal = serde_json::to_string(code).expect("a string serialises");
    format!(
        "{imports}\nimport ast as _ast\n_tree = _ast.parse({literal})\n\
         _keep = (_ast.Import, _ast.ImportFrom, _ast.FunctionDef, _ast.AsyncFunctionDef, _ast.ClassDef)\n\
         _tree.body = [n for n in _tree.body if isinstance(n, _keep) or (isinstance(n, (_ast.Assign, _ast.AnnAssign)) \
         and n.value is not None and not any(isinstance(x, _ast.Call) for x in _ast.walk(n.value)))]\n\
         exec(compile(_tree, '<completion>', 'exec'))\n\n{test}\n\ncheck({entry})\n",
        imports = imports.join("\n"),
        test = p.test,
        entry = p.entry_point
    )
}

/// One problem's result, as the results file stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scored {
    pub task_id: String,
    pub passed: bool,
    /// `passed`, `failed`, `timed_out`.
    pub verdict: String,
    pub completion: String,
    pub completion_tokens: usize,
    /// The tail of stderr when it failed.
    pub error: String,
    /// Prompt tokens of the request (for its cost; absent in files written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<usize>,
    /// Mean log-probability of the answer's tokens under the model that wrote it: its own
    /// confidence, the signal `model: "auto"` escalates on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_logprob: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_joins_imports_code_and_tests() {
        let p = Problem {
            task_id: "HumanEval/0".into(),
            prompt: "from typing import List\n\ndef f(x: List[int]) -> int:\n    \"\"\"doc\"\"\"\n".into(),
            entry_point: "f".into(),
            test: "def check(c):\n    assert c([1]) == 1\n".into(),
        };
        let prog = program(&p, "def f(x):\n    return x[0]\n```\nextra text");
        assert!(prog.starts_with("from typing import List\n"));
        assert!(prog.contains("return x[0]") && !prog.contains("extra text"));
        assert!(prog.trim_end().ends_with("check(f)"));
    }

    /// The reduction keeps the solution and drops the model's own example code (run for real:
    /// plain python3, on a harmless program of ours).
    #[test]
    fn the_models_own_examples_are_dropped() {
        let p = Problem {
            task_id: "t".into(),
            prompt: "def f(x):\n".into(),
            entry_point: "f".into(),
            test: "def check(c):\n    assert c(2) == 4\n".into(),
        };
        let completion = "import math\nSCALE = 2\nLIMIT = int('3')\n\ndef f(x):\n    return x * SCALE\n\nprint(f(2))\nassert f(1) == 99\nif __name__ == '__main__':\n    raise SystemExit(1)\n";
        let prog = program(&p, completion);
        let out = std::process::Command::new("python3")
            .args(["-I", "-c", &prog])
            .output()
            .expect("python3 runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty(), "the example print was dropped");
    }
}
