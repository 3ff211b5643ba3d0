//! Object ids from the operating system's CSPRNG: unguessable, so an id alone reveals nothing and
//! cannot be enumerated.

/// `prefix` + `bytes` random bytes in lower-case hex.
pub fn random_id(prefix: &str, bytes: usize) -> crate::Result<String> {
    let mut b = vec![0u8; bytes];
    getrandom::getrandom(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut s = String::with_capacity(prefix.len() + 2 * bytes);
    s.push_str(prefix);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_prefixed_hex_and_differ() {
        let a = super::random_id("file-", 16).unwrap();
        let b = super::random_id("file-", 16).unwrap();
        assert_eq!(a.len(), 5 + 32);
        assert!(a[5..].bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
