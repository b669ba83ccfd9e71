//! VRRP advertisement codec: v2 (RFC 3768, IPv4 only) and v3 (RFC 5798/9568, IPv4 and IPv6).
//!
//! Works on the VRRP message alone (the IP payload); the shell builds and checks the IP header
//! (protocol [`IPPROTO_VRRP`], TTL/hop limit [`TTL`], TOS [`TOS`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// IPv4 multicast group for advertisements.
pub const MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group for advertisements.
pub const MCAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// TTL / hop limit sent, and required on receipt in multicast mode.
pub const TTL: u8 = 255;
/// IPv4 TOS (DSCP CS6, network control) keepalived sends with.
pub const TOS: u8 = 0xc0;

const TYPE_ADVERTISEMENT: u8 = 1;
const HEADER_LEN: usize = 8;
const V2_AUTH_LEN: usize = 8;
const V3_MAX_INTERVAL_CS: u16 = 0x0fff;

/// Protocol version on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    V2,
    V3,
}

/// v2 authentication. AH (type 2) is not supported; v3 has no authentication.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    /// Simple text password, zero-padded to 8 bytes.
    Pass([u8; 8]),
}

impl Auth {
    /// A PASS authentication from a configured password: truncated to 8 bytes (as keepalived
    /// does) and zero-padded.
    pub fn pass(password: &[u8]) -> Auth {
        let mut data = [0u8; 8];
        let n = password.len().min(8);
        data[..n].copy_from_slice(&password[..n]);
        Auth::Pass(data)
    }
}

// The password must never reach a log line.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Pass(_) => f.write_str("Pass(<redacted>)"),
        }
    }
}

/// One decoded advertisement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// v3: Max Advert Int in centiseconds; v2: the advert interval in seconds × 100.
    pub interval_cs: u16,
    pub addrs: Vec<IpAddr>,
    pub auth: Auth,
}

/// What made a message unacceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("message too short: {len} bytes")]
    TooShort { len: usize },
    #[error("unsupported VRRP version {0}")]
    BadVersion(u8),
    #[error("unsupported VRRP packet type {0} (only 1, ADVERTISEMENT)")]
    BadType(u8),
    #[error("no addresses (count 0)")]
    NoAddresses,
    #[error("too many addresses: {0} (at most 255)")]
    TooManyAddresses(usize),
    #[error("length {got} does not match count {count}: expected {expected} bytes")]
    LengthMismatch {
        count: u8,
        expected: usize,
        got: usize,
    },
    #[error("address family mismatch between source, destination and virtual addresses")]
    FamilyMismatch,
    #[error("VRRP v2 is IPv4 only")]
    V2NotIpv4,
    #[error("bad checksum: got {got:#06x}, computed {computed:#06x}")]
    BadChecksum { got: u16, computed: u16 },
    #[error("unsupported v2 authentication type {0}")]
    BadAuthType(u8),
    #[error("authentication is only carried by VRRP v2")]
    AuthNotV2,
    #[error("advertisement interval is 0")]
    ZeroInterval,
    #[error("v2 interval {0} cs is not a whole number of seconds in 1..=255")]
    V2Interval(u16),
    #[error("v3 interval {0} cs is over 4095")]
    V3Interval(u16),
}

/// One's complement sum of `data` as big-endian 16-bit words (odd byte zero-padded), folded.
fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    fold(acc)
}

fn fold(mut acc: u32) -> u32 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Internet checksum (RFC 1071) of `data` alone: what v2 puts in its checksum field.
pub fn checksum(data: &[u8]) -> u16 {
    !(sum16(0, data) as u16)
}

/// v3 checksum: `data` preceded by the IPv4 or IPv6 pseudo-header (src, dst, length,
/// protocol 112). `None` when src and dst are of different families.
pub fn checksum_pseudo(src: IpAddr, dst: IpAddr, data: &[u8]) -> Option<u16> {
    let mut acc = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ph = [0u8; 12];
            ph[..4].copy_from_slice(&s.octets());
            ph[4..8].copy_from_slice(&d.octets());
            ph[9] = IPPROTO_VRRP;
            ph[10..].copy_from_slice(&(u16::try_from(data.len()).ok()?).to_be_bytes());
            sum16(0, &ph)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut ph = [0u8; 40];
            ph[..16].copy_from_slice(&s.octets());
            ph[16..32].copy_from_slice(&d.octets());
            ph[32..36].copy_from_slice(&(u32::try_from(data.len()).ok()?).to_be_bytes());
            ph[39] = IPPROTO_VRRP;
            sum16(0, &ph)
        }
        _ => return None,
    };
    acc = sum16(acc, data);
    Some(!(acc as u16))
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// Encodes `a` as the VRRP message sent from `src` to `dst`, checksum filled in.
pub fn encode(a: &Advert, src: IpAddr, dst: IpAddr) -> Result<Vec<u8>, PacketError> {
    if !same_family(src, dst) || a.addrs.iter().any(|x| !same_family(*x, src)) {
        return Err(PacketError::FamilyMismatch);
    }
    if a.addrs.is_empty() {
        return Err(PacketError::NoAddresses);
    }
    let count =
        u8::try_from(a.addrs.len()).map_err(|_| PacketError::TooManyAddresses(a.addrs.len()))?;
    if a.interval_cs == 0 {
        return Err(PacketError::ZeroInterval);
    }
    let mut out = Vec::with_capacity(HEADER_LEN + 16 * a.addrs.len() + V2_AUTH_LEN);
    match a.version {
        Version::V2 => {
            if !src.is_ipv4() {
                return Err(PacketError::V2NotIpv4);
            }
            let secs = a.interval_cs / 100;
            if !a.interval_cs.is_multiple_of(100) || secs > 255 {
                return Err(PacketError::V2Interval(a.interval_cs));
            }
            let auth_type = match a.auth {
                Auth::None => 0,
                Auth::Pass(_) => 1,
            };
            out.extend_from_slice(&[
                0x20 | TYPE_ADVERTISEMENT,
                a.vrid,
                a.priority,
                count,
                auth_type,
                secs as u8,
                0,
                0,
            ]);
        }
        Version::V3 => {
            if a.auth != Auth::None {
                return Err(PacketError::AuthNotV2);
            }
            if a.interval_cs > V3_MAX_INTERVAL_CS {
                return Err(PacketError::V3Interval(a.interval_cs));
            }
            let int = a.interval_cs.to_be_bytes();
            out.extend_from_slice(&[
                0x30 | TYPE_ADVERTISEMENT,
                a.vrid,
                a.priority,
                count,
                int[0],
                int[1],
                0,
                0,
            ]);
        }
    }
    for addr in &a.addrs {
        match addr {
            IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
        }
    }
    let sum = match a.version {
        Version::V2 => {
            out.extend_from_slice(&match a.auth {
                Auth::None => [0u8; 8],
                Auth::Pass(p) => p,
            });
            checksum(&out)
        }
        Version::V3 => checksum_pseudo(src, dst, &out).ok_or(PacketError::FamilyMismatch)?,
    };
    out[6..8].copy_from_slice(&sum.to_be_bytes());
    Ok(out)
}

