//! Port allocation: the lowest port of `settings.port_range` that no other
//! instance holds and that the kernel lets us bind on 127.0.0.1 right now
//! (another program on the box may be using it).

use std::net::{Ipv4Addr, TcpListener};

/// Picks the lowest port in `range` (inclusive) that is not `used` and for
/// which `free` says yes. Pure when both are; None when the range is
/// exhausted.
pub fn pick(
    range: (u16, u16),
    used: impl Fn(u16) -> bool,
    mut free: impl FnMut(u16) -> bool,
) -> Option<u16> {
    let (lo, hi) = range;
    if lo > hi {
        return None;
    }
    (lo..=hi).find(|p| *p != 0 && !used(*p) && free(*p))
}

/// Whether a test bind of 127.0.0.1:port succeeds. The listener is closed
/// at once; std sets SO_REUSEADDR, so no TIME_WAIT is left in the way.
pub fn bindable(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn lowest_free_port_skips_used_and_busy() {
        let used: HashSet<u16> = [30000, 30002].into();
        assert_eq!(
            pick((30000, 30010), |p| used.contains(&p), |p| p != 30001),
            Some(30003)
        );
        assert_eq!(pick((30000, 30010), |_| false, |_| true), Some(30000));
    }

    #[test]
    fn exhausted_range_is_none() {
        let used: HashSet<u16> = [30000, 30001].into();
        assert_eq!(pick((30000, 30001), |p| used.contains(&p), |_| true), None);
        assert_eq!(pick((30005, 30001), |_| false, |_| true), None);
        assert_eq!(pick((65535, 65535), |_| false, |_| true), Some(65535));
    }

    #[test]
    fn a_bound_port_is_not_bindable() {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(!bindable(port));
        assert_eq!(pick((port, port), |_| false, bindable), None);
    }
}
