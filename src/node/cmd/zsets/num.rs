//! Numbers the way Redis 7.0 reads and writes them for sorted sets: C's
//! `strtod` underneath scores and range bounds (each with its own checks on
//! top), and `%.17g` for scores in replies. Blocking timeouts are read by
//! `lists::parse_timeout`.

use bytes::BytesMut;

use crate::resp::encode;

/// What C's `strtod` makes of the start of a string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Strtod {
    pub value: f64,
    /// Bytes consumed; 0 when nothing could be converted.
    pub len: usize,
    /// A finite literal too large for a double (`errno == ERANGE`, ±HUGE_VAL).
    pub overflow: bool,
    /// A non-zero literal too small for a double (`errno == ERANGE`, 0).
    pub underflow: bool,
}

const NOTHING: Strtod = Strtod {
    value: 0.0,
    len: 0,
    overflow: false,
    underflow: false,
};

/// C's `isspace` in the "C" locale.
pub fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The bytes before the first NUL: what a C function reading the string
/// sees.
pub fn c_str(bytes: &[u8]) -> &[u8] {
    match memchr::memchr(0, bytes) {
        Some(end) => bytes.get(..end).unwrap_or_default(),
        None => bytes,
    }
}

fn starts_with_ignore_case(text: &[u8], word: &[u8]) -> bool {
    text.get(..word.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(word))
}

/// C's `strtod`: leading white space, a sign, then a decimal or
/// hexadecimal number, `inf`, `infinity` or `nan`; the longest such prefix.
pub fn strtod(text: &[u8]) -> Strtod {
    let mut i = text.iter().take_while(|&&b| is_c_space(b)).count();
    let negative = match text.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let sign = if negative { -1.0 } else { 1.0 };
    let rest = text.get(i..).unwrap_or_default();
    if starts_with_ignore_case(rest, b"inf") {
        let n = if starts_with_ignore_case(rest, b"infinity") {
            8
        } else {
            3
        };
        return Strtod {
            value: sign * f64::INFINITY,
            len: i + n,
            ..NOTHING
        };
    }
    if starts_with_ignore_case(rest, b"nan") {
        let mut n = 3;
        if rest.get(3) == Some(&b'(') {
            let inner = rest
                .get(4..)
                .unwrap_or_default()
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            if rest.get(4 + inner) == Some(&b')') {
                n = 4 + inner + 1;
            }
        }
        return Strtod {
            value: f64::NAN,
            len: i + n,
            ..NOTHING
        };
    }
    if starts_with_ignore_case(rest, b"0x") {
        if let Some((magnitude, n)) = hex_float(rest.get(2..).unwrap_or_default()) {
            return Strtod {
                value: sign * magnitude,
                len: i + 2 + n,
                overflow: magnitude.is_infinite(),
                underflow: false,
            };
        }
    }
    match decimal(rest) {
        Some((magnitude, n, nonzero)) => Strtod {
            value: sign * magnitude,
            len: i + n,
            overflow: magnitude.is_infinite(),
            underflow: magnitude == 0.0 && nonzero,
        },
        None => NOTHING,
    }
}

