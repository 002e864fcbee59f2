//! The x87 80-bit "long double" that Redis on x86-64 uses for INCRBYFLOAT
//! and HINCRBYFLOAT, in software: parsed as `strtold` does (decimal, hex,
//! `inf`), added with one rounding to a 64-bit mantissa, and printed as
//! `"%.17Lf"` with trailing zeros removed (Redis's `ld2string`, human
//! mode). With f64 instead, `0.1 + 0.2` would print `0.30000000000000004`
//! where Redis prints `0.3`, and `100000.1` would lose the digits Redis
//! shows (`100000.10000000000000142`).

use std::cmp::Ordering;

/// Redis refuses longer numbers (`MAX_LONG_DOUBLE_CHARS`).
const MAX_CHARS: usize = 5 * 1024;
/// value = mant * 2^exp; a normal number has the top mantissa bit set.
const MIN_EXP: i32 = 1 - 16383 - 63;
const MAX_EXP: i32 = 32766 - 16383 - 63;
/// Decimal magnitudes beyond which a parse surely overflows or
/// underflows (the range is about 3.6e-4951 to 1.2e4932).
const DEC_MAX: i64 = 4934;
const DEC_MIN: i64 = -4952;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongDouble {
    /// `mant * 2^exp` (`mant == 0` is zero).
    Finite {
        neg: bool,
        mant: u64,
        exp: i32,
    },
    Inf {
        neg: bool,
    },
    Nan,
}

impl LongDouble {
    pub const ZERO: LongDouble = LongDouble::Finite {
        neg: false,
        mant: 0,
        exp: 0,
    };

    pub fn is_finite(&self) -> bool {
        matches!(self, LongDouble::Finite { .. })
    }

    /// Parses `text` as Redis's `string2ld`: no surrounding spaces, no
    /// trailing bytes, NaN refused, and a result that overflows to
    /// infinity or underflows to zero refused (strtold's ERANGE). A plain
    /// `inf` is accepted.
    pub fn parse(text: &[u8]) -> Option<LongDouble> {
        if text.is_empty() || text.len() >= MAX_CHARS {
            return None;
        }
        let (neg, rest) = match text {
            [b'-', rest @ ..] => (true, rest),
            [b'+', rest @ ..] => (false, rest),
            _ => (false, text),
        };
        if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
            return Some(LongDouble::Inf { neg });
        }
        match rest {
            [b'0', b'x' | b'X', hex @ ..] => parse_hex(neg, hex),
            _ => parse_decimal(neg, rest),
        }
    }

    /// `self + other`, rounded once to nearest-even, as the FPU does.
    pub fn plus(self, other: LongDouble) -> LongDouble {
        use LongDouble::{Finite, Inf, Nan};
        match (self, other) {
            (Nan, _) | (_, Nan) => Nan,
            (Inf { neg: a }, Inf { neg: b }) if a != b => Nan,
            (Inf { neg }, _) | (_, Inf { neg }) => Inf { neg },
            (
                Finite {
                    neg: an,
                    mant: am,
                    exp: ae,
                },
                Finite {
                    neg: bn,
                    mant: bm,
                    exp: be,
                },
            ) => {
                if am == 0 && bm == 0 {
                    return Finite {
                        neg: an && bn,
                        mant: 0,
                        exp: 0,
                    };
                }
                if am == 0 {
                    return other;
                }
                if bm == 0 {
                    return self;
                }
                // Align on the larger exponent with 62 guard bits; bits
                // shifted out of the smaller one fold into a sticky LSB.
                let ((an, am, ae), (bn, bm, be)) = if ae >= be {
                    ((an, am, ae), (bn, bm, be))
                } else {
                    ((bn, bm, be), (an, am, ae))
                };
                let a = u128::from(am) << 62;
                let b = shift_right_sticky(u128::from(bm) << 62, ae.abs_diff(be));
                let (neg, sum) = if an == bn {
                    (an, a + b)
                } else if a >= b {
                    (an, a - b)
                } else {
                    (bn, b - a)
                };
                if sum == 0 {
                    return LongDouble::ZERO;
                }
                round(neg, sum, false, ae - 62)
            }
        }
    }

    /// `(long long) ceill(self * 1000)`, as Redis turns a blocking
    /// command's timeout in seconds into milliseconds. `None` where the C
    /// conversion overflows (on x86-64 that gives `LLONG_MIN`, a negative
    /// timeout), infinities included.
    pub fn ceil_millis(&self) -> Option<i64> {
        let LongDouble::Finite { neg, mant, exp } = *self else {
            return None;
        };
        if mant == 0 {
            return Some(0);
        }
        // The product is rounded to a long double before the ceiling.
        let LongDouble::Finite { neg, mant, exp } = round(neg, u128::from(mant) * 1000, false, exp)
        else {
            return None;
        };
        let (int, frac) = if exp >= 0 {
            if exp >= 64 {
                return None;
            }
            (u128::from(mant) << exp, false)
        } else if exp <= -128 {
            (0, true)
        } else {
            let k = exp.unsigned_abs();
            (
                u128::from(mant) >> k,
                u128::from(mant) & ((1u128 << k) - 1) != 0,
            )
        };
        if neg {
            i64::try_from(int).ok().map(|v| -v)
        } else {
            i64::try_from(int + u128::from(frac)).ok()
        }
    }

    /// `"%.17Lf"` without trailing zeros (and `-0` as `0`), as Redis
    /// prints a long double for humans. `None` unless finite.
    pub fn to_human_string(&self) -> Option<String> {
        /// 10^17: 2^64 * 10^17 < 2^121, so no product below overflows.
        const SCALE: u128 = 100_000_000_000_000_000;
        let LongDouble::Finite { neg, mant, exp } = *self else {
            return None;
        };
        let mut text = String::new();
        if neg {
            text.push('-');
        }
        if exp >= 0 {
            let mut n = Big::from_u128(u128::from(mant));
            n.shl(exp.unsigned_abs());
            text.push_str(&n.to_decimal());
        } else {
            let k = exp.unsigned_abs();
            let (int, frac) = if k >= 64 {
                (0u128, u128::from(mant))
            } else {
                (u128::from(mant >> k), u128::from(mant) & ((1u128 << k) - 1))
            };
            let scaled = frac * SCALE;
            let mut q = if k >= 128 { 0 } else { scaled >> k };
            if k < 128 {
                // Round half to even, as glibc's printf does.
                let rem = scaled & ((1u128 << k) - 1);
                let half = 1u128 << (k - 1);
                if rem > half || (rem == half && q & 1 == 1) {
                    q += 1;
                }
            }
            let int = if q == SCALE {
                q = 0;
                int + 1
            } else {
                int
            };
            text.push_str(&format!("{int}.{q:017}"));
            while text.ends_with('0') {
                text.pop();
            }
            if text.ends_with('.') {
                text.pop();
            }
        }
        if text == "-0" {
            text = "0".into();
        }
        Some(text)
    }
}

