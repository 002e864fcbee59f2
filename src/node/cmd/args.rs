//! A command's arguments, with Redis's parsing rules and error texts.

use bytes::Bytes;

use super::CmdError;
use crate::resp::Request;

/// The arguments of one request; index 0 is the command name. The table
/// has checked the arity, so handlers read the positions it guarantees
/// directly; a position past the end reads as empty.
pub struct Args<'a> {
    req: &'a Request,
}

impl<'a> Args<'a> {
    pub fn new(req: &'a Request) -> Self {
        Args { req }
    }

    /// The whole request (for queueing or propagating it).
    pub fn request(&self) -> &'a Request {
        self.req
    }

    /// Number of arguments, the name included.
    pub fn len(&self) -> usize {
        self.req.len()
    }

    pub fn is_empty(&self) -> bool {
        self.req.is_empty()
    }

    /// Argument `i`, or empty past the end.
    pub fn get(&self, i: usize) -> &'a [u8] {
        self.req.arg(i).unwrap_or_default()
    }

    /// Argument `i` as zero-copy `Bytes` (for storing it).
    pub fn bytes(&self, i: usize) -> Bytes {
        self.req.arg_bytes(i).unwrap_or_default()
    }

    /// Arguments `from..`, for variadic commands.
    pub fn rest(&self, from: usize) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let req = self.req;
        (from.min(req.len())..req.len()).map(move |i| req.arg(i).unwrap_or_default())
    }

    /// Argument `i` as an integer, or Redis's "not an integer" error.
    pub fn int(&self, i: usize) -> Result<i64, CmdError> {
        parse_i64(self.get(i))
    }

    /// Argument `i` as a float, or Redis's "not a valid float" error.
    pub fn float(&self, i: usize) -> Result<f64, CmdError> {
        parse_f64(self.get(i))
    }

    /// True if argument `i` equals `word`, ignoring ASCII case.
    pub fn is(&self, i: usize, word: &str) -> bool {
        self.get(i).eq_ignore_ascii_case(word.as_bytes())
    }

    /// Argument `i` as text, for error messages.
    pub fn lossy(&self, i: usize) -> String {
        String::from_utf8_lossy(self.get(i)).into_owned()
    }
}

/// A decimal i64 as Redis's `string2ll` accepts it: no spaces, no `+`, no
/// leading zeros.
pub fn parse_i64(bytes: &[u8]) -> Result<i64, CmdError> {
    let valid = match bytes {
        [] => false,
        [b'0'] => true,
        [b'-', b'1'..=b'9', ..] | [b'1'..=b'9', ..] => true,
        _ => false,
    };
    if !valid || bytes.len() > 20 {
        return Err(CmdError::NOT_INTEGER);
    }
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(CmdError::NOT_INTEGER)
}

/// A float as Redis's `string2ld`/`strtold` accepts it: no spaces, `inf`
/// allowed, NaN refused.
pub fn parse_f64(bytes: &[u8]) -> Result<f64, CmdError> {
    let text = std::str::from_utf8(bytes).map_err(|_| CmdError::NOT_FLOAT)?;
    if text.is_empty()
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
    {
        return Err(CmdError::NOT_FLOAT);
    }
    let value = match text.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => text.parse::<f64>().map_err(|_| CmdError::NOT_FLOAT)?,
    };
    if value.is_nan() {
        return Err(CmdError::NOT_FLOAT);
    }
    Ok(value)
}
