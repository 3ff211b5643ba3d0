//! Word timestamps as openai-whisper's `find_alignment` computes them: the decoder fed the
//! window's text once more while the alignment heads' cross-attention is read; per head the
//! scores over the audio's frames are softmaxed, normalised per frame across tokens and
//! median-filtered (width 7) along time; their mean through dynamic time warping gives the frame
//! where each token starts. Tokens are then grouped into words (on spaces, or on whole characters
//! for languages written without them) with punctuation merged as openai-whisper does.

use crate::whisper::{DecoderState, Whisper};

/// Whisper's time step: 20 ms per encoder position.
const SECONDS_PER_POSITION: f32 = 0.02;
const MEDIAN_WIDTH: usize = 7;
const PREPENDED: &str = "\"'“¿([{-";
const APPENDED: &str = "\"'.。,，!！?？:：”)]}、";
/// Python's `string.punctuation`, matched as openai-whisper does (`x in string.punctuation`).
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// The DTW path: (text row, time position) pairs from (0, 0) to (rows − 1, cols − 1).
pub type Path = Vec<(usize, usize)>;

/// The alignment of `text` (no timestamps) in a window whose audio fills `num_frames` mel frames:
/// the path, and per row (each text token, then the end of text) the second it starts at.
pub fn align(
    model: &Whisper,
    st: &DecoderState,
    prefix: &[u32],
    text: &[u32],
    eot: u32,
    heads: &[(usize, usize)],
    num_frames: usize,
) -> (Path, Vec<f32>) {
    let tokens: Vec<u32> = prefix.iter().chain(text).chain([&eot]).copied().collect();
    let scores = model.cross_scores(&mut st.clone(), &tokens, heads);
    let (n, ctx) = (tokens.len(), model.cfg.audio_ctx);
    let nf = (num_frames / 2).clamp(1, ctx);
    let mut matrix = vec![0f32; n * nf];
    for s in &scores {
        let w = normalised(s, n, ctx, nf);
        for (m, v) in matrix.iter_mut().zip(&w) {
            *m += v / scores.len() as f32;
        }
    }
    // Rows that predict the text tokens and the end: inputs from the last prefix token on.
    let rows = &matrix[(prefix.len() - 1) * nf..(n - 1) * nf];
    let cost: Vec<f32> = rows.iter().map(|v| -v).collect();
    let path = dtw(&cost, text.len() + 1, nf);
    let mut jumps = Vec::with_capacity(text.len() + 1);
    let mut last = usize::MAX;
    for &(i, j) in &path {
        if i != last {
            jumps.push(j as f32 * SECONDS_PER_POSITION);
            last = i;
        }
    }
    (path, jumps)
}

/// One head's scores [n, ctx] → softmax over the first `nf` positions, standardised per position
/// across the n tokens, median-filtered along positions: [n, nf].
fn normalised(s: &[f32], n: usize, ctx: usize, nf: usize) -> Vec<f32> {
    let mut w = vec![0f32; n * nf];
    for t in 0..n {
        let row = &mut w[t * nf..(t + 1) * nf];
        row.copy_from_slice(&s[t * ctx..t * ctx + nf]);
        tandem_kernels::ops::softmax_scalar(row);
    }
    for f in 0..nf {
        let mean = (0..n).map(|t| w[t * nf + f]).sum::<f32>() / n as f32;
        let var = (0..n).map(|t| (w[t * nf + f] - mean).powi(2)).sum::<f32>() / n as f32;
        let std = var.sqrt();
        for t in 0..n {
            w[t * nf + f] = (w[t * nf + f] - mean) / std;
        }
    }
    w.chunks_exact(nf).flat_map(median_filter).collect()
}

/// A running median of width 7 over reflect-padded values (as openai-whisper's `median_filter`).
fn median_filter(x: &[f32]) -> Vec<f32> {
    let pad = MEDIAN_WIDTH / 2;
    if x.len() <= pad {
        return x.to_vec();
    }
    let at = |i: isize| -> f32 {
        let n = x.len() as isize;
        let r = if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        };
        x[r as usize]
    };
    (0..x.len() as isize)
        .map(|i| {
            let mut win: Vec<f32> = (i - pad as isize..=i + pad as isize).map(at).collect();
            win.sort_by(f32::total_cmp);
            win[pad]
        })
        .collect()
}

