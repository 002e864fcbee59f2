use super::*;

fn decode_all(input: &[u8]) -> (Vec<Request>, Result<(), ProtocolError>, usize) {
    let mut buf = BytesMut::from(input);
    let mut dec = RequestDecoder::default();
    let mut out = Vec::new();
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(r)) => out.push(r),
            Ok(None) => return (out, Ok(()), buf.len()),
            Err(e) => return (out, Err(e), buf.len()),
        }
    }
}

fn args(r: &Request) -> Vec<&[u8]> {
    r.args().collect()
}

#[test]
fn multibulk_keeps_raw_bytes() {
    let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n";
    let (reqs, res, left) = decode_all(input);
    assert_eq!(res, Ok(()));
    assert_eq!(left, 0);
    assert_eq!(reqs.len(), 1);
    assert_eq!(args(&reqs[0]), vec![&b"SET"[..], b"k", b""]);
    assert_eq!(&reqs[0].raw()[..], &input[..]);
}

#[test]
fn every_split_point_decodes_the_same() {
    let input = b"*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\nPING\r\n*1\r\n$4\r\nPING\r\n";
    for cut in 0..input.len() {
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::from(&input[..cut]);
        let mut got = Vec::new();
        while let Some(r) = dec.decode(&mut buf).unwrap() {
            got.push(r);
        }
        buf.extend_from_slice(&input[cut..]);
        while let Some(r) = dec.decode(&mut buf).unwrap() {
            got.push(r);
        }
        assert_eq!(got.len(), 3, "cut at {cut}");
        assert_eq!(args(&got[0]), vec![&b"GET"[..], b"foo"]);
        assert_eq!(args(&got[1]), vec![&b"PING"[..]]);
        assert_eq!(&got[1].raw()[..], b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(got[2], got[1]);
    }
}

#[test]
fn inline_commands_and_quotes() {
    let (reqs, res, _) = decode_all(b"set k \"a b\\x41\\n\" 'it\\'s'\r\n\r\nPING\n");
    assert_eq!(res, Ok(()));
    assert_eq!(reqs.len(), 2);
    assert_eq!(args(&reqs[0]), vec![&b"set"[..], b"k", b"a bA\n", b"it's"]);
    assert_eq!(args(&reqs[1]), vec![&b"PING"[..]]);
}

#[test]
fn empty_multibulk_is_skipped() {
    let (reqs, res, left) = decode_all(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n");
    assert_eq!(res, Ok(()));
    assert_eq!((reqs.len(), left), (1, 0));
}

#[test]
fn protocol_errors_use_redis_texts() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"*abc\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*3000000000\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$-5\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$600000000\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\nx3\r\n",
            "-ERR Protocol error: expected '$', got 'x'\r\n",
        ),
        (
            b"set \"k\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"*1\r\n$1\r\nabc\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
    ];
    for (input, text) in cases {
        let (_, res, _) = decode_all(input);
        assert_eq!(res.unwrap_err().to_reply(), *text, "{input:?}");
    }
}

#[test]
fn oversized_lines_fail_without_waiting() {
    let big = vec![b'a'; MAX_INLINE_LEN + 1];
    let (_, res, _) = decode_all(&big);
    assert_eq!(res, Err(ProtocolError::TooBigInline));
    let mut mb = b"*".to_vec();
    mb.extend(std::iter::repeat_n(b'1', MAX_INLINE_LEN + 1));
    assert_eq!(decode_all(&mb).1, Err(ProtocolError::TooBigMultibulkCount));
    let mut bulk = b"*1\r\n$".to_vec();
    bulk.extend(std::iter::repeat_n(b'1', MAX_INLINE_LEN + 1));
    assert_eq!(decode_all(&bulk).1, Err(ProtocolError::TooBigBulkCount));
}

#[test]
fn configured_bulk_limit_applies() {
    let mut dec = RequestDecoder::new(4, 8);
    let mut buf = BytesMut::from(&b"*1\r\n$5\r\nhello\r\n"[..]);
    assert_eq!(dec.decode(&mut buf), Err(ProtocolError::InvalidBulkLength));
    let mut dec = RequestDecoder::new(4, 1);
    let mut buf = BytesMut::from(&b"*2\r\n"[..]);
    assert_eq!(
        dec.decode(&mut buf),
        Err(ProtocolError::InvalidMultibulkLength)
    );
}

#[test]
fn parse_int_is_strict() {
    assert_eq!(parse_int(b"0"), Some(0));
    assert_eq!(parse_int(b"-1"), Some(-1));
    assert_eq!(parse_int(b"123"), Some(123));
    for bad in [
        &b""[..],
        b"-",
        b"+1",
        b"01",
        b" 1",
        b"1 ",
        b"-0",
        b"99999999999999999999",
    ] {
        assert_eq!(parse_int(bad), None, "{bad:?}");
    }
}