/// Decodes and validates the VRRP message `buf` received from `src` sent to `dst`.
pub fn decode(buf: &[u8], src: IpAddr, dst: IpAddr) -> Result<Advert, PacketError> {
    if buf.len() < HEADER_LEN {
        return Err(PacketError::TooShort { len: buf.len() });
    }
    let version = match buf[0] >> 4 {
        2 => Version::V2,
        3 => Version::V3,
        v => return Err(PacketError::BadVersion(v)),
    };
    if buf[0] & 0x0f != TYPE_ADVERTISEMENT {
        return Err(PacketError::BadType(buf[0] & 0x0f));
    }
    if !same_family(src, dst) {
        return Err(PacketError::FamilyMismatch);
    }
    if version == Version::V2 && !src.is_ipv4() {
        return Err(PacketError::V2NotIpv4);
    }
    let count = buf[3];
    if count == 0 {
        return Err(PacketError::NoAddresses);
    }
    // The address family follows the IP header the message came in.
    let alen = if src.is_ipv4() { 4 } else { 16 };
    let trailer = if version == Version::V2 {
        V2_AUTH_LEN
    } else {
        0
    };
    let expected = HEADER_LEN + alen * usize::from(count) + trailer;
    if buf.len() != expected {
        return Err(PacketError::LengthMismatch {
            count,
            expected,
            got: buf.len(),
        });
    }
    let got = u16::from_be_bytes([buf[6], buf[7]]);
    // Summing a message whose checksum is right gives 0xffff, so the complement is 0.
    let residue = match version {
        Version::V2 => checksum(buf),
        Version::V3 => checksum_pseudo(src, dst, buf).ok_or(PacketError::FamilyMismatch)?,
    };
    if residue != 0 {
        let mut zeroed = buf.to_vec();
        zeroed[6] = 0;
        zeroed[7] = 0;
        let computed = match version {
            Version::V2 => checksum(&zeroed),
            Version::V3 => checksum_pseudo(src, dst, &zeroed).unwrap_or(0),
        };
        return Err(PacketError::BadChecksum { got, computed });
    }
    let (interval_cs, auth) = match version {
        Version::V2 => {
            let auth = match buf[4] {
                0 => Auth::None,
                1 => {
                    let mut p = [0u8; 8];
                    p.copy_from_slice(&buf[expected - V2_AUTH_LEN..]);
                    Auth::Pass(p)
                }
                t => return Err(PacketError::BadAuthType(t)),
            };
            (u16::from(buf[5]) * 100, auth)
        }
        // The top 4 bits are reserved: ignored on receipt.
        Version::V3 => (
            u16::from_be_bytes([buf[4], buf[5]]) & V3_MAX_INTERVAL_CS,
            Auth::None,
        ),
    };
    if interval_cs == 0 {
        return Err(PacketError::ZeroInterval);
    }
    let addrs = buf[HEADER_LEN..HEADER_LEN + alen * usize::from(count)]
        .chunks_exact(alen)
        .map(|c| match <[u8; 4]>::try_from(c) {
            Ok(b) => IpAddr::from(b),
            Err(_) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(c);
                IpAddr::from(b)
            }
        })
        .collect();
    Ok(Advert {
        version,
        vrid: buf[1],
        priority: buf[2],
        interval_cs,
        addrs,
        auth,
    })
}

/// Whether `a` carries PASS authentication equal to `expected`, compared in constant time.
pub fn check_pass(a: &Advert, expected: &[u8; 8]) -> bool {
    match &a.auth {
        Auth::Pass(got) => {
            let diff = got
                .iter()
                .zip(expected.iter())
                .fold(0u8, |d, (x, y)| d | (x ^ y));
            // black_box keeps the compiler from turning the fold into an early exit.
            std::hint::black_box(diff) == 0
        }
        Auth::None => false,
    }
}
