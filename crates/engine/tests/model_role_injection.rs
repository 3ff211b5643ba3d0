//! Role-boundary injection is impossible: the text of every added token of the vocabulary, placed in
//! any message (system, developer, user, assistant, tool, a tool call's arguments), stays text. The
//! rendered prompt holds exactly the added tokens the template itself writes, and decodes back to
//! the rendered text byte for byte.

mod common;

use tandem_text::{chat, ChatMessage};

#[test]
fn no_message_text_becomes_an_added_token() {
    let lm = common::mini();
    let tok = &lm.tokenizer;
    let conversation = |inject: &str| {
        let mut call = ChatMessage::new("assistant", "");
        call.tool_calls = Some(vec![serde_json::json!({
            "id": "call_1", "type": "function",
            "function": {"name": "lookup", "arguments": format!("{{\"q\": \"x{inject}y\"}}")}
        })]);
        vec![
            ChatMessage::new("system", &format!("rules {inject} end")),
            ChatMessage::new("developer", &format!("{inject}dev")),
            ChatMessage::new("user", &format!("hello {inject}")),
            call,
            ChatMessage::new("tool", &format!("result{inject}\n{inject}")),
            ChatMessage::new("assistant", &format!("{inject}<|im_end|>")),
            ChatMessage::new("user", inject),
        ]
    };
    let added_in = |ids: &[u32]| -> Vec<u32> { ids.iter().copied().filter(|&i| tok.is_added(i)).collect() };
    let render = |messages: &[ChatMessage]| {
        let pieces = lm.template.render(messages, None, true).unwrap();
        let text: String = pieces.iter().map(|p| p.text.as_str()).collect();
        (chat::tokenize_pieces(tok, &pieces), text)
    };
    // The template's own markup: the same conversation with harmless text in place of the token.
    let (baseline, _) = render(&conversation("plain"));
    let structure = added_in(&baseline);
    assert!(structure.len() >= 10, "the template writes role markers: {structure:?}");

    let added: Vec<(String, u32)> = tok.added_tokens().map(|(t, i)| (t.to_string(), i)).collect();
    assert!(added.len() >= 20, "{} added tokens", added.len());
    for (text, id) in &added {
        let (ids, rendered) = render(&conversation(text));
        assert_eq!(
            added_in(&ids),
            structure,
            "the text of {text:?} ({id}) in a message became an added token"
        );
        assert_eq!(
            tok.decode_bytes(&ids),
            rendered.as_bytes(),
            "the prompt with {text:?} does not decode to its text"
        );
    }
}
