//! Who is asking and what they may touch: the bearer token (or `ten.sock`)
//! to a `Principal`, the 429 for an address that failed too often
//! (`throttle.rs` keeps the count), and the 403s for tenant tokens that
//! reach past their own instances. The token store itself lives in
//! `state::tokens`.

use std::time::{Duration, Instant};

use super::throttle::{LIMIT, WINDOW};
use super::{Answer, Api, ApiRequest, Response};
use crate::state::Principal;
use crate::supervisor::InstanceView;

impl Api {
    /// Who is asking: admin on `ten.sock`, else whoever the bearer token
    /// belongs to. Err: 401 with `WWW-Authenticate: Bearer`, or 429 with
    /// `Retry-After` while the client's address has `LIMIT` failed
    /// authentications (a wrong or malformed token; a missing one does not
    /// count) within `WINDOW`. `ten.sock` is never slowed.
    ///
    /// Ok: who, and the id of the token that said so (None on `ten.sock`).
    pub(super) fn authenticate(
        &mut self,
        req: &ApiRequest<'_>,
    ) -> Answer<(Principal, Option<String>)> {
        if req.local {
            return Ok((Principal::Admin, None));
        }
        let client = req.client;
        let now = Instant::now();
        if let Some(wait) = self.throttle.blocked(client, now) {
            return Err(too_many(wait));
        }
        let unauthorized = |message: &str| {
            Response::error(401, message).with_header("WWW-Authenticate", "Bearer".to_string())
        };
        let Some(raw) = req.authorization else {
            return Err(unauthorized(
                "missing token: send Authorization: Bearer TOKEN",
            ));
        };
        let verified = bearer(raw).map(|token| self.tokens.verify_with_id(token));
        match verified {
            Some(Some((who, id))) => Ok((who, Some(id))),
            failed => {
                if self.throttle.fail(client, now) {
                    warn!(
                        "front",
                        "{LIMIT} failed authentications from {client} within {}s; \
                         answering 429 until they are {}s old",
                        WINDOW.as_secs(),
                        WINDOW.as_secs()
                    );
                }
                Err(unauthorized(match failed {
                    None => "malformed Authorization header: expected Bearer TOKEN",
                    Some(_) => "invalid token",
                }))
            }
        }
    }
}

/// 429 with `Retry-After` in whole seconds, rounded up.
fn too_many(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    Response::error(
        429,
        &format!(
            "too many failed authentications from this address ({LIMIT} within {}s); \
             retry in {secs}s",
            WINDOW.as_secs()
        ),
    )
    .with_header("Retry-After", secs.to_string())
}

/// The token from `Bearer TOKEN` (scheme case-insensitive, RFC 9110
/// section 11.1). None: another scheme, or no token.
fn bearer(raw: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(raw).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether `who` may see `view` in lists and logs.
pub(super) fn may_see(who: &Principal, view: &InstanceView) -> bool {
    match who {
        Principal::Admin => true,
        Principal::Tenant(t) => view.id == *t,
    }
}

/// 403 for a tenant token on an admin-only endpoint.
pub(super) fn admin_only(who: &Principal) -> Answer<()> {
    match who {
        Principal::Admin => Ok(()),
        Principal::Tenant(t) => Err(Response::error(
            403,
            &format!(
                "this needs an admin token; the token of tenant `{t}` may only list, check, \
                 restart and read logs and storage of its own instances"
            ),
        )),
    }
}

/// 403 for a tenant token naming an instance id not its own. Says nothing
/// about whether that instance exists.
pub(super) fn not_yours(tenant: &str, what: &str) -> Response {
    Response::error(
        403,
        &format!("the token of tenant `{tenant}` may not act on `{what}`"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let r = too_many(Duration::from_millis(5200));
        assert_eq!(r.status, 429);
        assert!(r.headers.contains(&("Retry-After", "6".to_string())));
        let r = too_many(Duration::from_millis(1));
        assert!(r.headers.contains(&("Retry-After", "1".to_string())));
    }
}
