//! OpenAI's moderation categories (the `omni-moderation` set), in the API's order.

pub const CATEGORIES: [&str; 13] = [
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
];

/// The broader category a subcategory belongs to (`hate/threatening` → `hate`).
pub fn parent(category: &str) -> Option<&'static str> {
    let (p, _) = category.split_once('/')?;
    CATEGORIES.iter().copied().find(|c| *c == p)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_subcategory_has_its_parent_in_the_list() {
        for c in super::CATEGORIES {
            match c.split_once('/') {
                Some((p, _)) => assert_eq!(super::parent(c), Some(p)),
                None => assert_eq!(super::parent(c), None),
            }
        }
    }
}
