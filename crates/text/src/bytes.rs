//! Byte-level BPE stores tokens as strings over a 256-character alphabet: printable bytes stand for
//! themselves, the others are shifted to U+0100 and up (GPT-2's `bytes_to_unicode`).

/// `BYTE_TO_CHAR[b]` is the character that stands for byte `b`.
pub fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            b as char
        } else {
            let c = char::from_u32(next).expect("valid code point");
            next += 1;
            c
        };
    }
    table
}

/// Inverse of the table: `None` for characters outside the alphabet.
pub fn char_to_byte(c: char, table: &[char; 256]) -> Option<u8> {
    let u = c as u32;
    if u < 256 && table[u as usize] == c {
        return Some(u as u8);
    }
    if (256..256 + 68).contains(&u) {
        return table.iter().position(|&t| t == c).map(|b| b as u8);
    }
    None
}
