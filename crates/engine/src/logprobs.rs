//! Log-probabilities of the model's own distribution (raw logits, before sampling transforms), as
//! the API's `logprobs` / `top_logprobs` report them.

use tandem_text::Tokenizer;

#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: u32,
    pub text: String,
    pub bytes: Vec<u8>,
    pub logprob: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Logprobs {
    pub chosen: TokenLogprob,
    /// The `k` most likely tokens, most likely first.
    pub top: Vec<TokenLogprob>,
}

fn entry(tok: &Tokenizer, id: u32, logprob: f32) -> TokenLogprob {
    let bytes = tok.token_bytes(id).to_vec();
    TokenLogprob {
        token: id,
        text: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
        logprob,
    }
}

/// `logits`: the raw logits [vocab]; `chosen`: the sampled token; `k`: how many alternatives.
pub fn logprobs(tok: &Tokenizer, logits: &[f32], chosen: u32, k: usize) -> Logprobs {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max as f64 + logits.iter().map(|&l| ((l - max) as f64).exp()).sum::<f64>().ln();
    let lp = |id: u32| (logits[id as usize] as f64 - lse) as f32;
    let mut top: Vec<u32> = Vec::with_capacity(k);
    if k > 0 {
        // Partial selection: keep the k best seen so far (k ≤ 20).
        for (i, &l) in logits.iter().enumerate() {
            if top.len() < k || l > logits[*top.last().unwrap() as usize] {
                let at = top.partition_point(|&t| logits[t as usize] >= l);
                top.insert(at, i as u32);
                top.truncate(k);
            }
        }
    }
    Logprobs {
        chosen: entry(tok, chosen, lp(chosen)),
        top: top.into_iter().map(|t| entry(tok, t, lp(t))).collect(),
    }
}
