//! Redis's glob-style matching (`stringmatchlen`, util.c), used by
//! PSUBSCRIBE, PUBSUB CHANNELS, CONFIG GET and COMMAND LIST: `*`, `?`,
//! `[abc]`, `[^a-z]`, and `\` to escape.

/// Deeper `*` nesting than this never matches (Redis's guard against
/// patterns made to take exponential time).
const MAX_NESTING: usize = 1000;

/// True if `text` matches `pattern`; `nocase` compares ASCII letters
/// without case.
pub fn matches(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_at(pattern, text, nocase, &mut skip_longer, 0)
}

fn fold(c: u8, nocase: bool) -> u8 {
    if nocase { c.to_ascii_lowercase() } else { c }
}

fn match_at(
    mut pattern: &[u8],
    mut text: &[u8],
    nocase: bool,
    skip_longer: &mut bool,
    nesting: usize,
) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    while let (Some(&p), Some(&c)) = (pattern.first(), text.first()) {
        match p {
            b'*' => {
                while pattern.get(1) == Some(&b'*') {
                    pattern = &pattern[1..];
                }
                if pattern.len() == 1 {
                    return true;
                }
                let rest = &pattern[1..];
                while !text.is_empty() {
                    if match_at(rest, text, nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    text = &text[1..];
                }
                // Nothing after this `*` matches anywhere in the rest: an
                // earlier `*` taking more cannot help either.
                *skip_longer = true;
                return false;
            }
            b'?' => {}
            b'[' => {
                pattern = &pattern[1..];
                let negate = pattern.first() == Some(&b'^');
                if negate {
                    pattern = &pattern[1..];
                }
                let mut found = false;
                // `i` walks the class; it ends on the `]` (or, for an
                // unterminated class, on the last byte of the pattern).
                let mut i = 0;
                loop {
                    match pattern.get(i) {
                        Some(b'\\') if pattern.len() - i >= 2 => {
                            i += 1;
                            if pattern.get(i) == Some(&c) {
                                found = true;
                            }
                        }
                        Some(b']') => break,
                        None => {
                            i = i.saturating_sub(1);
                            break;
                        }
                        Some(&start)
                            if pattern.len() - i >= 3 && pattern.get(i + 1) == Some(&b'-') =>
                        {
                            let end = pattern.get(i + 2).copied().unwrap_or(start);
                            let (lo, hi) = if start > end {
                                (end, start)
                            } else {
                                (start, end)
                            };
                            let (lo, hi, ch) =
                                (fold(lo, nocase), fold(hi, nocase), fold(c, nocase));
                            if (lo..=hi).contains(&ch) {
                                found = true;
                            }
                            i += 2;
                        }
                        Some(&other) => {
                            if fold(other, nocase) == fold(c, nocase) {
                                found = true;
                            }
                        }
                    }
                    i += 1;
                }
                if found == negate {
                    return false;
                }
                // Leave `pattern` on the class's last byte: the common step
                // below moves past it.
                pattern = pattern.get(i..).unwrap_or_default();
                if pattern.is_empty() {
                    // An unterminated class at the very end.
                    text = &text[1..];
                    break;
                }
            }
            b'\\' if pattern.len() >= 2 => {
                pattern = &pattern[1..];
                if fold(pattern[0], nocase) != fold(c, nocase) {
                    return false;
                }
            }
            _ => {
                if fold(p, nocase) != fold(c, nocase) {
                    return false;
                }
            }
        }
        pattern = &pattern[1..];
        text = &text[1..];
        if text.is_empty() {
            while pattern.first() == Some(&b'*') {
                pattern = &pattern[1..];
            }
            break;
        }
    }
    pattern.is_empty() && text.is_empty()
}

#[cfg(test)]
mod tests {
    use super::matches;

    fn m(p: &str, t: &str) -> bool {
        matches(p.as_bytes(), t.as_bytes(), false)
    }

    #[test]
    fn redis_glob_cases() {
        // As in Redis: the loop needs a byte of text, so `*` misses "".
        assert!(!m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("news.*", "news.art"));
        assert!(!m("news.*", "new.art"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("a*b*c", "aXbYc"));
        assert!(!m("a*b*c", "aXbY"));
        assert!(m("abc*", "abc"));
        assert!(m("[abc", "a"));
        assert!(!m("", "a"));
        assert!(m("", ""));
        assert!(!m("a", ""));
        assert!(matches(b"CONF*", b"config", true));
        assert!(!matches(b"CONF*", b"config", false));
    }

    #[test]
    fn abusive_patterns_end_quickly() {
        let pattern = "a*".repeat(50) + "b";
        let text = "a".repeat(60);
        assert!(!m(&pattern, &text));
    }
}
