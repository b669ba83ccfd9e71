//! Codec tests: hand-derived known-answer vectors, round trips, every error, properties.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use vrrp::packet::{
    check_pass, checksum, checksum_pseudo, decode, encode, Advert, Auth, PacketError, Version,
};

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

const MC4: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));

/// An independent RFC 1071 fold, written out separately from the crate's.
fn ref_csum(parts: &[&[u8]]) -> u16 {
    let mut all: Vec<u8> = parts.concat();
    if all.len() % 2 == 1 {
        all.push(0);
    }
    let mut s: u64 = 0;
    for i in (0..all.len()).step_by(2) {
        s += (u64::from(all[i]) << 8) | u64::from(all[i + 1]);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Fills a v2 message's checksum with the reference fold.
fn seal_v2(mut m: Vec<u8>) -> Vec<u8> {
    m[6] = 0;
    m[7] = 0;
    let c = ref_csum(&[&m]);
    m[6..8].copy_from_slice(&c.to_be_bytes());
    m
}

/// Fills a v3-over-IPv4 message's checksum with the reference fold and pseudo-header.
fn seal_v3_v4(mut m: Vec<u8>, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    m[6] = 0;
    m[7] = 0;
    let len = (m.len() as u16).to_be_bytes();
    let ph = [
        src[0], src[1], src[2], src[3], dst[0], dst[1], dst[2], dst[3], 0, 112, len[0], len[1],
    ];
    let c = ref_csum(&[&ph, &m]);
    m[6..8].copy_from_slice(&c.to_be_bytes());
    m
}

fn v2_pass_vector() -> Vec<u8> {
    // RFC 3768 5.1 layout: version 2 | type 1, VRID 51, priority 100, count 1, auth type 1
    // (PASS), interval 1 s, checksum, 192.168.1.100, "secret" zero-padded to 8 bytes.
    // Words summed by hand: 2133+6401+0101+c0a8+0164+7365+6372+6574 = 0x2848c,
    // folded 0x848e, complemented 0x7b71.
    vec![
        0x21, 0x33, 0x64, 0x01, 0x01, 0x01, 0x7b, 0x71, 192, 168, 1, 100, b's', b'e', b'c', b'r',
        b'e', b't', 0, 0,
    ]
}

fn v3_v4_vector() -> Vec<u8> {
    // RFC 5798 5.1 layout from 10.0.0.1 to 224.0.0.18: 0x31, VRID 1, priority 100, count 1,
    // rsvd|max adver int 100 cs, checksum, 10.0.0.100. Pseudo-header words
    // 0a00+0001+e000+0012+0070+000c = 0xea8f; message words 3101+6401+0064+0a00+0064 = 0x9fca;
    // 0xea8f+0x9fca = 0x18a59, folded 0x8a5a, complemented 0x75a5.
    vec![
        0x31, 0x01, 0x64, 0x01, 0x00, 0x64, 0x75, 0xa5, 10, 0, 0, 100,
    ]
}

#[test]
fn known_answer_v2_pass() {
    let bytes = v2_pass_vector();
    assert_eq!(
        ref_csum(&[&bytes]),
        0,
        "hand checksum verifies under the reference fold"
    );
    let a = Advert {
        version: Version::V2,
        vrid: 51,
        priority: 100,
        interval_cs: 100,
        addrs: vec![v4(192, 168, 1, 100)],
        auth: Auth::pass(b"secret"),
    };
    assert_eq!(encode(&a, v4(192, 168, 1, 1), MC4).unwrap(), bytes);
    assert_eq!(decode(&bytes, v4(192, 168, 1, 1), MC4).unwrap(), a);
    // v2's checksum does not depend on the IP addresses.
    assert_eq!(decode(&bytes, v4(10, 9, 8, 7), v4(10, 9, 8, 6)).unwrap(), a);
    let mut zeroed = bytes.clone();
    zeroed[6] = 0;
    zeroed[7] = 0;
    assert_eq!(checksum(&zeroed), 0x7b71);
}

#[test]
fn known_answer_v3_ipv4() {
    let bytes = v3_v4_vector();
    let src = v4(10, 0, 0, 1);
    let a = Advert {
        version: Version::V3,
        vrid: 1,
        priority: 100,
        interval_cs: 100,
        addrs: vec![v4(10, 0, 0, 100)],
        auth: Auth::None,
    };
    assert_eq!(encode(&a, src, MC4).unwrap(), bytes);
    assert_eq!(decode(&bytes, src, MC4).unwrap(), a);
    let mut zeroed = bytes.clone();
    zeroed[6] = 0;
    zeroed[7] = 0;
    assert_eq!(checksum_pseudo(src, MC4, &zeroed), Some(0x75a5));
    // The pseudo-header is covered: another source address breaks the checksum.
    assert!(matches!(
        decode(&bytes, v4(10, 0, 0, 2), MC4),
        Err(PacketError::BadChecksum { got: 0x75a5, .. })
    ));
}

#[test]
fn known_answer_v3_ipv6() {
    // fe80::1 -> ff02::12: 0x31, VRID 2, priority 200, count 1, 100 cs, checksum,
    // 2001:db8::1. IPv6 pseudo-header: src, dst, 32-bit length 24, 3 zero bytes, 112.
    let src = v6("fe80::1");
    let dst = v6("ff02::12");
    let mut m = vec![0x31, 0x02, 0xc8, 0x01, 0x00, 0x64, 0x00, 0x00];
    m.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    let mut ph = Vec::new();
    ph.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ph.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12]);
    ph.extend_from_slice(&[0, 0, 0, 24, 0, 0, 0, 112]);
    let c = ref_csum(&[&ph, &m]);
    assert_eq!(c, 0xdabe);
    m[6..8].copy_from_slice(&c.to_be_bytes());
    let a = Advert {
        version: Version::V3,
        vrid: 2,
        priority: 200,
        interval_cs: 100,
        addrs: vec![v6("2001:db8::1")],
        auth: Auth::None,
    };
    assert_eq!(encode(&a, src, dst).unwrap(), m);
    assert_eq!(decode(&m, src, dst).unwrap(), a);
}

