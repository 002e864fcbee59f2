//! Glob-style patterns as Redis matches them (`stringmatchlen` in util.c),
//! for KEYS, SCAN MATCH, HSCAN/SSCAN/ZSCAN MATCH and PSUBSCRIBE:
//!
//! * `*` any run of bytes (but, as in Redis, no pattern except the empty
//!   one matches the empty string), `?` one byte,
//! * `[abc]`, `[^abc]`, ranges `[a-z]` (reversed ranges work too), `\x`
//!   inside brackets,
//! * `\x` matches `x` literally.
//!
//! Malformed patterns behave as in Redis, which reads the NUL after the
//! pattern: an unterminated `[abc` is a class that ends with the pattern,
//! and a `\` at the end matches a `\`. Bytes are compared as C's signed
//! `char`, which matters only for ranges with bytes above 0x7f.

/// Each `*` recurses once; beyond this depth the pattern does not match,
/// so an abusive pattern cannot exhaust the stack (Redis 7.0 has no such
/// cap; patterns that need it are pathological).
const MAX_NESTING: usize = 1000;

/// [`glob_match`], ignoring ASCII case when `nocase` (as Redis's
/// `stringmatchlen(..., nocase=1)` for CONFIG GET and COMMAND LIST FILTERBY
/// PATTERN).
pub fn matches(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    if nocase {
        glob_match(&pattern.to_ascii_lowercase(), &text.to_ascii_lowercase())
    } else {
        glob_match(pattern, text)
    }
}

/// True if `text` matches the glob `pattern`, exactly as Redis decides.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, text, &mut skip_longer, 0)
}

/// The byte at `i`, or the NUL terminator C would read past the end.
fn at(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i).copied().unwrap_or(0)
}

/// A byte as C's signed `char` promoted to `int`.
fn signed(b: u8) -> i32 {
    i32::from(b as i8)
}

fn match_impl(pattern: &[u8], text: &[u8], skip_longer: &mut bool, nesting: usize) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    // `p` and `s` index `pattern` and `text`; what is left is `len - index`.
    let (mut p, mut s) = (0usize, 0usize);
    while p < pattern.len() && s < text.len() {
        match at(pattern, p) {
            b'*' => {
                while p < pattern.len() && at(pattern, p + 1) == b'*' {
                    p += 1;
                }
                if pattern.len() - p == 1 {
                    return true;
                }
                while s < text.len() {
                    let rest = pattern.get(p + 1..).unwrap_or_default();
                    let tail = text.get(s..).unwrap_or_default();
                    if match_impl(rest, tail, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                }
                // No place in the text lets the rest of the pattern match:
                // longer matches of earlier stars cannot help either.
                *skip_longer = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let negate = at(pattern, p) == b'^';
                if negate {
                    p += 1;
                }
                let c = at(text, s);
                let mut matched = false;
                loop {
                    let left = pattern.len().saturating_sub(p);
                    let here = at(pattern, p);
                    if here == b'\\' && left >= 2 {
                        p += 1;
                        if at(pattern, p) == c {
                            matched = true;
                        }
                    } else if here == b']' {
                        break;
                    } else if left == 0 {
                        p -= 1;
                        break;
                    } else if left >= 3 && at(pattern, p + 1) == b'-' {
                        let (mut start, mut end) = (signed(here), signed(at(pattern, p + 2)));
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        p += 2;
                        if (start..=end).contains(&signed(c)) {
                            matched = true;
                        }
                    } else if here == c {
                        matched = true;
                    }
                    p += 1;
                }
                if negate {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s += 1;
            }
            first => {
                let literal = if first == b'\\' && pattern.len() - p >= 2 {
                    p += 1;
                    at(pattern, p)
                } else {
                    first
                };
                if literal != at(text, s) {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == text.len() {
            while at(pattern, p) == b'*' && p < pattern.len() {
                p += 1;
            }
            break;
        }
    }
    p >= pattern.len() && s == text.len()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    fn m(pattern: &str, text: &str) -> bool {
        glob_match(pattern.as_bytes(), text.as_bytes())
    }

    #[test]
    fn stars_and_question_marks() {
        // Redis's quirk: nothing matches the empty string but an empty
        // pattern (KEYS and SCAN special-case a lone `*`).
        assert!(!m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("a**", "a"));
        assert!(m("user:*", "user:1000"));
        assert!(!m("user:*", "use"));
        assert!(!m("", "a"));
        assert!(m("", ""));
        assert!(!m("?", ""));
    }

    #[test]
    fn classes_and_ranges() {
        assert!(m("h[ae]llo", "hello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("[z-a]", "m"), "reversed ranges work");
        assert!(m("[\\]]", "]"));
        // `a-]` is a range up to `]`, and the class runs on to the end.
        assert!(m("[a-]x", "]"));
        assert!(!m("[a-]x", "]x"));
    }

    #[test]
    fn escapes() {
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("a\\?", "a?"));
        assert!(!m("a\\?", "ab"));
        assert!(m("\\", "\\"), "a trailing backslash is literal");
    }

    #[test]
    fn malformed_patterns_behave_like_redis() {
        // An unterminated class ends with the pattern.
        assert!(m("[abc", "a"));
        assert!(!m("[abc", "d"));
        // `[` alone matches nothing; `[^` alone matches any one byte.
        assert!(!m("[", "a"));
        assert!(m("[^", "a"));
    }

    #[test]
    fn abusive_patterns_end_quickly() {
        let pattern = "a*".repeat(40) + "b";
        let text = "a".repeat(60);
        assert!(!m(&pattern, &text));
        let deep = "*a".repeat(5000);
        assert!(!m(&deep, &"a".repeat(4000)));
    }
}
