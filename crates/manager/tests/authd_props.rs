//! Enrollment protocol properties: total parsing, and format/parse roundtrips.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use manager::authd::{
    format_error, format_key, format_request, parse_reply, parse_request, valid_name,
    EnrollRequest, IpRequest, KeyReply, MAX_REQUEST,
};
use proptest::prelude::*;

fn arb_ip() -> impl Strategy<Value = IpRequest> {
    let v4 = any::<u32>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b)));
    // Mapped IPv6 is unwrapped by the parser, so generate it already unwrapped.
    let v6 = any::<u128>().prop_map(|b| {
        let a = Ipv6Addr::from(b);
        a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4)
    });
    let addr = prop_oneof![v4, v6];
    prop_oneof![
        Just(IpRequest::Src),
        Just(IpRequest::Any),
        addr.clone().prop_map(IpRequest::Addr),
        (addr, any::<u8>()).prop_map(|(addr, p)| {
            let max = if addr.is_ipv4() { 33 } else { 129 };
            IpRequest::Net {
                addr,
                prefix: p % max,
            }
        }),
    ]
}

fn arb_request() -> impl Strategy<Value = EnrollRequest> {
    (
        proptest::option::of(
            "[ -~]{0,24}".prop_filter("no A: marker", |p| !p.contains(" OSSEC A:'")),
        ),
        "[A-Za-z0-9._-]{2,64}",
        proptest::option::of("[ -&(-~]{0,32}"),
        proptest::collection::btree_set("[A-Za-z0-9.:;_=+!@()-]{1,24}", 0..6),
        proptest::option::of(arb_ip()),
        proptest::option::of("[0-9a-f]{40}"),
    )
        .prop_map(
            |(password, name, version, groups, ip, key_hash)| EnrollRequest {
                password,
                name,
                version,
                groups: groups
                    .into_iter()
                    .filter(|g| g != "." && g != "..")
                    .collect(),
                ip,
                key_hash,
            },
        )
}

/// Strings made of protocol fragments, to reach deep into the parser.
fn arb_protocolish() -> impl Strategy<Value = String> {
    let frag = prop_oneof![
        Just("OSSEC PASS: ".to_string()),
        Just("OSSEC A:'".to_string()),
        Just(" OSSEC A:'".to_string()),
        Just("'".to_string()),
        Just(" V:'".to_string()),
        Just(" G:'".to_string()),
        Just(" IP:'".to_string()),
        Just(" K:'".to_string()),
        Just(",".to_string()),
        Just("src".to_string()),
        Just("any".to_string()),
        Just("::ffff:".to_string()),
        Just("/".to_string()),
        Just("10.0.0.1".to_string()),
        Just("é€".to_string()),
        Just("\n".to_string()),
        Just(" ".to_string()),
        Just("..".to_string()),
        "[a-z0-9]{0,8}",
        any::<String>(),
    ];
    proptest::collection::vec(frag, 0..16).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_arbitrary_strings(s in any::<String>()) {
        let _ = parse_request(&s);
        let _ = parse_reply(&s);
    }

    #[test]
    fn parse_is_total_and_stable_on_protocol_fragments(s in arb_protocolish()) {
        let _ = parse_reply(&s);
        if let Ok(r) = parse_request(&s) {
            prop_assert!(s.len() <= MAX_REQUEST);
            prop_assert!(valid_name(&r.name));
            prop_assert!(r.groups.iter().all(|g| !g.is_empty() && g != "." && g != ".."));
            // Whatever was accepted reformats to a request that parses the same.
            prop_assert_eq!(parse_request(&format_request(&r)), Ok(r));
        }
    }

    #[test]
    fn request_roundtrip(r in arb_request()) {
        let line = format_request(&r);
        prop_assert!(line.ends_with('\n'));
        prop_assert_eq!(parse_request(&line), Ok(r.clone()));
        // The trailing newline is optional.
        prop_assert_eq!(parse_request(line.trim_end_matches('\n')), Ok(r));
    }

    #[test]
    fn key_roundtrip(
        id in any::<u32>(),
        name in "[A-Za-z0-9._-]{2,64}",
        ip in prop_oneof![Just("any".to_string()), arb_ip().prop_map(|i| i.to_string())],
        key in "[0-9a-f]{64}",
    ) {
        let line = format_key(id, &name, &ip, &key);
        prop_assert!(line.starts_with("OSSEC K:'"));
        if id < 1000 {
            prop_assert_eq!(&line[9..12], format!("{id:03}"));
        }
        prop_assert_eq!(parse_reply(&line), Ok(KeyReply { id, name, ip, key }));
    }

    #[test]
    fn error_roundtrip(msg in "[ -~]{0,80}") {
        prop_assert_eq!(parse_reply(&format_error(&msg)), Err(msg.trim_start().to_string()));
    }
}

#[test]
fn oversized_request_is_rejected() {
    let name = "a".repeat(MAX_REQUEST);
    let line = format!("OSSEC A:'{name}'");
    assert_eq!(
        parse_request(&line).map_err(|e| e.to_string()),
        Err("Request too long".to_string())
    );
}