#[test]
fn v3_reserved_bits_ignored_on_receipt() {
    let mut m = v3_v4_vector();
    m[4] |= 0xf0;
    let m = seal_v3_v4(m, [10, 0, 0, 1], [224, 0, 0, 18]);
    assert_eq!(decode(&m, v4(10, 0, 0, 1), MC4).unwrap().interval_cs, 100);
}

#[test]
fn round_trips() {
    let cases = [
        (
            Advert {
                version: Version::V2,
                vrid: 7,
                priority: 150,
                interval_cs: 300,
                addrs: vec![v4(10, 1, 1, 1), v4(10, 1, 1, 2)],
                auth: Auth::None,
            },
            v4(10, 1, 1, 10),
            MC4,
        ),
        (
            Advert {
                version: Version::V3,
                vrid: 255,
                priority: 1,
                interval_cs: 4095,
                addrs: vec![v4(172, 16, 0, 1)],
                auth: Auth::None,
            },
            v4(172, 16, 0, 2),
            v4(172, 16, 0, 3), // unicast peer
        ),
        (
            Advert {
                version: Version::V3,
                vrid: 9,
                priority: 254,
                interval_cs: 5,
                addrs: vec![v6("2001:db8::10"), v6("2001:db8::11"), v6("fe80::99")],
                auth: Auth::None,
            },
            v6("fe80::2"),
            v6("ff02::12"),
        ),
    ];
    for (a, src, dst) in cases {
        let bytes = encode(&a, src, dst).unwrap();
        assert_eq!(decode(&bytes, src, dst).unwrap(), a);
    }
}

#[test]
fn check_pass_compares_password() {
    let a = decode(&v2_pass_vector(), v4(192, 168, 1, 1), MC4).unwrap();
    assert!(check_pass(&a, b"secret\0\0"));
    assert!(!check_pass(&a, b"secreT\0\0"));
    assert!(!check_pass(&a, b"secret\0x"));
    let none = Advert {
        auth: Auth::None,
        ..a.clone()
    };
    assert!(!check_pass(&none, &[0; 8]));
    // keepalived truncates long passwords to 8 bytes.
    assert_eq!(Auth::pass(b"0123456789"), Auth::Pass(*b"01234567"));
}

