//! Floating point the way Redis 7.0 prints and computes it.
//!
//! * [`fmt_g17`]: a `double` as `printf("%.17g")`, which Redis 7.0 uses for
//!   every double reply (ZSCORE `1.1` answers `1.1000000000000001`).
//! * [`LongDouble`]: the x87 80-bit `long double` that INCRBYFLOAT and
//!   HINCRBYFLOAT compute with (`strtold`, `+`, `printf("%.17Lf")` with the
//!   trailing zeros cut), and that blocking commands read their timeout
//!   as (`ceill(seconds * 1000)`). `f64` cannot stand in for it: Redis
//!   answers `0.3` to `0.1 + 0.2` and `1000.09999999999999998` to
//!   `1000 + 0.1`. The arithmetic here is exact (big integers), rounded to
//!   64 mantissa bits half-to-even as the FPU does, so the replies are the
//!   same digit for digit.

use std::cmp::Ordering;

/// `printf("%.17g", value)`, with Redis's `inf`/`-inf`.
pub fn fmt_g17(value: f64) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.into();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // 17 significant digits, correctly rounded: `d.dddddddddddddddde<exp>`.
    let sci = format!("{value:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-4..17).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let rest = rest.trim_end_matches('0');
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!(
            "{sign}{first}{dot}{rest}e{exp_sign}{:02}",
            exp.unsigned_abs()
        );
    }
    let text = if exp >= 0 {
        let split = (exp + 1) as usize;
        let (int, frac) = digits.split_at(split.min(digits.len()));
        format!("{int}.{frac}")
    } else {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    };
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{sign}{text}")
}

/// Redis's `MAX_LONG_DOUBLE_CHARS`: longer float arguments are refused.
const MAX_LONG_DOUBLE_CHARS: usize = 5 * 1024;
/// Mantissa bits of the x87 extended format (explicit integer bit).
const MANT_BITS: u64 = 64;
/// Exponent of the mantissa's last bit for the smallest normal and every
/// subnormal number, and for the largest numbers.
const EXP_MIN: i64 = -16382 - 63;
const EXP_MAX: i64 = 16383 - 63;

/// An x87 `long double`: `±mant × 2^exp`, or zero, or infinity. NaN is
/// never held (Redis refuses it on input and as a result).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LongDouble {
    negative: bool,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Zero,
    Finite { mant: u64, exp: i64 },
    Infinite,
}

impl LongDouble {
    pub const ZERO: LongDouble = LongDouble {
        negative: false,
        kind: Kind::Zero,
    };

    /// True for ±infinity.
    pub fn is_infinite(&self) -> bool {
        self.kind == Kind::Infinite
    }

