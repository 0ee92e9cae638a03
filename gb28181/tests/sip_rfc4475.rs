//! RFC 4475 SIP torture tests: every well-formed message parses with the values the RFC
//! describes, every invalid one is rejected or tolerated as the RFC allows, none panics.

use std::path::PathBuf;

use bytes::BytesMut;
use gb28181::sip::{
    CSeq, HeaderName, Host, Message, Method, ParseError, ParseErrorKind, Request, Response,
    StreamDecoder, Uri,
};

fn dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sip/rfc4475"
    ))
}

fn raw(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn parse(name: &str) -> Message {
    Message::parse(&raw(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn req(name: &str) -> Request {
    match parse(name) {
        Message::Request(r) => r,
        Message::Response(_) => panic!("{name}: expected a request"),
    }
}

fn resp(name: &str) -> Response {
    match parse(name) {
        Message::Response(r) => r,
        Message::Request(_) => panic!("{name}: expected a response"),
    }
}

fn rejected(name: &str) -> ParseError {
    match Message::parse(&raw(name)) {
        Ok(m) => panic!("{name}: accepted {m:?}"),
        Err(e) => e,
    }
}

fn invalid_header(header: &'static str, expected: &'static str) -> ParseErrorKind {
    ParseErrorKind::InvalidHeader { header, expected }
}

/// The message with its Content-Length lines removed: serialization owns that header.
fn without_content_length(mut m: Message) -> Message {
    m.headers_mut().remove(&HeaderName::ContentLength);
    m
}

/// (file, class) from index.tsv.
fn index() -> Vec<(String, String)> {
    let text = String::from_utf8(raw("index.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            Some((cols.first()?.to_string(), cols.get(3)?.to_string()))
        })
        .collect()
}

#[test]
fn index_classes_are_honoured() {
    let index = index();
    assert_eq!(index.len(), 50);
    let mut parsed = 0;
    for (file, class) in &index {
        let bytes = raw(file);
        let result = Message::parse(&bytes);
        match class.as_str() {
            "valid" | "transaction-semantics" | "application-semantics" | "backward-compat" => {
                let m = result.unwrap_or_else(|e| panic!("{file} ({class}): {e}"));
                // Serialization is stable: re-parsing gives the same message, apart from
                // the Content-Length line the serializer always writes from the body.
                let again = Message::parse(&m.to_bytes()).unwrap();
                assert_eq!(
                    without_content_length(again.clone()),
                    without_content_length(m.clone()),
                    "{file}"
                );
                assert_eq!(Message::parse(&again.to_bytes()).unwrap(), again, "{file}");
                parsed += 1;
            }
            // Checked one by one below; here only: no panic.
            "invalid" | "not-in-rfc" => {
                let _ = result;
            }
            other => panic!("{file}: unknown class {other}"),
        }
    }
    assert_eq!(parsed, 30);
    // test.dat (not described by the RFC) has no SIP-Version in its request line.
    assert_eq!(
        rejected("test.dat"),
        ParseError::new(26, ParseErrorKind::Expected("SIP-Version in request line"))
    );
}

// ---- RFC 4475 §3.1.1: valid messages ----

#[test]
fn wsinv_short_tortuous_invite() {
    let r = req("wsinv.dat");
    assert_eq!(r.uri.as_sip().unwrap().param("unknownparam"), Some(None));
    let h = &r.headers;
    assert_eq!(h.to().unwrap().tag(), Some("1918181833n"));
    let from = h.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some(r#"J Rosenberg \""#));
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(h.max_forwards(), Some(68));
    assert_eq!(h.call_id(), Some("wsinv.ndaksdj@192.0.2.1"));
    assert_eq!(h.cseq().unwrap(), CSeq::new(9, Method::Invite));
    let via = h.via().unwrap();
    let summary: Vec<_> = via
        .iter()
        .map(|v| {
            (
                v.transport.as_str(),
                v.host.to_string(),
                v.branch().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("UDP", "192.0.2.2".to_string(), "390skdjuw"),
            ("TCP", "spindle.example.com".to_string(), "z9hG4bK9ikj8"),
            ("UDP", "192.168.255.111".to_string(), "z9hG4bK30239"),
        ]
    );
    assert_eq!(h.get(&HeaderName::Subject), Some(""));
    assert_eq!(
        h.get(&HeaderName::from("newfangledheader")),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        h.get(&HeaderName::from("UnknownHeaderWithUnusualValue")),
        Some(";;,,;;,;")
    );
    assert_eq!(
        h.values(&HeaderName::Route),
        ["<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"]
    );
    let contact = h.contact().unwrap();
    assert_eq!(
        contact[0].display_name.as_deref(),
        Some(r#"Quoted string """#)
    );
    assert_eq!(contact[0].param("newparam"), Some(Some("newvalue")));
    assert_eq!(contact[0].param("secondparam"), Some(None));
    assert_eq!(contact[0].param("q"), Some(Some("0.33")));
    assert_eq!(r.body.len(), 150);
    r.validate().unwrap();
}

#[test]
fn intmeth_wide_range_of_valid_characters() {
    let r = req("intmeth.dat");
    let method = Method::Extension("!interesting-Method0123456789_*+`.%indeed'~".into());
    assert_eq!(r.method, method);
    let uri = r.uri.as_sip().unwrap();
    assert_eq!(
        uri.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        uri.password.as_deref(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    let h = &r.headers;
    assert_eq!(h.top_via().unwrap().branch(), Some("z9hG4bK-.!%66*_+`'~"));
    assert_eq!(
        h.to().unwrap().display_name.as_deref(),
        Some("BEL:\u{7} NUL:\0 DEL:\u{7f}")
    );
    let from = h.from().unwrap();
    assert_eq!(
        from.display_name.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        from.param("fromParam''~+*_!.-%"),
        Some(Some(
            "\"\u{440}\u{430}\u{431}\u{43e}\u{442}\u{430}\u{44e}\u{449}\u{438}\u{439}\""
        ))
    );
    assert_eq!(
        h.call_id(),
        Some(r#"intmeth.word%ZK-!.*_+'@word`~)(><:\/"][?}{"#)
    );
    assert_eq!(h.cseq().unwrap(), CSeq::new(139122385, method));
    assert_eq!(h.max_forwards(), Some(255));
    assert_eq!(
        h.get(&HeaderName::from("extensionHeader-!.%*+_`'~")),
        Some("\u{feff}\u{5927}\u{505c}\u{96fb}")
    );
    r.validate().unwrap();
}

#[test]
fn escapes_and_escaped_nulls() {
    let r = req("esc01.dat");
    assert_eq!(
        r.uri.as_sip().unwrap().user.as_deref(),
        Some("sips%3Auser%40example.com")
    );
    assert_eq!(
        r.headers.to().unwrap().uri.to_string(),
        "sip:%75se%72@example.com"
    );
    let contact = r.headers.contact().unwrap();
    let uri = contact[0].uri.as_sip().unwrap();
    assert_eq!(
        gb28181::sip::uri::percent_decode(uri.user.as_deref().unwrap()),
        b"caller"
    );
    assert_eq!(uri.param("n%61me"), Some(Some("v%61lue%25%34%31")));
    assert_eq!(r.headers.content_type(), Some("application/sdp"));
    r.validate().unwrap();

    let r = req("escnull.dat");
    let contacts = r.headers.contact().unwrap();
    assert_eq!(contacts.len(), 2);
    let user = contacts[1].uri.as_sip().unwrap().user.as_deref().unwrap();
    assert_eq!(gb28181::sip::uri::percent_decode(user), b"\0\0");
    r.validate().unwrap();

    // esc02: % that is not an escape, in a method, display names and a header name.
    let r = req("esc02.dat");
    assert_eq!(r.method, Method::Extension("RE%47IST%45R".into()));
    assert_eq!(
        r.headers.to().unwrap().display_name.as_deref(),
        Some("%Z%45")
    );
    assert_eq!(r.headers.contact().unwrap().len(), 2);
    assert_eq!(
        r.headers.get(&HeaderName::from("C%6Fntact")),
        Some("<sip:alias2@host2.example.com>")
    );
    r.validate().unwrap();
}

#[test]
fn display_names_long_values_and_uri_user_parameters() {
    let r = req("lwsdisp.dat");
    assert_eq!(
        r.headers.from().unwrap().display_name.as_deref(),
        Some("caller")
    );

    let r = req("longreq.dat");
    assert_eq!(r.headers.via().unwrap().len(), 34);
    assert_eq!(r.headers.values(&HeaderName::Via).len(), 34);
    let to = r.headers.to().unwrap();
    assert_eq!(to.uri.as_sip().unwrap().port, Some(6000));
    assert_eq!(to.uri.as_sip().unwrap().params.len(), 3);
    assert_eq!(r.headers.from().unwrap().params.len(), 3);
    assert_eq!(r.body.len(), 150);
    r.validate().unwrap();

    let r = req("semiuri.dat");
    let uri = r.uri.as_sip().unwrap();
    assert_eq!(uri.user.as_deref(), Some("user;par=u%40example.net"));
    assert!(uri.params.is_empty());
    assert_eq!(r.headers.values(&HeaderName::Accept).len(), 6);
}

#[test]
fn dblreq_trailing_octets_are_discarded() {
    let r = req("dblreq.dat");
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
    assert_eq!(
        r.headers.call_id(),
        Some("dblreq.0ha0isndaksdj99sdfafnl3lk233412")
    );
    // On a stream the same bytes are two messages, the second with a 150-byte body.
    let mut dec = StreamDecoder::new(4096);
    let mut buf = BytesMut::from(&raw("dblreq.dat")[..]);
    let first = dec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(first, Message::Request(r));
    let second = dec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(second.as_request().unwrap().method, Method::Invite);
    assert_eq!(second.body().len(), 150);
    // The archive's second body is longer than its Content-Length: "C\r\n\r\n" is left,
    // which on a stream is a broken start line.
    assert_eq!(&buf[..], b"C\r\n\r\n");
    assert_eq!(
        dec.decode(&mut buf).unwrap_err(),
        ParseError::new(1, ParseErrorKind::Expected("SP after method"))
    );
}

#[test]
fn transports_multipart_and_reason_phrases() {
    let r = req("transports.dat");
    let transports: Vec<String> = r
        .headers
        .via()
        .unwrap()
        .into_iter()
        .map(|v| v.transport)
        .collect();
    assert_eq!(transports, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);

    let r = req("mpart01.dat");
    assert_eq!(r.body.len(), 553);
    assert!(r.body.ends_with(b"--7a9cbec02ceef655--\r\n"));
    assert_eq!(r.headers.top_via().unwrap().rport(), Some(None));

    let r = resp("unreason.dat");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.reason,
        "= 2**3 * 5**2 \u{43d}\u{43e} \u{441}\u{442}\u{43e} \u{434}\u{435}\u{432}\u{44f}\u{43d}\u{43e}\u{441}\u{442}\u{43e} \u{434}\u{435}\u{432}\u{44f}\u{442}\u{44c} - \u{43f}\u{440}\u{43e}\u{441}\u{442}\u{43e}\u{435}"
    );
    assert_eq!(r.body.len(), 154);

    let r = resp("noreason.dat");
    assert_eq!((r.status, r.reason.as_str()), (100, ""));
    r.validate().unwrap();
}

// ---- RFC 4475 §3.1.2: invalid messages ----

#[test]
fn rejected_invalid_messages() {
    // §3.1.2.2: Content-Length larger than the datagram.
    let e = rejected("clerr.dat");
    assert!(
        matches!(e.kind, ParseErrorKind::BodyTruncated { declared: 9999, .. }),
        "{e}"
    );
    // §3.1.2.3: negative Content-Length.
    assert_eq!(
        rejected("ncl.dat").kind,
        ParseErrorKind::Expected("Content-Length as 1*DIGIT")
    );
    // §3.1.2.7: Request-URI in <>.
    assert_eq!(
        rejected("ltgtruri.dat"),
        ParseError::expected_at(7, "URI scheme")
    );
    // §3.1.2.8: LWS inside the Request-URI splits it: "sip:user@example.com;" ends in an
    // empty parameter.
    assert_eq!(
        rejected("lwsruri.dat"),
        ParseError::expected_at(28, "URI parameter name")
    );
    // §3.1.2.11: URI headers are not allowed in a Request-URI (RFC 3261 §19.1.1).
    assert_eq!(
        rejected("escruri.dat"),
        ParseError::expected_at(27, "Request-URI without headers")
    );
    // §3.1.2.16: SIP/7.0.
    assert_eq!(
        rejected("badvers.dat"),
        ParseError::new(33, ParseErrorKind::UnsupportedVersion)
    );
    // §3.1.2.19: status code 4294967301.
    assert_eq!(
        rejected("bigcode.dat"),
        ParseError::expected_at(8, "3-digit Status-Code")
    );
    // §3.1.2.15: the archive's file ends after the last header line, without the empty
    // line, so the datagram is incomplete; with the empty line, From is still rejected
    // because "Bell, Alexander" is not a token display name.
    let e = rejected("baddn.dat");
    assert_eq!(
        e.kind,
        ParseErrorKind::Expected("empty line ending the header section")
    );
    let mut fixed = raw("baddn.dat");
    fixed.extend_from_slice(b"\r\n");
    let Message::Request(r) = Message::parse(&fixed).unwrap() else {
        panic!()
    };
    assert!(matches!(
        r.headers.from().unwrap_err().kind,
        ParseErrorKind::InvalidHeader { header: "From", .. }
    ));
    assert!(r.validate().is_err());
}

trait ExpectedAt {
    fn expected_at(offset: usize, what: &'static str) -> ParseError;
}

impl ExpectedAt for ParseError {
    fn expected_at(offset: usize, what: &'static str) -> ParseError {
        ParseError::new(offset, ParseErrorKind::Expected(what))
    }
}

#[test]
fn tolerated_invalid_messages_fail_their_typed_accessors() {
    // Tolerated: RFC 4475 expects a 400 response for these. The codec parses the message so
    // that the UAS has the Via/From/To/Call-ID/CSeq to build that 400 with, and the typed
    // accessor of the broken header (and `validate`) reports the error.

    // §3.1.2.1: empty Via and Contact parameters.
    let r = req("badinv01.dat");
    assert_eq!(
        r.headers.via().unwrap_err().kind,
        invalid_header("Via", "parameter name after ';'")
    );
    assert_eq!(
        r.headers.contact().unwrap_err().kind,
        invalid_header("Contact", "parameter name after ';'")
    );
    assert!(r.validate().is_err());
    assert_eq!(r.body.len(), 152);

    // §3.1.2.4: overlarge CSeq, Max-Forwards, Expires. RFC 4475: treat Max-Forwards as
    // absent and the expiry as default; the CSeq error calls for 400.
    let r = req("scalar02.dat");
    let e = r.headers.cseq().unwrap_err();
    assert_eq!(
        e,
        ParseError::new(0, invalid_header("CSeq", "CSeq sequence number below 2^32"))
    );
    assert_eq!(r.headers.max_forwards(), None);
    assert_eq!(r.headers.expires(), None);
    assert_eq!(
        r.headers.contact().unwrap()[0].param("expires"),
        Some(Some("280297596632815"))
    );
    assert!(r.validate().is_err());

    // §3.1.2.5: the response equivalent; Retry-After and Warning stay raw text.
    let r = resp("scalarlg.dat");
    assert_eq!(r.status, 503);
    assert!(r.headers.cseq().is_err());
    assert_eq!(
        r.headers.get(&HeaderName::from("Retry-After")),
        Some("949302838503028349304023988")
    );

    // §3.1.2.6: unterminated quoted display name.
    let r = req("quotbal.dat");
    assert_eq!(
        r.headers.to().unwrap_err(),
        ParseError::new(37, invalid_header("To", "'\"' closing the quoted-string"))
    );
    assert_eq!(r.headers.from().unwrap().tag(), Some("93334"));
    assert!(r.validate().is_err());

    // §3.1.2.13: a URI with headers outside <> in Contact.
    let r = req("regbadct.dat");
    assert_eq!(
        r.headers.contact().unwrap_err(),
        ParseError::new(
            20,
            invalid_header("Contact", "'<' '>' around a URI with headers")
        )
    );

    // §3.1.2.14: spaces inside <>.
    let r = req("badaspec.dat");
    assert_eq!(
        r.headers.to().unwrap_err(),
        ParseError::new(18, invalid_header("To", "URI scheme"))
    );
    assert_eq!(
        r.headers.from().unwrap().display_name.as_deref(),
        Some("Bell, Alexander")
    );

    // §3.1.2.17/18: CSeq method differs from the request method.
    for name in ["mismatch01.dat", "mismatch02.dat"] {
        let r = req(name);
        assert_eq!(
            r.validate().unwrap_err().kind,
            ParseErrorKind::CSeqMethodMismatch,
            "{name}"
        );
    }
    assert_eq!(
        req("mismatch02.dat").method,
        Method::Extension("NEWMETHOD".into())
    );
}

#[test]
fn tolerated_invalid_messages_with_harmless_deviations() {
    // §3.1.2.9 and §3.1.2.10: "an element that is liberal in what it accepts may ignore
    // these extra SP characters"; we do, and always send single SP.
    let r = req("lwsstart.dat");
    assert_eq!(r.uri.to_string(), "sip:user@example.com");
    assert!(
        r.to_bytes()
            .starts_with(b"INVITE sip:user@example.com SIP/2.0\r\n")
    );
    r.validate().unwrap();
    let r = req("trws.dat");
    assert_eq!(r.method, Method::Options);
    assert!(
        r.to_bytes()
            .starts_with(b"OPTIONS sip:remote-target@example.com SIP/2.0\r\n")
    );

    // §3.1.2.12: a Date with a non-GMT zone. The codec has no typed Date accessor (GB/T
    // 28181 uses its own `YYYY-MM-DDTHH:MM:SS.sss` form), so the raw value is passed up and
    // the layer that reads Date decides.
    let r = req("baddate.dat");
    assert_eq!(
        r.headers.get(&HeaderName::Date),
        Some("Fri, 01 Jan 2010 16:00:00 EST")
    );
    r.validate().unwrap();
}

// ---- RFC 4475 §3.2-§3.4: well formed, semantically odd ----

#[test]
fn transaction_and_application_semantics() {
    // §3.2.1: a branch that is only the magic cookie is syntactically fine.
    assert_eq!(
        req("badbranch.dat").headers.top_via().unwrap().branch(),
        Some("z9hG4bK")
    );

    // §3.3.1: missing Call-ID, From, To.
    let r = req("insuf.dat");
    assert_eq!(
        r.validate().unwrap_err().kind,
        ParseErrorKind::MissingHeader("From")
    );
    assert_eq!(r.body.len(), 152);

    // §3.3.2 - §3.3.4: unknown and atypical URI schemes are kept verbatim.
    assert_eq!(
        req("unkscm.dat").uri,
        Uri::Other("nobodyKnowsThisScheme:totallyopaquecontent".into())
    );
    assert_eq!(
        req("novelsc.dat").uri,
        Uri::Other("soap.beep://192.0.2.103:3002".into())
    );
    let r = req("unksm2.dat");
    assert_eq!(
        r.headers.to().unwrap().uri,
        Uri::Other("isbn:2983792873".into())
    );
    assert_eq!(
        r.headers.from().unwrap().uri,
        Uri::Other("http://www.example.com".into())
    );
    assert_eq!(
        r.headers.contact().unwrap()[0].uri,
        Uri::Other("name:John_Smith".into())
    );

    // §3.3.5 - §3.3.7.
    let r = req("bext01.dat");
    assert_eq!(
        r.headers.values(&HeaderName::Require),
        ["nothingSupportsThis", "nothingSupportsThisEither"]
    );
    assert_eq!(r.headers.values(&HeaderName::ProxyRequire).len(), 2);
    let r = req("invut.dat");
    assert_eq!(r.headers.content_type(), Some("application/unknownformat"));
    assert_eq!(r.body.len(), 40);
    let r = req("regaut01.dat");
    assert_eq!(
        r.headers.get(&HeaderName::Authorization),
        Some("NoOneKnowsThisScheme opaque-data=here")
    );

    // §3.3.8: several values in single-valued fields.
    let r = req("multi01.dat");
    assert_eq!(
        r.validate().unwrap_err().kind,
        ParseErrorKind::DuplicateHeader("From")
    );

    // §3.3.9: two different Content-Length values. Over UDP the datagram bounds the body
    // and `validate` reports the conflict; on a stream the connection must be closed.
    let r = req("mcl01.dat");
    assert_eq!(
        &r.body[..],
        b"There's no way to know how many octets are supposed to be here.\r\n\r\n"
    );
    assert_eq!(
        r.validate().unwrap_err().kind,
        ParseErrorKind::ConflictingContentLength
    );
    let mut dec = StreamDecoder::new(4096);
    let e = dec
        .decode(&mut BytesMut::from(&raw("mcl01.dat")[..]))
        .unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::ConflictingContentLength);

    // §3.3.10: a broadcast address in Via is for the transaction layer to judge.
    let r = resp("bcast.dat");
    assert_eq!(
        r.headers.via().unwrap()[1].host,
        Host::Ipv4([255, 255, 255, 255].into())
    );

    // §3.3.11 - §3.3.15.
    assert_eq!(req("zeromf.dat").headers.max_forwards(), Some(0));
    let c = req("cparam01.dat").headers.contact().unwrap().remove(0);
    assert_eq!(
        (
            c.param("unknownparam"),
            c.uri.as_sip().unwrap().params.len()
        ),
        (Some(None), 0)
    );
    let c = req("cparam02.dat").headers.contact().unwrap().remove(0);
    assert_eq!(
        (
            c.params.len(),
            c.uri.as_sip().unwrap().param("unknownparam")
        ),
        (0, Some(None))
    );
    let c = req("regescrt.dat").headers.contact().unwrap().remove(0);
    assert_eq!(
        c.uri.as_sip().unwrap().headers,
        [("Route".into(), "%3Csip:sip.example.com%3E".into())]
    );
    assert_eq!(
        req("sdp01.dat").headers.get(&HeaderName::Accept),
        Some("text/nobodyKnowsThis")
    );

    // §3.4.1: RFC 2543 syntax: no Content-Length (body is the rest), no Max-Forwards, no branch.
    let r = req("inv2543.dat");
    assert_eq!(r.headers.get(&HeaderName::ContentLength), None);
    assert!(r.body.starts_with(b"v=0\r\n"));
    assert_eq!(r.headers.top_via().unwrap().branch(), None);
    assert_eq!(r.headers.max_forwards(), None);
    r.validate().unwrap();
    let mut dec = StreamDecoder::new(4096);
    let e = dec
        .decode(&mut BytesMut::from(&raw("inv2543.dat")[..]))
        .unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::MissingContentLength);
}