/// openai-whisper's `dtw_cpu` over `cost` [rows, cols]: the cheapest monotone path, ties broken
/// as it breaks them (diagonal, then up, then left).
fn dtw(cost: &[f32], rows: usize, cols: usize) -> Path {
    let inf = f32::INFINITY;
    let mut acc = vec![inf; (rows + 1) * (cols + 1)];
    let mut trace = vec![2u8; (rows + 1) * (cols + 1)];
    let at = |i: usize, j: usize| i * (cols + 1) + j;
    acc[0] = 0.0;
    for j in 1..=cols {
        for i in 1..=rows {
            let (c0, c1, c2) = (acc[at(i - 1, j - 1)], acc[at(i - 1, j)], acc[at(i, j - 1)]);
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            acc[at(i, j)] = cost[(i - 1) * cols + j - 1] + c;
            trace[at(i, j)] = t;
        }
    }
    for j in 0..=cols {
        trace[at(0, j)] = 2;
    }
    for i in 0..=rows {
        trace[at(i, 0)] = 1;
    }
    let (mut i, mut j) = (rows, cols);
    let mut path = Vec::new();
    while i > 0 || j > 0 {
        path.push((i.wrapping_sub(1), j.wrapping_sub(1)));
        match trace[at(i, j)] {
            0 => (i, j) = (i - 1, j - 1),
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    path.reverse();
    // The backtrace's last steps may step off the grid (openai's too): keep the grid's cells.
    path.retain(|&(i, j)| i < rows && j < cols);
    path
}

/// A word of a transcript: its text (with its leading space), its tokens' indices into the text
/// tokens aligned, and its times.
#[derive(Debug, Clone, PartialEq)]
pub struct WordSpan {
    pub word: String,
    pub tokens: std::ops::Range<usize>,
    pub start: f32,
    pub end: f32,
}

/// The words of `pieces` (each text token's bytes) with their times from `jumps` (per token start,
/// then the end): split on spaces and punctuation, or on characters (`spaceless`), then
/// punctuation merged into its neighbours. Empty words (merged away) are dropped.
pub fn words(pieces: &[&[u8]], jumps: &[f32], spaceless: bool) -> Vec<WordSpan> {
    let mut subwords: Vec<(String, std::ops::Range<usize>)> = Vec::new();
    let mut bytes = Vec::new();
    let mut from = 0;
    for (i, p) in pieces.iter().enumerate() {
        bytes.extend_from_slice(p);
        if let Ok(s) = std::str::from_utf8(&bytes) {
            subwords.push((s.to_string(), from..i + 1));
            bytes.clear();
            from = i + 1;
        }
    }
    if !bytes.is_empty() {
        subwords.push((String::from_utf8_lossy(&bytes).into_owned(), from..pieces.len()));
    }
    let mut out: Vec<(String, std::ops::Range<usize>)> = Vec::new();
    for (s, r) in subwords {
        let starts = spaceless || s.starts_with(' ') || PUNCTUATION.contains(s.trim()) || out.is_empty();
        match out.last_mut() {
            Some(last) if !starts => {
                last.0.push_str(&s);
                last.1.end = r.end;
            }
            _ => out.push((s, r)),
        }
    }
    let time = |i: usize| jumps.get(i).or(jumps.last()).copied().unwrap_or(0.0);
    let mut spans: Vec<WordSpan> = out
        .into_iter()
        .map(|(word, tokens)| WordSpan {
            start: time(tokens.start),
            end: time(tokens.end),
            word,
            tokens,
        })
        .collect();
    merge_punctuation(&mut spans);
    spans.retain(|w| !w.word.is_empty());
    spans
}

/// openai-whisper's `merge_punctuations`: opening marks join the word after, closing marks the
/// word before (each keeps the times of the word it joins).
fn merge_punctuation(w: &mut [WordSpan]) {
    if w.len() < 2 {
        return;
    }
    let mut j = w.len() - 1;
    for i in (0..w.len() - 1).rev() {
        if w[i].word.starts_with(' ') && PREPENDED.contains(w[i].word.trim()) {
            let prev = std::mem::take(&mut w[i].word);
            w[j].word = prev + &w[j].word;
            w[j].tokens.start = w[i].tokens.start;
            w[i].tokens.end = w[i].tokens.start;
        } else {
            j = i;
        }
    }
    let mut i = 0;
    for j in 1..w.len() {
        if !w[i].word.ends_with(' ') && !w[j].word.is_empty() && APPENDED.contains(w[j].word.as_str()) {
            let next = std::mem::take(&mut w[j].word);
            w[i].word.push_str(&next);
            w[i].tokens.end = w[j].tokens.end;
            w[j].tokens.start = w[j].tokens.end;
        } else {
            i = j;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtw_walks_the_cheap_diagonal() {
        // 2 rows × 4 columns, cheap cells (0,0), (0,1), (1,2), (1,3); a path never skips a cell.
        let cost = [-1.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0, -1.0];
        assert_eq!(dtw(&cost, 2, 4), vec![(0, 0), (0, 1), (1, 1), (1, 2), (1, 3)]);
    }

    #[test]
    fn words_split_on_spaces_and_merge_punctuation() {
        let pieces: Vec<&[u8]> = vec![
            b" He", b" was", b" ill", b"-", b"dis", b"posed", b".", b" \"", b"Yes", b"\"",
        ];
        let jumps: Vec<f32> = (0..=pieces.len()).map(|i| i as f32 * 0.1).collect();
        let w = words(&pieces, &jumps, false);
        let text: Vec<&str> = w.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(text, [" He", " was", " ill", "-disposed.", " \"Yes\""]);
        assert_eq!((w[1].start, w[1].end), (0.1, 0.2));
        // A character split across tokens stays whole.
        let e = "é".as_bytes();
        let w = words(&[&e[..1], &e[1..], b" x"], &[0.0, 0.1, 0.2, 0.3], false);
        assert_eq!(w[0].word, "é");
        assert_eq!(w[0].tokens, 0..2);
    }
}