#[test]
fn password_not_in_debug_output() {
    let a = decode(&v2_pass_vector(), v4(192, 168, 1, 1), MC4).unwrap();
    let dbg = format!("{a:?}");
    assert!(!dbg.contains("115"), "no password bytes: {dbg}");
    assert!(dbg.contains("Pass(<redacted>)"));
}

#[test]
fn decode_errors() {
    let s = v4(192, 168, 1, 1);
    let good = v2_pass_vector();
    assert_eq!(
        decode(&good[..7], s, MC4),
        Err(PacketError::TooShort { len: 7 })
    );

    let mut m = good.clone();
    m[0] = 0x41;
    assert_eq!(decode(&m, s, MC4), Err(PacketError::BadVersion(4)));
    let mut m = good.clone();
    m[0] = 0x22;
    assert_eq!(decode(&m, s, MC4), Err(PacketError::BadType(2)));

    let mut m = good.clone();
    m[3] = 0;
    assert_eq!(decode(&m, s, MC4), Err(PacketError::NoAddresses));
    let mut m = good.clone();
    m[3] = 2;
    assert_eq!(
        decode(&m, s, MC4),
        Err(PacketError::LengthMismatch {
            count: 2,
            expected: 24,
            got: 20
        })
    );
    // Trailing bytes are not accepted either.
    let mut m = good.clone();
    m.push(0);
    assert!(matches!(
        decode(&m, s, MC4),
        Err(PacketError::LengthMismatch { .. })
    ));

    assert_eq!(
        decode(&good, s, v6("ff02::12")),
        Err(PacketError::FamilyMismatch)
    );
    assert_eq!(
        decode(&good, v6("fe80::1"), v6("ff02::12")),
        Err(PacketError::V2NotIpv4)
    );
    // A v3 message with 4-byte addresses arriving over IPv6 has the wrong length.
    assert!(matches!(
        decode(&v3_v4_vector(), v6("fe80::1"), v6("ff02::12")),
        Err(PacketError::LengthMismatch { .. })
    ));

    let mut m = good.clone();
    m[7] ^= 1;
    assert_eq!(
        decode(&m, s, MC4),
        Err(PacketError::BadChecksum {
            got: 0x7b70,
            computed: 0x7b71
        })
    );

    let mut m = good.clone();
    m[4] = 2; // AH
    assert_eq!(
        decode(&seal_v2(m), s, MC4),
        Err(PacketError::BadAuthType(2))
    );

    let mut m = good.clone();
    m[5] = 0;
    assert_eq!(decode(&seal_v2(m), s, MC4), Err(PacketError::ZeroInterval));
    let mut m = v3_v4_vector();
    m[5] = 0;
    let m = seal_v3_v4(m, [10, 0, 0, 1], [224, 0, 0, 18]);
    assert_eq!(
        decode(&m, v4(10, 0, 0, 1), MC4),
        Err(PacketError::ZeroInterval)
    );
}