/// `x >> by`, with a 1 in the lowest bit if any bit shifted out was set.
fn shift_right_sticky(x: u128, by: u32) -> u128 {
    if by == 0 {
        x
    } else if by >= 128 {
        u128::from(x != 0)
    } else {
        (x >> by) | u128::from(x & ((1u128 << by) - 1) != 0)
    }
}

/// Rounds `(m + s) * 2^e` to a long double, where `s` is in (0, 1) when
/// `sticky`, else 0. Callers pass at least 66 significant bits in `m`
/// whenever `sticky` is set.
fn round(neg: bool, m: u128, sticky: bool, e: i32) -> LongDouble {
    if m == 0 {
        return LongDouble::Finite {
            neg,
            mant: 0,
            exp: 0,
        };
    }
    let bits = 128 - m.leading_zeros() as i32;
    let mut shift = bits - 64;
    let mut exp = e.saturating_add(shift);
    if exp < MIN_EXP {
        // Subnormal: fewer mantissa bits.
        shift = shift.saturating_add(MIN_EXP - exp);
        exp = MIN_EXP;
    }
    let mant: u128 = if shift <= 0 {
        m << shift.unsigned_abs()
    } else if shift > 128 {
        0
    } else {
        let shift = shift.unsigned_abs();
        let (kept, dropped) = if shift == 128 {
            (0, m)
        } else {
            (m >> shift, m & ((1u128 << shift) - 1))
        };
        let half = 1u128 << (shift - 1);
        let up = dropped > half || (dropped == half && (sticky || kept & 1 == 1));
        kept + u128::from(up)
    };
    let (mant, exp) = if mant >> 64 != 0 {
        (mant >> 1, exp + 1)
    } else {
        (mant, exp)
    };
    if exp > MAX_EXP {
        return LongDouble::Inf { neg };
    }
    LongDouble::Finite {
        neg,
        mant: mant as u64,
        exp: if mant == 0 { 0 } else { exp },
    }
}