/// A decimal number at the start of `text`: (magnitude, bytes, whether any
/// mantissa digit is non-zero).
fn decimal(text: &[u8]) -> Option<(f64, usize, bool)> {
    let digits = |from: usize| {
        text.get(from..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let int_len = digits(0);
    let mut end = int_len;
    let mut frac_len = 0;
    if text.get(end) == Some(&b'.') {
        frac_len = digits(end + 1);
        end += 1 + frac_len;
    }
    if int_len + frac_len == 0 {
        return None;
    }
    let int_part = text.get(..int_len).unwrap_or_default();
    let frac_part = text
        .get(int_len + 1..int_len + 1 + frac_len)
        .unwrap_or_default();
    let nonzero = int_part.iter().chain(frac_part).any(|&b| b != b'0');
    if matches!(text.get(end), Some(b'e' | b'E')) {
        let sign_len = usize::from(matches!(text.get(end + 1), Some(b'+' | b'-')));
        let exp_digits = digits(end + 1 + sign_len);
        if exp_digits > 0 {
            end += 1 + sign_len + exp_digits;
        }
    }
    // Rust's parser takes C's decimal forms (`1.`, `.5`, `1.e5`) and rounds
    // correctly, as glibc does.
    let magnitude = std::str::from_utf8(text.get(..end).unwrap_or_default())
        .ok()
        .and_then(|literal| literal.parse::<f64>().ok())
        .unwrap_or(0.0);
    Some((magnitude, end, nonzero))
}

/// A hexadecimal float after its `0x`: (magnitude, bytes), or None when no
/// hex digit follows (then `strtod` reads just the `0`).
fn hex_float(text: &[u8]) -> Option<(f64, usize)> {
    let mut mantissa: u64 = 0;
    let mut exp2: i64 = 0;
    let mut any = false;
    let mut i = 0;
    let mut seen_point = false;
    loop {
        match text.get(i) {
            Some(&b) if b.is_ascii_hexdigit() => {
                let d = u64::from(char::from(b).to_digit(16).unwrap_or(0));
                if mantissa < (1 << 59) {
                    mantissa = mantissa * 16 + d;
                    if seen_point {
                        exp2 -= 4;
                    }
                } else if !seen_point {
                    exp2 += 4;
                }
                any = true;
            }
            Some(b'.') if !seen_point => seen_point = true,
            _ => break,
        }
        i += 1;
    }
    if !any {
        return None;
    }
    if matches!(text.get(i), Some(b'p' | b'P')) {
        let mut j = i + 1;
        let negative = match text.get(j) {
            Some(b'-') => {
                j += 1;
                true
            }
            Some(b'+') => {
                j += 1;
                false
            }
            _ => false,
        };
        let start = j;
        let mut e: i64 = 0;
        while let Some(&b) = text.get(j).filter(|b| b.is_ascii_digit()) {
            e = e.saturating_mul(10).saturating_add(i64::from(b - b'0'));
            j += 1;
        }
        if j > start {
            exp2 = exp2.saturating_add(if negative { -e } else { e });
            i = j;
        }
    }
    Some((scale_by_power_of_two(mantissa as f64, exp2), i))
}

fn scale_by_power_of_two(mut x: f64, mut e: i64) -> f64 {
    while e > 1000 && x.is_finite() && x != 0.0 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 && x != 0.0 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e.clamp(-1100, 1100) as i32)
}

/// A score, increment or weight as `getDoubleFromObject` reads it: the
/// whole argument, no leading space, no overflow, not NaN.
pub fn parse_double(arg: &[u8]) -> Option<f64> {
    match arg.first() {
        None => return None,
        Some(&b) if is_c_space(b) => return None,
        Some(_) => {}
    }
    let r = strtod(arg);
    (r.len == arg.len() && !r.overflow && !r.underflow && !r.value.is_nan()).then_some(r.value)
}

/// A score bound of ZRANGEBYSCORE and friends as `zslParseRange` reads
/// it (after any `(`): plain `strtod` over the C string, not NaN; an
/// empty bound reads as 0.
pub fn parse_bound(arg: &[u8]) -> Option<f64> {
    let text = c_str(arg);
    let r = strtod(text);
    (r.len == text.len() && !r.value.is_nan()).then_some(r.value)
}

/// A score as Redis 7.0 writes it: `printf("%.17g")`, with `inf`/`-inf`.
/// So `1.1` is `1.1000000000000001`, `3` is `3`, `1e17` is `1e+17`.
pub fn format_score(value: f64) -> String {
    // Whole numbers below 1e17 print whole under %.17g: the common case,
    // without the digit juggling.
    if value.trunc() == value && value.abs() < 1e17 && value != 0.0 {
        return format!("{}", value as i64);
    }
    crate::node::float::fmt_g17(value)
}

/// A score as a listpack stores it (Redis's `d2string`), which ZSCAN of a
/// small set shows: whole numbers up to 2^62 in full (`1e17` is
/// `100000000000000000`), others as [`format_score`].
pub fn format_stored_score(value: f64) -> String {
    const LIMIT: f64 = (i64::MAX / 2) as f64;
    if value.trunc() == value && (-LIMIT..=LIMIT).contains(&value) && value != 0.0 {
        return format!("{}", value as i64);
    }
    format_score(value)
}

/// Appends a score as a bulk string.
pub fn bulk_score(out: &mut BytesMut, value: f64) {
    encode::bulk(out, format_score(value).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_print_like_redis_7_0() {
        // Taken from redis-server 7.0.15's ZRANGE ... WITHSCORES.
        let cases = [
            (1.1, "1.1000000000000001"),
            (3.0, "3"),
            (1e20, "1e+20"),
            (1.5e-7, "1.4999999999999999e-07"),
            (0.1, "0.10000000000000001"),
            (0.3, "0.29999999999999999"),
            (100.0, "100"),
            (1e-5, "1.0000000000000001e-05"),
            (12345.678, "12345.678"),
            (1e15, "1000000000000000"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (2.5e-300, "2.5e-300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (-0.0, "-0"),
            (0.0, "0"),
            (4503599627370497.0, "4503599627370497"),
            (-2.5, "-2.5"),
            (0.0001, "0.0001"),
        ];
        for (value, text) in cases {
            assert_eq!(format_score(value), text, "{value:e}");
        }
    }

    #[test]
    fn stored_scores_print_whole_numbers_in_full() {
        assert_eq!(format_stored_score(1e17), "100000000000000000");
        assert_eq!(
            format_stored_score(123456789012345678.0),
            "123456789012345680"
        );
        assert_eq!(format_stored_score(4e18), "4000000000000000000");
        assert_eq!(format_stored_score(1e19), "1e+19");
        assert_eq!(format_stored_score(1.5), "1.5");
        assert_eq!(format_stored_score(f64::INFINITY), "inf");
    }

    #[test]
    fn strtod_reads_the_longest_number_prefix() {
        let r = strtod(b"  -1.5e3xyz");
        assert_eq!((r.value, r.len), (-1500.0, 8));
        assert_eq!(strtod(b"1e").len, 1);
        assert_eq!(strtod(b"1e+").len, 1);
        assert_eq!(strtod(b".5").value, 0.5);
        assert_eq!(strtod(b"5.").value, 5.0);
        assert_eq!(strtod(b".").len, 0);
        assert_eq!(strtod(b"0x10").value, 16.0);
        assert_eq!(strtod(b"0x1.8p1").value, 3.0);
        assert_eq!(strtod(b"0x").len, 1);
        assert_eq!(strtod(b"-Infinity").value, f64::NEG_INFINITY);
        assert_eq!(strtod(b"infin").len, 3);
        assert!(strtod(b"nan(abc)").value.is_nan());
        assert_eq!(strtod(b"nan(abc)").len, 8);
        assert!(strtod(b"1e400").overflow);
        assert!(strtod(b"1e-400").underflow);
        assert!(!strtod(b"0e-400").underflow);
        assert_eq!(strtod(b"abc").len, 0);
    }

    #[test]
    fn doubles_bounds_and_timeouts_have_their_own_rules() {
        assert_eq!(parse_double(b"1.5"), Some(1.5));
        assert_eq!(parse_double(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_double(b" 1"), None);
        assert_eq!(parse_double(b"1 "), None);
        assert_eq!(parse_double(b""), None);
        assert_eq!(parse_double(b"nan"), None);
        assert_eq!(parse_double(b"1e400"), None);
        assert_eq!(parse_double(b"1e-400"), None);
        assert_eq!(parse_double(b"0x10"), Some(16.0));
        assert_eq!(parse_bound(b""), Some(0.0));
        assert_eq!(parse_bound(b" 1"), Some(1.0));
        assert_eq!(parse_bound(b"1 "), None);
        assert_eq!(parse_bound(b"1e400"), Some(f64::INFINITY));
        assert_eq!(parse_bound(b"nan"), None);
    }
}