    /// Parses `text` as Redis's `string2ld` does (`strtold` on the whole
    /// argument): decimal or hex, `inf`; refuses spaces, NaN, trailing
    /// bytes, and values that overflow or underflow to zero.
    pub fn parse(text: &[u8]) -> Option<LongDouble> {
        if text.is_empty() || text.len() >= MAX_LONG_DOUBLE_CHARS {
            return None;
        }
        let (negative, body) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            Some((b'+', rest)) => (false, rest),
            _ => (false, text),
        };
        let lower = body.to_ascii_lowercase();
        if lower == b"inf" || lower == b"infinity" {
            return Some(LongDouble {
                negative,
                kind: Kind::Infinite,
            });
        }
        let parsed = match lower.strip_prefix(b"0x") {
            Some(hex) => parse_hex(hex)?,
            None => parse_decimal(&lower)?,
        };
        match parsed {
            // An exact zero is fine; a non-zero value rounding to zero or
            // infinity is ERANGE, which string2ld refuses.
            Parsed::Zero => Some(LongDouble {
                negative,
                kind: Kind::Zero,
            }),
            Parsed::Value(n, e, sticky) => match round(negative, n, e, sticky) {
                LongDouble {
                    kind: Kind::Zero | Kind::Infinite,
                    ..
                } => None,
                value => Some(value),
            },
        }
    }

    /// `self + other` rounded to the nearest `long double`; `None` for NaN
    /// (`inf + -inf`).
    pub fn checked_add(self, other: LongDouble) -> Option<LongDouble> {
        match (self.kind, other.kind) {
            (Kind::Infinite, Kind::Infinite) if self.negative != other.negative => None,
            (Kind::Infinite, _) => Some(self),
            (_, Kind::Infinite) => Some(other),
            (Kind::Zero, Kind::Zero) => Some(LongDouble {
                negative: self.negative && other.negative,
                kind: Kind::Zero,
            }),
            (Kind::Zero, _) => Some(other),
            (_, Kind::Zero) => Some(self),
            (Kind::Finite { mant: ma, exp: ea }, Kind::Finite { mant: mb, exp: eb }) => {
                let e = ea.min(eb);
                let a = Big::from_u64(ma).shl((ea - e) as usize);
                let b = Big::from_u64(mb).shl((eb - e) as usize);
                if self.negative == other.negative {
                    Some(round(self.negative, a.add(&b), e, false))
                } else {
                    match a.cmp(&b) {
                        Ordering::Equal => Some(LongDouble::ZERO),
                        Ordering::Greater => Some(round(self.negative, a.sub(&b), e, false)),
                        Ordering::Less => Some(round(other.negative, b.sub(&a), e, false)),
                    }
                }
            }
        }
    }

    /// `self + other` as INCRBYFLOAT and HINCRBYFLOAT accept it: `None`
    /// when the sum is NaN or infinite, which Redis refuses.
    pub fn finite_add(self, other: LongDouble) -> Option<LongDouble> {
        self.checked_add(other).filter(|v| !v.is_infinite())
    }

    /// `(long long) ceill(self * 1000)`, as Redis turns a blocking
    /// command's timeout in seconds into milliseconds. `None` where the C
    /// conversion overflows (on x86-64 that yields `LLONG_MIN`, a negative
    /// timeout), infinities included.
    pub fn ceil_millis(&self) -> Option<i64> {
        let (mant, exp) = match self.kind {
            Kind::Zero => return Some(0),
            Kind::Infinite => return None,
            Kind::Finite { mant, exp } => (mant, exp),
        };
        // The product is rounded to a long double before the ceiling.
        let product = round(self.negative, Big::from_u64(mant).mul_pow10(3), exp, false);
        let Kind::Finite { mant, exp } = product.kind else {
            return None;
        };
        // Integer part and whether a fraction is left. A 64-bit mantissa
        // shifted left by 64 or more is beyond any i64.
        let (int, fraction) = match u32::try_from(exp) {
            Ok(up) if up >= 64 => return None,
            Ok(up) => (u128::from(mant) << up, false),
            Err(_) => match u32::try_from(-exp) {
                Ok(down) if down < 64 => {
                    (u128::from(mant >> down), mant & ((1u64 << down) - 1) != 0)
                }
                _ => (0, true),
            },
        };
        if self.negative {
            // The ceiling of a negative value drops its fraction.
            i64::try_from(int).ok().map(|v| -v)
        } else {
            i64::try_from(int + u128::from(fraction)).ok()
        }
    }

    /// The text Redis stores for a long double (`ld2string` in
    /// `LD_STR_HUMAN` mode): `%.17Lf` with trailing zeros and a trailing
    /// `.` removed, and `-0` written `0`.
    pub fn to_human(&self) -> String {
        let mut text = match self.kind {
            Kind::Infinite => return if self.negative { "-inf" } else { "inf" }.into(),
            Kind::Zero => String::from("0.00000000000000000"),
            Kind::Finite { mant, exp } => fixed17(mant, exp),
        };
        if self.negative {
            text.insert(0, '-');
        }
        let trimmed = text.trim_end_matches('0').trim_end_matches('.');
        if trimmed == "-0" {
            "0".into()
        } else {
            trimmed.into()
        }
    }
}

