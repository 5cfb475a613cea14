//! The management API (`/api/*`), `/health`, `/metrics` and the dashboard on
//! the root domain and on `ten.sock`.
//!
//! Pure request -> action: a handler either answers from the snapshot at once
//! or names the supervisor command whose reply becomes the answer. The
//! event loop owns the sockets; nothing here blocks or does socket I/O.

use crate::state::{Principal, TokenStore};
use crate::supervisor::{Command, Reply, Snapshot};

/// An API request, already read whole (bodies are capped by the loop).
pub struct ApiRequest<'a> {
    pub method: &'a str,
    /// The path without the query string.
    pub path: &'a str,
    /// The query string without `?` (may be empty).
    pub query: &'a str,
    /// The `Authorization` header value, if any.
    pub authorization: Option<&'a [u8]>,
    pub body: &'a [u8],
    /// Came in on `ten.sock`: no token needed, file permissions guard it.
    pub local: bool,
}

/// A complete response to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Extra headers (e.g. WWW-Authenticate, Retry-After).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: &str) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: serde_json::to_vec(&serde_json::json!({ "error": message }))
                .expect("a json object with a string serialises"),
        }
    }

    /// `value` as JSON with `status`.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let mut body = serde_json::to_vec(value).expect("a json value serialises");
        body.push(b'\n');
        Response { status, content_type: "application/json", headers: Vec::new(), body }
    }
}

/// What the loop does with a request.
pub enum Action {
    Respond(Response),
    /// Send `cmd` to the supervisor; turn its reply into the response with
    /// `reply_response(reply, success_status)`.
    Ask { cmd: Command, success_status: u16 },
}

/// One loop's API state: the token store (reloaded when its file changes).
pub struct Api {
    pub tokens: TokenStore,
    pub metrics_public: bool,
}

impl Api {
    /// Handles one request for the management surface. Never blocks.
    pub fn handle(&mut self, req: &ApiRequest<'_>, snap: &Snapshot) -> Action {
        let _ = (req, snap, &self.tokens, self.metrics_public);
        let _: Option<Principal> = None;
        todo!("Api::handle")
    }
}

/// The response for a supervisor reply to an `Action::Ask`.
pub fn reply_response(reply: Reply, success_status: u16) -> Response {
    match reply {
        Reply::Done(value) => Response::json(success_status, &value),
        Reply::Ready(addr) => Response::json(success_status, &serde_json::json!({ "ready": addr.to_string() })),
        Reply::Error { status, message } => Response::error(status, &message),
    }
}