/// Digits of one base with an optional point; `None` without any digit.
/// Returns (digit values without leading zeros, digits after the point,
/// bytes consumed).
fn scan_digits(text: &[u8], radix: u32) -> Option<(Vec<u8>, usize, usize)> {
    let mut digits = Vec::new();
    let mut after_point = 0;
    let mut seen_point = false;
    let mut any = false;
    let mut used = 0;
    for &c in text {
        if c == b'.' && !seen_point {
            seen_point = true;
        } else if let Some(d) = char::from(c).to_digit(radix) {
            any = true;
            if !(digits.is_empty() && d == 0) {
                digits.push(d as u8);
            }
            if seen_point {
                after_point += 1;
            }
        } else {
            break;
        }
        used += 1;
    }
    any.then_some((digits, after_point, used))
}

/// An exponent `[+-]digits` filling all of `text`, saturated far beyond
/// any value that matters.
fn parse_exponent(text: &[u8]) -> Option<i64> {
    let (neg, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        n = (n * 10 + i64::from(d - b'0')).min(1 << 40);
    }
    Some(if neg { -n } else { n })
}

fn parse_decimal(neg: bool, text: &[u8]) -> Option<LongDouble> {
    let (digits, after_point, used) = scan_digits(text, 10)?;
    let exp10 = match text.get(used..).unwrap_or_default() {
        [] => 0,
        [b'e' | b'E', exp @ ..] => parse_exponent(exp)?,
        _ => return None,
    };
    if digits.is_empty() {
        return Some(LongDouble::Finite {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    let exp10 = exp10 - after_point as i64;
    let magnitude = digits.len() as i64 + exp10;
    if !(DEC_MIN..=DEC_MAX).contains(&magnitude) {
        return None;
    }
    let mut n = Big::default();
    for chunk in digits.chunks(9) {
        let value = chunk.iter().fold(0u32, |v, &d| v * 10 + u32::from(d));
        n.mul_add(10u32.pow(chunk.len() as u32), value);
    }
    let (m, sticky, e) = if exp10 >= 0 {
        for _ in 0..exp10 {
            n.mul_add(10, 0);
        }
        n.top_bits()
    } else {
        let mut d = Big::from_u128(1);
        for _ in 0..exp10.unsigned_abs() {
            d.mul_add(10, 0);
        }
        Big::divide_top(n, &d)
    };
    finite_nonzero(round(neg, m, sticky, e))
}

/// `0x` hex digits `[.hex]` `[p exp]`, as strtold reads them.
fn parse_hex(neg: bool, text: &[u8]) -> Option<LongDouble> {
    let (digits, after_point, used) = scan_digits(text, 16)?;
    let exp2 = match text.get(used..).unwrap_or_default() {
        [] => 0,
        [b'p' | b'P', exp @ ..] => parse_exponent(exp)?,
        _ => return None,
    };
    if digits.is_empty() {
        return Some(LongDouble::Finite {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    let exp2 = exp2 - 4 * after_point as i64;
    let bits = 4 * digits.len() as i64 + exp2;
    if bits > i64::from(MAX_EXP) + 128 || bits < i64::from(MIN_EXP) - 64 {
        return None;
    }
    let mut n = Big::default();
    for &d in &digits {
        n.mul_add(16, u32::from(d));
    }
    let (m, sticky, e) = n.top_bits();
    let e = i32::try_from(i64::from(e) + exp2).ok()?;
    finite_nonzero(round(neg, m, sticky, e))
}

/// strtold's ERANGE cases fail in `string2ld`: overflow and total
/// underflow.
fn finite_nonzero(value: LongDouble) -> Option<LongDouble> {
    match value {
        LongDouble::Finite { mant, .. } if mant != 0 => Some(value),
        _ => None,
    }
}

/// A small unsigned big integer, little-endian base 2^32: enough for exact
/// conversions between decimal text and binary floats.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u128(mut v: u128) -> Big {
        let mut words = Vec::new();
        while v != 0 {
            words.push(v as u32);
            v >>= 32;
        }
        Big(words)
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn bit_len(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(&top) => self.0.len() as u64 * 32 - u64::from(top.leading_zeros()),
        }
    }

    fn bit(&self, i: u64) -> bool {
        let word = usize::try_from(i / 32).unwrap_or(usize::MAX);
        self.0.get(word).is_some_and(|w| (w >> (i % 32)) & 1 == 1)
    }

    /// `self = self * mul + add`.
    fn mul_add(&mut self, mul: u32, add: u32) {
        let mut carry = u64::from(add);
        for w in &mut self.0 {
            let v = u64::from(*w) * u64::from(mul) + carry;
            *w = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    fn shl(&mut self, by: u32) {
        if self.0.is_empty() {
            return;
        }
        let words = (by / 32) as usize;
        let bits = by % 32;
        if bits != 0 {
            let mut carry = 0u32;
            for w in &mut self.0 {
                let v = (*w << bits) | carry;
                carry = *w >> (32 - bits);
                *w = v;
            }
            if carry != 0 {
                self.0.push(carry);
            }
        }
        if words != 0 {
            self.0.splice(0..0, std::iter::repeat_n(0, words));
        }
    }

    /// `self >>= by`; true if a set bit was shifted out.
    fn shr(&mut self, by: u64) -> bool {
        let words = usize::try_from(by / 32).unwrap_or(usize::MAX);
        if words >= self.0.len() {
            let lost = self.0.iter().any(|&w| w != 0);
            self.0.clear();
            return lost;
        }
        let bits = (by % 32) as u32;
        let mut lost = self.0.iter().take(words).any(|&w| w != 0);
        self.0.drain(..words);
        if bits != 0 {
            lost |= self.0.first().is_some_and(|&w| w & ((1 << bits) - 1) != 0);
            for i in 0..self.0.len() {
                let high = self.0.get(i + 1).copied().unwrap_or(0);
                if let Some(w) = self.0.get_mut(i) {
                    *w = (*w >> bits) | (high << (32 - bits));
                }
            }
        }
        self.trim();
        lost
    }

    fn cmp_big(&self, other: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    /// `self -= other`, with `self >= other`.
    fn sub_assign(&mut self, other: &Big) {
        let mut borrow = 0i64;
        for (i, w) in self.0.iter_mut().enumerate() {
            let o = i64::from(other.0.get(i).copied().unwrap_or(0));
            let mut v = i64::from(*w) - o - borrow;
            borrow = 0;
            if v < 0 {
                v += 1 << 32;
                borrow = 1;
            }
            *w = v as u32;
        }
        self.trim();
    }

    /// The top 128 bits (all of them when fewer), whether any bit below
    /// them is set, and the power of two of their lowest bit.
    fn top_bits(&self) -> (u128, bool, i32) {
        let len = self.bit_len();
        let drop = len.saturating_sub(128);
        let mut top = 0u128;
        for i in (drop..len).rev() {
            top = (top << 1) | u128::from(self.bit(i));
        }
        let sticky = (0..drop).any(|i| self.bit(i));
        (top, sticky, i32::try_from(drop).unwrap_or(i32::MAX))
    }

    /// The top bits of `n / d` (126 or 127 of them), whether the exact
    /// quotient has more below them, and the power of two of their lowest
    /// bit. `n` is scaled first, so the work is the same for any size of
    /// quotient.
    fn divide_top(mut n: Big, d: &Big) -> (u128, bool, i32) {
        let scale = (d.bit_len() as i64 + 126) - n.bit_len() as i64;
        let mut sticky = false;
        if scale > 0 {
            n.shl(u32::try_from(scale).unwrap_or(u32::MAX));
        } else {
            sticky = n.shr(scale.unsigned_abs());
        }
        // Binary long division; the quotient is below 2^127.
        let mut shifted = d.clone();
        shifted.shl(127);
        let mut q = 0u128;
        for _ in 0..128 {
            q <<= 1;
            if n.cmp_big(&shifted) != Ordering::Less {
                n.sub_assign(&shifted);
                q |= 1;
            }
            shifted.shr(1);
        }
        sticky |= !n.0.is_empty();
        (q, sticky, i32::try_from(-scale).unwrap_or(i32::MIN))
    }

    fn to_decimal(&self) -> String {
        let mut words = self.0.clone();
        let mut chunks = Vec::new();
        while !words.is_empty() {
            let mut rem = 0u64;
            for w in words.iter_mut().rev() {
                let v = (rem << 32) | u64::from(*w);
                *w = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            while words.last() == Some(&0) {
                words.pop();
            }
            chunks.push(rem);
        }
        let mut text = chunks
            .pop()
            .map_or_else(|| "0".to_string(), |c| c.to_string());
        for chunk in chunks.iter().rev() {
            text.push_str(&format!("{chunk:09}"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(a: &str, b: &str) -> String {
        let a = LongDouble::parse(a.as_bytes()).unwrap_or(LongDouble::Nan);
        let b = LongDouble::parse(b.as_bytes()).unwrap_or(LongDouble::Nan);
        a.plus(b).to_human_string().unwrap_or_default()
    }

    fn show(a: &str) -> String {
        LongDouble::parse(a.as_bytes())
            .and_then(|v| v.to_human_string())
            .unwrap_or_else(|| "invalid".into())
    }

    #[test]
    fn prints_as_redis_on_x86_64() {
        // Each expectation is what redis-server 7.0 answers.
        assert_eq!(sum("0.1", "0.2"), "0.3");
        assert_eq!(show("100000.1"), "100000.10000000000000142");
        assert_eq!(sum("100000.1", "0.2"), "100000.30000000000000426");
        assert_eq!(sum("10.5", "0.1"), "10.6");
        assert_eq!(show("1e20"), "100000000000000000000");
        assert_eq!(sum("1e20", "1.5"), "100000000000000000000");
        assert_eq!(show("3.0e3"), "3000");
        assert_eq!(show("1.23456789012345678901"), "1.23456789012345679");
        assert_eq!(show("5e-20"), "0");
        assert_eq!(show("-0.0"), "0");
        assert_eq!(show("0x10"), "16");
        assert_eq!(sum("17179869184", "2.5"), "17179869186.5");
        assert_eq!(
            show("1e308"),
            "99999999999999999996685879655845645660560099847415567207797047994921734868838061872100\
             126921888539320446747225054013223152134749593960583597420814430196418767959100019603190\
             778663109604507106667939153395788938914560543563061268364901618630217086589253444881623\
             791300855757318142424510452728255046343928578048"
        );
        assert_eq!(
            sum("1e308", "1e308"),
            "19999999999999999999337175931169129132112019969483113441559409598984346973767612374420\
             025384377707864089349445010802644630426949918792116719484162886039283753591820003920638\
             155732621920901421333587830679157787782912108712612253672980323726043417317850688976324\
             7582601711514636284849020905456510092687857156096"
        );
        let big = show("1e4000");
        assert!(big.starts_with("99999999999999999999654638730996237849324925835"));
        assert_eq!(big.len(), 4000);
    }

    #[test]
    fn parses_as_string2ld() {
        for bad in [
            "", " 1", "1 ", "nan", "-nan", "1e", "1e+", "abc", "0x", "1e5000", "1e-5000", ".",
            "--1", "1.2.3",
        ] {
            assert_eq!(LongDouble::parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(show("+1.5"), "1.5");
        assert_eq!(show(".5"), "0.5");
        assert_eq!(show("5."), "5");
        assert_eq!(show("-2.25"), "-2.25");
        assert_eq!(show("0x1.8p1"), "3");
        assert_eq!(show("0.000"), "0");
        assert_eq!(
            LongDouble::parse(b"inf"),
            Some(LongDouble::Inf { neg: false })
        );
        assert_eq!(
            LongDouble::parse(b"-Infinity"),
            Some(LongDouble::Inf { neg: true })
        );
    }

    #[test]
    fn timeouts_in_millis_as_redis() {
        let ms = |t: &str| LongDouble::parse(t.as_bytes()).and_then(|v| v.ceil_millis());
        assert_eq!(ms("0"), Some(0));
        assert_eq!(ms("1.5"), Some(1500));
        assert_eq!(ms("0.0001"), Some(1));
        assert_eq!(ms("1e-400"), Some(1));
        assert_eq!(ms("-0.0001"), Some(0));
        assert_eq!(ms("0.001"), Some(1));
        assert_eq!(ms("-1"), Some(-1000));
        assert_eq!(ms("0x10p-10"), Some(16));
        assert_eq!(ms("9223372036854775"), Some(9_223_372_036_854_775_000));
        assert_eq!(ms("1e16"), None);
        assert_eq!(ms("inf"), None);
    }

    #[test]
    fn adds_with_one_rounding() {
        assert_eq!(sum("1", "-1"), "0");
        assert_eq!(sum("-5", "2"), "-3");
        assert_eq!(sum("0", "-0.5"), "-0.5");
        assert_eq!(sum("1e-30", "1"), "1");
        let huge = LongDouble::parse(b"1e4932").unwrap_or(LongDouble::Nan);
        assert!(!huge.plus(huge).is_finite());
        let inf = LongDouble::Inf { neg: false };
        assert_eq!(inf.plus(LongDouble::Inf { neg: true }), LongDouble::Nan);
    }
}