/// `mant × 2^exp` printed with exactly 17 decimals, rounded half to even.
fn fixed17(mant: u64, exp: i64) -> String {
    let scaled = Big::from_u64(mant).mul_pow10(17);
    let units = if exp >= 0 {
        scaled.shl(exp as usize)
    } else {
        scaled.shr_round_even((-exp) as usize, false).0
    };
    let digits = units.to_decimal();
    let padded = if digits.len() < 18 {
        format!("{}{digits}", "0".repeat(18 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - 17);
    format!("{int}.{frac}")
}

/// Rounds `(n + sticky) × 2^e` (sticky: some non-zero bits lie below `n`'s
/// last bit) to a long double, half to even, with gradual underflow.
fn round(negative: bool, n: Big, e: i64, sticky: bool) -> LongDouble {
    if n.is_zero() {
        return LongDouble {
            negative,
            kind: Kind::Zero,
        };
    }
    let bits = n.bit_len() as i64;
    let shift = (bits - MANT_BITS as i64).max(EXP_MIN - e);
    let (mut mant, mut exp) = if shift > 0 {
        let (q, _) = n.shr_round_even(shift as usize, sticky);
        (q, e + shift)
    } else {
        (n.shl((-shift) as usize), e + shift)
    };
    if mant.bit_len() as u64 > MANT_BITS {
        mant = mant.shr_round_even(1, false).0;
        exp += 1;
    }
    if mant.is_zero() {
        return LongDouble {
            negative,
            kind: Kind::Zero,
        };
    }
    if exp > EXP_MAX {
        return LongDouble {
            negative,
            kind: Kind::Infinite,
        };
    }
    LongDouble {
        negative,
        kind: Kind::Finite {
            mant: mant.low_u64(),
            exp,
        },
    }
}

/// A parsed magnitude: zero, or `(n + sticky) × 2^e`.
enum Parsed {
    Zero,
    Value(Big, i64, bool),
}

/// Decimal exponents beyond these are certainly out of the long double
/// range (which spans about 10^-4951 to 10^4932).
const DEC_EXP_LIMIT: i64 = 5000;

/// Splits `int[.frac][<marker>[+-]digits]` (lower-cased, without sign)
/// into its mantissa digits and exponent; `None` when the mantissa has no
/// digit or the exponent is malformed. The caller checks the digits in
/// its radix.
fn split_number(text: &[u8], marker: u8) -> Option<(&[u8], &[u8], i64)> {
    let (mantissa, exponent) = match text.iter().position(|&b| b == marker) {
        Some(at) => (text.get(..at)?, Some(text.get(at + 1..)?)),
        None => (text, None),
    };
    let (int, frac) = match mantissa.iter().position(|&b| b == b'.') {
        Some(at) => (mantissa.get(..at)?, mantissa.get(at + 1..)?),
        None => (mantissa, &b""[..]),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let exponent = match exponent {
        None => 0,
        Some(e) => parse_exponent(e)?,
    };
    Some((int, frac, exponent))
}

/// `[+-]digits`, saturated: anything this large is out of range anyway.
fn parse_exponent(text: &[u8]) -> Option<i64> {
    let (neg, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        v = (v * 10 + i64::from(d - b'0')).min(1 << 40);
    }
    Some(if neg { -v } else { v })
}

/// `digits[.digits][e[+-]digits]`, lower-cased, without sign.
fn parse_decimal(text: &[u8]) -> Option<Parsed> {
    let (int, frac, exp10) = split_number(text, b'e')?;
    if !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let all = int.iter().chain(frac).copied();
    let significant: Vec<u8> = all.skip_while(|&d| d == b'0').collect();
    let exp10 = exp10 - frac.len() as i64;
    if significant.is_empty() {
        return Some(Parsed::Zero);
    }
    let magnitude = exp10 + significant.len() as i64;
    if magnitude > DEC_EXP_LIMIT {
        // Overflow: round() turns it into infinity.
        return Some(Parsed::Value(Big::from_u64(1), EXP_MAX + 64, false));
    }
    if magnitude < -DEC_EXP_LIMIT {
        return Some(Parsed::Value(Big::from_u64(1), EXP_MIN - 64, false));
    }
    let n = Big::from_decimal(&significant);
    if exp10 >= 0 {
        return Some(Parsed::Value(n.mul_pow10(exp10 as usize), 0, false));
    }
    // n / 10^k with at least 66 quotient bits, the rest as a sticky bit.
    let divisor = Big::from_u64(1).mul_pow10((-exp10) as usize);
    // Scaling the dividend up (or the divisor up) keeps the long division
    // at about 67 steps whatever the number of digits.
    let s = MANT_BITS as i64 + 3 + divisor.bit_len() as i64 - n.bit_len() as i64;
    let (q, rem_nonzero) = if s >= 0 {
        n.shl(s as usize).div(&divisor)
    } else {
        n.div(&divisor.shl((-s) as usize))
    };
    Some(Parsed::Value(q, -s, rem_nonzero))
}

/// `hexdigits[.hexdigits][p[+-]digits]` after the `0x`.
fn parse_hex(text: &[u8]) -> Option<Parsed> {
    let (int, frac, exp2) = split_number(text, b'p')?;
    let mut n = Big::from_u64(0);
    for &d in int.iter().chain(frac) {
        let v = char::from(d).to_digit(16)?;
        n = n.shl(4).add(&Big::from_u64(u64::from(v)));
    }
    if n.is_zero() {
        return Some(Parsed::Zero);
    }
    Some(Parsed::Value(n, exp2 - 4 * frac.len() as i64, false))
}

/// A small unsigned big integer (little-endian 32-bit limbs, no trailing
/// zero limbs): just what exact long double arithmetic needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn bit_len(&self) -> usize {
        match self.0.last() {
            None => 0,
            Some(top) => (self.0.len() - 1) * 32 + (32 - top.leading_zeros() as usize),
        }
    }

    fn bit(&self, i: usize) -> bool {
        self.0
            .get(i / 32)
            .is_some_and(|limb| limb >> (i % 32) & 1 == 1)
    }

    /// True if any bit below `i` is set.
    fn any_below(&self, i: usize) -> bool {
        let full = (i / 32).min(self.0.len());
        if self.0.iter().take(full).any(|&l| l != 0) {
            return true;
        }
        let part = i % 32;
        part > 0
            && self
                .0
                .get(i / 32)
                .is_some_and(|l| l & ((1u32 << part) - 1) != 0)
    }

    fn low_u64(&self) -> u64 {
        let lo = u64::from(self.0.first().copied().unwrap_or(0));
        let hi = u64::from(self.0.get(1).copied().unwrap_or(0));
        lo | hi << 32
    }

    fn from_decimal(digits: &[u8]) -> Big {
        let mut n = Big(Vec::new());
        for chunk in digits.chunks(9) {
            let mut v = 0u32;
            for &d in chunk {
                v = v * 10 + u32::from(d - b'0');
            }
            n.mul_add_small(10u32.pow(chunk.len() as u32), v);
        }
        n
    }

    fn mul_add_small(&mut self, m: u32, a: u32) {
        let mut carry = u64::from(a);
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(m) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    fn mul_pow10(mut self, k: usize) -> Big {
        let mut left = k;
        while left > 0 {
            let step = left.min(9);
            self.mul_add_small(10u32.pow(step as u32), 0);
            left -= step;
        }
        self
    }

    fn shl(&self, bits: usize) -> Big {
        if self.is_zero() {
            return self.clone();
        }
        let (limbs, part) = (bits / 32, bits % 32);
        let mut out = vec![0u32; limbs];
        out.reserve(self.0.len() + 1);
        let mut carry = 0u32;
        for &l in &self.0 {
            if part == 0 {
                out.push(l);
            } else {
                out.push(l << part | carry);
                carry = l >> (32 - part);
            }
        }
        if carry > 0 {
            out.push(carry);
        }
        Big(out)
    }

    fn shr(&self, bits: usize) -> Big {
        let (limbs, part) = (bits / 32, bits % 32);
        let src = self.0.get(limbs..).unwrap_or_default();
        let mut out = Vec::with_capacity(src.len());
        for (i, &l) in src.iter().enumerate() {
            let next = src.get(i + 1).copied().unwrap_or(0);
            out.push(if part == 0 {
                l
            } else {
                l >> part | next << (32 - part)
            });
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    /// `self >> bits` rounded half to even; `sticky` says non-zero bits lie
    /// below `self` too. Also returns whether the result is inexact.
    fn shr_round_even(&self, bits: usize, sticky: bool) -> (Big, bool) {
        if bits == 0 {
            return (self.clone(), sticky);
        }
        let q = self.shr(bits);
        let half = self.bit(bits - 1);
        let lower = sticky || self.any_below(bits - 1);
        let odd = q.bit(0);
        let q = if half && (lower || odd) {
            q.add(&Big::from_u64(1))
        } else {
            q
        };
        (q, half || lower)
    }

    fn add(&self, other: &Big) -> Big {
        let len = self.0.len().max(other.0.len());
        let mut out = Vec::with_capacity(len + 1);
        let mut carry = 0u64;
        for i in 0..len {
            let a = u64::from(self.0.get(i).copied().unwrap_or(0));
            let b = u64::from(other.0.get(i).copied().unwrap_or(0));
            let v = a + b + carry;
            out.push(v as u32);
            carry = v >> 32;
        }
        if carry > 0 {
            out.push(carry as u32);
        }
        Big(out)
    }

    /// `self - other`; the caller ensures `self >= other`.
    fn sub(&self, other: &Big) -> Big {
        let mut out = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for (i, &l) in self.0.iter().enumerate() {
            let b = i64::from(other.0.get(i).copied().unwrap_or(0));
            let mut v = i64::from(l) - b - borrow;
            borrow = 0;
            if v < 0 {
                v += 1 << 32;
                borrow = 1;
            }
            out.push(v as u32);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    /// `(self / divisor, remainder != 0)` by shift and subtract: the
    /// quotients needed here have about 67 bits.
    fn div(&self, divisor: &Big) -> (Big, bool) {
        let top = self.bit_len();
        let dbits = divisor.bit_len();
        if divisor.is_zero() || top < dbits {
            return (Big(Vec::new()), !self.is_zero());
        }
        let steps = top - dbits;
        let mut rem = self.clone();
        let mut q = Big(Vec::new());
        let mut shifted = divisor.shl(steps);
        for i in (0..=steps).rev() {
            if rem.cmp(&shifted) != Ordering::Less {
                rem = rem.sub(&shifted);
                q = q.add(&Big::from_u64(1).shl(i));
            }
            shifted = shifted.shr(1);
        }
        (q, !rem.is_zero())
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".into();
        }
        let mut limbs = self.0.clone();
        let mut chunks = Vec::new();
        while !limbs.is_empty() {
            let mut rem = 0u64;
            for limb in limbs.iter_mut().rev() {
                let v = rem << 32 | u64::from(*limb);
                *limb = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
            chunks.push(rem as u32);
        }
        let mut text = String::new();
        for (i, chunk) in chunks.iter().rev().enumerate() {
            if i == 0 {
                text.push_str(&chunk.to_string());
            } else {
                text.push_str(&format!("{chunk:09}"));
            }
        }
        text
    }
}

impl PartialOrd for Big {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Big {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a + b` as INCRBYFLOAT stores it; `invalid` where an operand does
    /// not parse, `nan-or-inf` where Redis refuses the result.
    fn incr(a: &str, b: &str) -> String {
        let (Some(a), Some(b)) = (
            LongDouble::parse(a.as_bytes()),
            LongDouble::parse(b.as_bytes()),
        ) else {
            return "invalid".into();
        };
        a.finite_add(b)
            .map_or_else(|| "nan-or-inf".into(), |sum| sum.to_human())
    }

    /// `text` as Redis stores it after reading it as a long double.
    fn show(text: &str) -> String {
        LongDouble::parse(text.as_bytes()).map_or_else(|| "invalid".into(), |v| v.to_human())
    }

    #[test]
    fn g17_matches_printf() {
        assert_eq!(fmt_g17(1.1), "1.1000000000000001");
        assert_eq!(fmt_g17(3.0), "3");
        assert_eq!(fmt_g17(-2.5), "-2.5");
        assert_eq!(fmt_g17(1e20), "1e+20");
        assert_eq!(fmt_g17(1e16), "10000000000000000");
        assert_eq!(fmt_g17(1e17), "1e+17");
        assert_eq!(fmt_g17(0.0001), "0.0001");
        assert_eq!(fmt_g17(0.00001), "1.0000000000000001e-05");
        assert_eq!(fmt_g17(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(fmt_g17(f64::INFINITY), "inf");
        assert_eq!(fmt_g17(-0.0), "-0");
        assert_eq!(fmt_g17(0.1), "0.10000000000000001");
        assert_eq!(fmt_g17(123456789.0), "123456789");
    }

    #[test]
    fn long_double_sums_match_redis() {
        // Replies of redis-server 7.0 (x86-64, 80-bit long double).
        assert_eq!(incr("10.5", "0.1"), "10.6");
        assert_eq!(incr("1000", "0.1"), "1000.09999999999999998");
        assert_eq!(incr("0.1", "0.2"), "0.3");
        assert_eq!(incr("100000.1", "0.2"), "100000.30000000000000426");
        assert_eq!(incr("0", "1e30"), "1000000000000000000024696061952");
        assert_eq!(incr("1e20", "1.5"), "100000000000000000000");
        assert_eq!(incr("17179869184", "2.5"), "17179869186.5");
        assert_eq!(incr("0", "0x10"), "16");
        assert_eq!(incr("16", "5.0e+3"), "5016");
        assert_eq!(incr("5.0e3", "2.0e2"), "5200");
        assert_eq!(incr("1", "-1"), "0");
        assert_eq!(incr("-5", "2"), "-3");
        assert_eq!(incr("-1", "0.5"), "-0.5");
        assert_eq!(incr("0", "-0.5"), "-0.5");
        assert_eq!(incr("0", "-1e-30"), "0");
        assert_eq!(incr("1e-30", "1"), "1");
        assert_eq!(incr("3", "0"), "3");
        assert_eq!(
            incr("1e308", "1e308"),
            "19999999999999999999337175931169129132112019969483113441559409598984346973767612374420\
             025384377707864089349445010802644630426949918792116719484162886039283753591820003920638\
             155732621920901421333587830679157787782912108712612253672980323726043417317850688976324\
             7582601711514636284849020905456510092687857156096"
        );
    }

    #[test]
    fn prints_as_redis_on_x86_64() {
        assert_eq!(show("100000.1"), "100000.10000000000000142");
        assert_eq!(show("1e20"), "100000000000000000000");
        assert_eq!(show("3.0e3"), "3000");
        assert_eq!(show("1.23456789012345678901"), "1.23456789012345679");
        assert_eq!(show("5e-20"), "0");
        assert_eq!(show("-0.0"), "0");
        assert_eq!(show("0x10"), "16");
        // 2^-18 has 18 decimals: the 17th is rounded half to even.
        assert_eq!(show("0x1p-18"), "0.00000381469726562");
        assert_eq!(show("0x3p-18"), "0.00001144409179688");
        assert_eq!(
            show("1e308"),
            "99999999999999999996685879655845645660560099847415567207797047994921734868838061872100\
             126921888539320446747225054013223152134749593960583597420814430196418767959100019603190\
             778663109604507106667939153395788938914560543563061268364901618630217086589253444881623\
             791300855757318142424510452728255046343928578048"
        );
        let big = show("1e4000");
        assert!(big.starts_with("99999999999999999999654638730996237849324925835"));
        assert_eq!(big.len(), 4000);
    }

    #[test]
    fn parse_refuses_what_strtold_would_not_take_whole() {
        for bad in [
            "", " 1", "1 ", "1e", "1e+", "e5", ".", "abc", "nan", "-nan", "1e99999", "1e-99999",
            "1e5000", "1e-5000", "--1", "0x", "1.2.3",
        ] {
            assert!(LongDouble::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
        for good in ["1.", "-0", "0e99999", "inf", "-Infinity", "1E5"] {
            assert!(LongDouble::parse(good.as_bytes()).is_some(), "{good:?}");
        }
        assert_eq!(show("+1.5"), "1.5");
        assert_eq!(show(".5"), "0.5");
        assert_eq!(show("5."), "5");
        assert_eq!(show("-2.25"), "-2.25");
        assert_eq!(show("0x1.8p1"), "3");
        assert_eq!(show("0x1.8p3"), "12");
        assert_eq!(show("0.000"), "0");
        assert_eq!(show("inf"), "inf");
        assert_eq!(show("-Infinity"), "-inf");
    }

    #[test]
    fn infinity_and_nan() {
        let inf = LongDouble::parse(b"inf").expect("inf");
        let minus = LongDouble::parse(b"-inf").expect("-inf");
        assert!(inf.checked_add(minus).is_none());
        assert!(
            inf.checked_add(LongDouble::ZERO)
                .is_some_and(|v| v.is_infinite())
        );
        // The largest finite value plus itself overflows.
        let max = LongDouble::parse(b"1e4932").expect("in range");
        assert!(max.checked_add(max).is_some_and(|v| v.is_infinite()));
        assert_eq!(incr("1e4932", "1e4932"), "nan-or-inf");
        assert_eq!(incr("inf", "1"), "nan-or-inf");
    }

    #[test]
    fn timeouts_in_millis_as_redis() {
        let ms = |t: &str| LongDouble::parse(t.as_bytes()).and_then(|v| v.ceil_millis());
        assert_eq!(ms("0"), Some(0));
        assert_eq!(ms("1.5"), Some(1500));
        assert_eq!(ms("0.0001"), Some(1));
        assert_eq!(ms("1e-400"), Some(1));
        // Rounds up to -0: Redis then blocks forever.
        assert_eq!(ms("-0.0001"), Some(0));
        assert_eq!(ms("0.001"), Some(1));
        assert_eq!(ms("-1"), Some(-1000));
        assert_eq!(ms("-1.5"), Some(-1500));
        assert_eq!(ms("0x10p-10"), Some(16));
        assert_eq!(ms("9223372036854775"), Some(9_223_372_036_854_775_000));
        assert_eq!(ms("9223372036854775.807"), Some(i64::MAX));
        assert_eq!(ms("9223372036854775.808"), None);
        assert_eq!(ms("1e16"), None);
        assert_eq!(ms("1e4932"), None);
        assert_eq!(ms("inf"), None);
        assert_eq!(ms("-inf"), None);
    }
}
