//! `trusted_proxies` entries: an address or a CIDR block, IPv4 or IPv6, and
//! whether a peer address falls inside one. Pure: no I/O; owns nothing else.

use std::fmt;
use std::net::IpAddr;

/// A block of addresses: `10.0.0.0/8`, `fd00::/8`, or one address (`/32`, `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    base: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR` or `ADDR/PREFIX`. An IPv4-mapped IPv6 address is taken as
    /// the IPv4 one. Bits set past the prefix are refused (`10.0.0.1/8` is
    /// more likely a typo than a wish for `10.0.0.0/8`).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let base: IpAddr = addr
            .parse::<IpAddr>()
            .map_err(|_| format!("{text:?} is not an IP address or a CIDR block such as \"10.0.0.0/8\" or \"::1\""))?
            .to_canonical();
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{text:?}: the prefix length must be 0 to {max}")),
            },
        };
        let cidr = Cidr { base, prefix };
        if cidr.masked(base) != base {
            return Err(format!(
                "{text:?} has bits set past /{prefix}; the block is {}",
                Cidr {
                    base: cidr.masked(base),
                    prefix
                }
            ));
        }
        Ok(cidr)
    }

    /// Whether `ip` is inside the block (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.base.is_ipv4() && self.masked(ip) == self.base
    }

    /// `ip` with the bits past the prefix cleared (same family as `ip`).
    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// Whether any block in `list` holds `ip`.
pub fn any_contains(list: &[Cidr], ip: IpAddr) -> bool {
    list.iter().any(|c| c.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_and_single_addresses_hold_what_they_should() {
        let list: Vec<Cidr> = ["10.0.0.0/8", "::1", "fd00::/8", "192.0.2.7"]
            .iter()
            .map(|s| Cidr::parse(s).unwrap())
            .collect();
        for inside in ["10.1.2.3", "::1", "fd12::1", "192.0.2.7", "::ffff:10.9.9.9"] {
            assert!(any_contains(&list, ip(inside)), "{inside}");
        }
        for outside in ["11.0.0.1", "127.0.0.1", "fe80::1", "192.0.2.8", "::2"] {
            assert!(!any_contains(&list, ip(outside)), "{outside}");
        }
        assert!(!any_contains(&[], ip("127.0.0.1")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.1")) && !all.contains(ip("2001:db8::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        assert_eq!(
            Cidr::parse("::ffff:127.0.0.1").unwrap().to_string(),
            "127.0.0.1/32"
        );
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        let e = Cidr::parse("10.0.0.1/8").unwrap_err();
        assert!(e.contains("the block is 10.0.0.0/8"), "{e}");
        let e = Cidr::parse("10.0.0.0/33").unwrap_err();
        assert!(e.contains("0 to 32"), "{e}");
        let e = Cidr::parse("fd00::/129").unwrap_err();
        assert!(e.contains("0 to 128"), "{e}");
        for bad in ["localhost", "", "10.0.0.0/", "10.0.0.0/x", "1.2.3"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