#[test]
fn encode_errors() {
    let base = Advert {
        version: Version::V3,
        vrid: 1,
        priority: 100,
        interval_cs: 100,
        addrs: vec![v4(10, 0, 0, 100)],
        auth: Auth::None,
    };
    let s = v4(10, 0, 0, 1);
    let enc = |a: &Advert| encode(a, s, MC4);
    let with = |f: &dyn Fn(&mut Advert)| {
        let mut a = base.clone();
        f(&mut a);
        a
    };
    assert_eq!(
        enc(&with(&|a| a.addrs.clear())),
        Err(PacketError::NoAddresses)
    );
    assert_eq!(
        enc(&with(&|a| a.addrs = vec![v4(10, 0, 0, 100); 256])),
        Err(PacketError::TooManyAddresses(256))
    );
    assert_eq!(
        enc(&with(&|a| a.addrs = vec![v6("2001:db8::1")])),
        Err(PacketError::FamilyMismatch)
    );
    assert_eq!(
        encode(&base, s, v6("ff02::12")),
        Err(PacketError::FamilyMismatch)
    );
    assert_eq!(
        enc(&with(&|a| a.interval_cs = 0)),
        Err(PacketError::ZeroInterval)
    );
    assert_eq!(
        enc(&with(&|a| a.interval_cs = 4096)),
        Err(PacketError::V3Interval(4096))
    );
    assert_eq!(
        enc(&with(&|a| a.auth = Auth::pass(b"x"))),
        Err(PacketError::AuthNotV2)
    );
    let v2 = with(&|a| a.version = Version::V2);
    assert_eq!(
        encode(&v2, v6("fe80::1"), v6("ff02::12")).map(|_| ()),
        Err(PacketError::FamilyMismatch) // the v4 VIP does not match an IPv6 source
    );
    let v2_6 = Advert {
        addrs: vec![v6("2001:db8::1")],
        ..v2.clone()
    };
    assert_eq!(
        encode(&v2_6, v6("fe80::1"), v6("ff02::12")),
        Err(PacketError::V2NotIpv4)
    );
    for bad in [150, 25600, 50] {
        let a = Advert {
            interval_cs: bad,
            ..v2.clone()
        };
        assert_eq!(enc(&a), Err(PacketError::V2Interval(bad)));
    }
    assert!(enc(&Advert {
        interval_cs: 25500,
        ..v2
    })
    .is_ok());
}

fn ip_of(v6fam: bool) -> BoxedStrategy<IpAddr> {
    if v6fam {
        any::<[u8; 16]>().prop_map(IpAddr::from).boxed()
    } else {
        any::<[u8; 4]>().prop_map(IpAddr::from).boxed()
    }
}

/// A valid advert with a source and destination of its family.
fn valid() -> impl Strategy<Value = (Advert, IpAddr, IpAddr)> {
    (any::<bool>(), any::<bool>()).prop_flat_map(|(is_v3, v6fam)| {
        let v6fam = is_v3 && v6fam;
        let interval = if is_v3 {
            (1u16..=4095).boxed()
        } else {
            (1u16..=255).prop_map(|s| s * 100).boxed()
        };
        let auth = if is_v3 {
            Just(Auth::None).boxed()
        } else {
            prop_oneof![Just(Auth::None), any::<[u8; 8]>().prop_map(Auth::Pass)].boxed()
        };
        (
            any::<u8>(),
            any::<u8>(),
            interval,
            prop::collection::vec(ip_of(v6fam), 1..20),
            auth,
            ip_of(v6fam),
            ip_of(v6fam),
        )
            .prop_map(
                move |(vrid, priority, interval_cs, addrs, auth, src, dst)| {
                    let version = if is_v3 { Version::V3 } else { Version::V2 };
                    (
                        Advert {
                            version,
                            vrid,
                            priority,
                            interval_cs,
                            addrs,
                            auth,
                        },
                        src,
                        dst,
                    )
                },
            )
    })
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![ip_of(false), ip_of(true)]
}

proptest! {
    #[test]
    fn decode_never_panics(
        first in prop_oneof![Just(0x21u8), Just(0x31u8), any::<u8>()],
        rest in prop::collection::vec(any::<u8>(), 0..120),
        src in any_ip(),
        dst in any_ip(),
    ) {
        let mut buf = vec![first];
        buf.extend(rest);
        let _ = decode(&buf, src, dst);
    }

    #[test]
    fn encode_decode_identity((a, src, dst) in valid()) {
        let bytes = encode(&a, src, dst).unwrap();
        prop_assert_eq!(decode(&bytes, src, dst).unwrap(), a);
    }

    #[test]
    fn single_bit_flip_rejected((a, src, dst) in valid(), bit in any::<prop::sample::Index>()) {
        let mut bytes = encode(&a, src, dst).unwrap();
        let i = bit.index(bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        prop_assert!(decode(&bytes, src, dst).is_err());
    }
}
