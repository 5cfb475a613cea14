//! Who is asking and what they may touch: the bearer token (or `ten.sock`)
//! to a `Principal`, and the 403s for tenant tokens that reach past their
//! own instances. The token store itself lives in `state::tokens`.

use super::{Answer, Api, ApiRequest, Response};
use crate::state::Principal;
use crate::supervisor::InstanceView;

impl Api {
    /// Who is asking: admin on `ten.sock`, else whoever the bearer token
    /// belongs to. Err: 401 with `WWW-Authenticate: Bearer`.
    pub(super) fn authenticate(&mut self, req: &ApiRequest<'_>) -> Answer<Principal> {
        if req.local {
            return Ok(Principal::Admin);
        }
        let unauthorized = |message: &str| {
            Response::error(401, message).with_header("WWW-Authenticate", "Bearer".to_string())
        };
        let Some(raw) = req.authorization else {
            return Err(unauthorized(
                "missing token: send Authorization: Bearer TOKEN",
            ));
        };
        let Some(token) = bearer(raw) else {
            return Err(unauthorized(
                "malformed Authorization header: expected Bearer TOKEN",
            ));
        };
        self.tokens
            .verify(token)
            .ok_or_else(|| unauthorized("invalid token"))
    }
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
