//! The tokenizer built from the mini's GGUF vocabulary: ids equal llama.cpp's
//! (`llama-tokenize --ids --no-parse-special`, committed in tests/golden/tokenizer_llama_cpp.json),
//! chat-content mode never yields an added token, and every string round-trips byte for byte,
//! including through the incremental detokenizer.

mod common;

use tandem_gguf::GgufFile;
use tandem_text::{Detokenizer, SpecialMode, Tokenizer};

fn tokenizer() -> Tokenizer {
    Tokenizer::from_gguf(&GgufFile::open(common::mini_path()).unwrap()).unwrap()
}

/// Deterministic strings mixing ASCII, whitespace, Latin-1, combining marks, CJK, emoji and
/// text that looks like special tokens.
fn random_strings(n: usize) -> Vec<String> {
    let pools: [&[char]; 6] = [
        &[
            'a', 'Z', '0', '9', ' ', ' ', '\n', '\t', '\'', '.', '_', '<', '|', '>', '/',
        ],
        &['é', 'ü', 'ß', 'ñ', 'Æ', '\u{0301}', '\u{0308}', '\u{00a0}'],
        &['中', '文', '日', '本', '한', '글', '。', '，'],
        &['🦀', '🚀', '👍', '\u{1f3fd}', '\u{200d}', '🇨', '🇭'],
        &['а', 'б', 'ω', 'λ', 'א', 'ب', 'न'],
        &['𝔘', '𝟙', '\u{feff}', '\u{200b}', '\r', '\u{7f}', '\u{1}'],
    ];
    let specials = [
        "<|im_start|>",
        "<|im_end|>",
        "<|endoftext|>",
        "<tool_call>",
        "</tool_call>",
        "<|fim_prefix|>",
    ];
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..n)
        .map(|_| {
            let len = 1 + next() % 40;
            let mut out = String::new();
            for _ in 0..len {
                if next() % 20 == 0 {
                    out.push_str(specials[(next() % specials.len() as u64) as usize]);
                } else {
                    let pool = pools[(next() % 6) as usize];
                    out.push(pool[(next() % pool.len() as u64) as usize]);
                }
            }
            out
        })
        .collect()
}

#[test]
fn ids_equal_llama_cpp_on_hard_strings() {
    let tok = tokenizer();
    let golden = common::golden("tokenizer_llama_cpp.json");
    let cases = golden.as_array().unwrap();
    assert!(cases.len() >= 50, "at least 50 hard strings");
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = tok.encode(text, SpecialMode::UserDefined);
        if got != want {
            failures.push(format!("{text:?}\n  ours:      {got:?}\n  llama.cpp: {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn content_mode_never_makes_added_tokens_and_round_trips() {
    let tok = tokenizer();
    let golden = common::golden("tokenizer_llama_cpp.json");
    let mut texts: Vec<String> = golden
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect();
    texts.extend(random_strings(500));
    texts.push(String::new());
    for text in &texts {
        let ids = tok.encode(text, SpecialMode::None);
        assert!(
            ids.iter().all(|&i| !tok.is_added(i)),
            "{text:?} produced an added token: {ids:?}"
        );
        assert_eq!(tok.decode_bytes(&ids), text.as_bytes(), "{text:?} does not round-trip");
        let mut d = Detokenizer::new();
        let mut streamed = String::new();
        for &i in &ids {
            streamed.push_str(&d.push(&tok, i));
        }
        streamed.push_str(&d.finish());
        assert_eq!(&streamed, text, "incremental detokenisation differs");
    }
}

#[test]
fn reference_mode_keeps_control_tokens_as_text_but_matches_user_defined() {
    let tok = tokenizer();
    let ids = tok.encode("<|im_start|><tool_call>", SpecialMode::UserDefined);
    assert!(
        !ids.contains(&151644),
        "control token parsed in reference mode: {ids:?}"
    );
    assert_eq!(
        ids.last(),
        Some(&151657),
        "<tool_call> is a user-defined token: {ids:?}"
    );
    assert_eq!(tok.encode("<|im_start|>", SpecialMode::All), vec![151644]);
}

#[test]
fn a_character_split_across_tokens_is_never_emitted_broken() {
    let tok = tokenizer();
    // Rare CJK and emoji sequences are byte-level pieces that split inside a character.
    let text = "𝔘𝔫𝔦 👨‍👩‍👧‍👦 龘";
    let ids = tok.encode(text, SpecialMode::None);
    assert!(ids.len() > 5);
    let mut d = Detokenizer::new();
    for &i in &ids {
        let piece = d.push(&tok, i);
        assert!(!piece.contains('\u{fffd}'), "broken character emitted after token {i}");
    }
}
