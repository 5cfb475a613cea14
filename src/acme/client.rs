//! The ACME protocol (RFC 8555) over `https`: the directory, nonces, the
//! account (created or found again by its key), and one certificate from
//! new-order through authorizations, the challenge, finalize and download.
//!
//! Blocking; runs on the ACME thread only. Every wait is bounded (polls
//! count and sleep, requests time out). The challenge answer itself is put
//! where the front finds it by a `Challenger` (see `shared`); this file
//! never touches the front or the disk.

use std::time::Duration;

use serde_json::{json, Value};

use super::der;
use super::https::{Client, Response};
use super::jws::{self, Key, Signer};

/// Polls of an authorization or an order before giving up.
const POLLS: u32 = 60;
/// Wait between polls when the server says nothing (and the cap on what it says).
const POLL_WAIT: Duration = Duration::from_secs(1);
const POLL_WAIT_MAX: Duration = Duration::from_secs(10);
/// Fresh nonces tried when the server answers badNonce.
const NONCE_RETRIES: u32 = 5;

/// Why an ACME step failed: the words to log and show in `GET /api/tls`,
/// with the server's problem document (RFC 7807) when it sent one.
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeError {
    pub message: String,
    /// The problem document as the server sent it.
    pub problem: Option<Value>,
    /// The server's `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
    /// A `rateLimited` problem: the CA says to slow down.
    pub rate_limited: bool,
}

impl AcmeError {
    fn new(message: impl Into<String>) -> AcmeError {
        AcmeError {
            message: message.into(),
            problem: None,
            retry_after: None,
            rate_limited: false,
        }
    }

    /// An error response to `what`, with its problem document if any.
    fn from_response(what: &str, resp: &Response) -> AcmeError {
        let problem: Option<Value> = serde_json::from_slice(&resp.body).ok();
        let kind = problem
            .as_ref()
            .and_then(|p| p["type"].as_str())
            .unwrap_or_default()
            .to_string();
        let mut message = format!("{what}: {}", resp.status);
        if let Some(p) = &problem {
            message.push_str(&format!(" {p}"));
        } else if !resp.body.is_empty() {
            let text = String::from_utf8_lossy(&resp.body);
            message.push_str(&format!(" {}", text.chars().take(300).collect::<String>()));
        }
        AcmeError {
            message,
            problem,
            retry_after: resp
                .header("retry-after")
                .and_then(|v| v.trim().parse().ok()),
            rate_limited: kind.ends_with(":rateLimited") || resp.status == 429,
        }
    }
}

impl std::fmt::Display for AcmeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Puts a challenge's answer where the validation server will find it,
/// and takes it away afterwards.
pub trait Challenger {
    /// `"http-01"` or `"tls-alpn-01"`.
    fn kind(&self) -> &'static str;
    fn publish(&self, name: &str, token: &str, key_authorization: &str) -> Result<(), String>;
    fn withdraw(&self, name: &str, token: &str);
}

/// The URLs of the server's directory we use.
#[derive(Debug, Clone)]
struct Directory {
    new_nonce: String,
    new_account: String,
    new_order: String,
}

/// A certificate as downloaded: the PEM chain and its key.
pub struct Certificate {
    pub chain_pem: String,
    pub key: Key,
}

/// An account at one ACME server.
pub struct Account {
    http: Client,
    dir: Directory,
    key: Key,
    kid: String,
    nonce: Option<String>,
}

impl Account {
    /// Reads the directory and registers `key` (RFC 8555 section 7.3: a key
    /// already registered gets its existing account back).
    pub fn open(
        http: Client,
        directory: &str,
        key: Key,
        email: Option<&str>,
    ) -> Result<Account, AcmeError> {
        let resp = http
            .request("GET", directory, None)
            .map_err(AcmeError::new)?;
        if resp.status != 200 {
            return Err(AcmeError::from_response(&format!("GET {directory}"), &resp));
        }
        let dir: Value = serde_json::from_slice(&resp.body)
            .map_err(|e| AcmeError::new(format!("{directory}: not a JSON directory: {e}")))?;
        let url = |name: &str| {
            dir[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| AcmeError::new(format!("{directory}: the directory has no {name}")))
        };
        let dir = Directory {
            new_nonce: url("newNonce")?,
            new_account: url("newAccount")?,
            new_order: url("newOrder")?,
        };
        let mut account = Account {
            http,
            dir,
            key,
            kid: String::new(),
            nonce: None,
        };
        let mut payload = json!({ "termsOfServiceAgreed": true });
        if let Some(email) = email {
            payload["contact"] = json!([format!("mailto:{email}")]);
        }
        let url = account.dir.new_account.clone();
        let resp = account.post_with(&url, Some(&payload), true)?;
        if !matches!(resp.status, 200 | 201) {
            return Err(AcmeError::from_response("newAccount", &resp));
        }
        account.kid = resp
            .header("location")
            .ok_or_else(|| AcmeError::new("newAccount: no Location (account URL) in the answer"))?
            .to_string();
        Ok(account)
    }

    /// A nonce: the last one the server sent, or a fresh one.
    fn nonce(&mut self) -> Result<String, AcmeError> {
        if let Some(n) = self.nonce.take() {
            return Ok(n);
        }
        let resp = self
            .http
            .request("HEAD", &self.dir.new_nonce, None)
            .map_err(AcmeError::new)?;
        resp.header("replay-nonce")
            .map(str::to_string)
            .ok_or_else(|| AcmeError::new("newNonce: no Replay-Nonce in the answer"))
    }

    /// A signed POST (None: POST-as-GET) under the account's kid.
    fn post(&mut self, url: &str, payload: Option<&Value>) -> Result<Response, AcmeError> {
        self.post_with(url, payload, false)
    }

    fn post_with(
        &mut self,
        url: &str,
        payload: Option<&Value>,
        jwk: bool,
    ) -> Result<Response, AcmeError> {
        let mut tries = 0;
        loop {
            let nonce = self.nonce()?;
            let signer = if jwk {
                Signer::Jwk
            } else {
                Signer::Kid(&self.kid)
            };
            let body = jws::sign(&self.key, signer, &nonce, url, payload)
                .map_err(|e| AcmeError::new(e.0))?;
            let resp = self
                .http
                .request("POST", url, Some(&body))
                .map_err(AcmeError::new)?;
            self.nonce = resp.header("replay-nonce").map(str::to_string);
            let bad_nonce = resp.status == 400
                && serde_json::from_slice::<Value>(&resp.body)
                    .ok()
                    .and_then(|p| p["type"].as_str().map(|t| t.ends_with(":badNonce")))
                    .unwrap_or(false);
            tries += 1;
            if bad_nonce && tries < NONCE_RETRIES {
                continue;
            }
            return Ok(resp);
        }
    }

    /// POST-as-GET of `url` as JSON, which must answer 200.
    fn fetch(&mut self, url: &str, what: &str) -> Result<(Value, Response), AcmeError> {
        let resp = self.post(url, None)?;
        if resp.status != 200 {
            return Err(AcmeError::from_response(what, &resp));
        }
        let value = serde_json::from_slice(&resp.body)
            .map_err(|e| AcmeError::new(format!("{what}: not JSON: {e}")))?;
        Ok((value, resp))
    }

    /// Orders, validates and downloads one certificate for `name`.
    pub fn issue(
        &mut self,
        name: &str,
        challenger: &dyn Challenger,
    ) -> Result<Certificate, AcmeError> {
        let order_req = json!({ "identifiers": [{ "type": "dns", "value": name }] });
        let new_order = self.dir.new_order.clone();
        let resp = self.post(&new_order, Some(&order_req))?;
        if resp.status != 201 {
            return Err(AcmeError::from_response("newOrder", &resp));
        }
        let order_url = resp
            .header("location")
            .ok_or_else(|| AcmeError::new("newOrder: no Location (order URL) in the answer"))?
            .to_string();
        let order: Value = serde_json::from_slice(&resp.body)
            .map_err(|e| AcmeError::new(format!("newOrder: not JSON: {e}")))?;
        let authorizations: Vec<String> = order["authorizations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for authz in &authorizations {
            self.authorize(authz, challenger)?;
        }
        let finalize = order["finalize"]
            .as_str()
            .ok_or_else(|| AcmeError::new("newOrder: no finalize URL"))?
            .to_string();
        let key = Key::generate().map_err(|e| AcmeError::new(e.0))?;
        let csr = der::csr(&[name.to_string()], &key).map_err(|e| AcmeError::new(e.0))?;
        let resp = self.post(&finalize, Some(&json!({ "csr": jws::base64url(&csr) })))?;
        if resp.status != 200 {
            return Err(AcmeError::from_response("finalize", &resp));
        }
        let order = self.poll(
            &order_url,
            "order",
            &["valid"],
            &["pending", "ready", "processing"],
        )?;
        let cert_url = order["certificate"]
            .as_str()
            .ok_or_else(|| AcmeError::new("order: valid without a certificate URL"))?
            .to_string();
        let resp = self.post(&cert_url, None)?;
        if resp.status != 200 {
            return Err(AcmeError::from_response("certificate download", &resp));
        }
        let chain_pem = String::from_utf8(resp.body)
            .map_err(|_| AcmeError::new("certificate download: not PEM text"))?;
        if !chain_pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(AcmeError::new("certificate download: no CERTIFICATE block"));
        }
        Ok(Certificate { chain_pem, key })
    }

    /// Proves control of one authorization's identifier, unless it is
    /// already valid.
    fn authorize(&mut self, url: &str, challenger: &dyn Challenger) -> Result<(), AcmeError> {
        let (authz, _) = self.fetch(url, "authorization")?;
        if authz["status"] == "valid" {
            return Ok(());
        }
        let name = authz["identifier"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = challenger.kind();
        let challenge = authz["challenges"]
            .as_array()
            .and_then(|list| list.iter().find(|c| c["type"] == kind))
            .ok_or_else(|| {
                AcmeError::new(format!(
                    "authorization for {name}: the server offers no {kind} challenge"
                ))
            })?;
        let token = challenge["token"].as_str().unwrap_or_default().to_string();
        let challenge_url = challenge["url"].as_str().unwrap_or_default().to_string();
        if token.is_empty()
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AcmeError::new(format!(
                "authorization for {name}: bad challenge token {token:?}"
            )));
        }
        let key_authorization = self.key.key_authorization(&token);
        challenger
            .publish(&name, &token, &key_authorization)
            .map_err(AcmeError::new)?;
        let result = self.respond_and_wait(url, &challenge_url, &name);
        challenger.withdraw(&name, &token);
        result
    }

    fn respond_and_wait(
        &mut self,
        authz: &str,
        challenge: &str,
        name: &str,
    ) -> Result<(), AcmeError> {
        let resp = self.post(challenge, Some(&json!({})))?;
        if resp.status != 200 {
            return Err(AcmeError::from_response("challenge", &resp));
        }
        match self.poll(
            authz,
            "authorization",
            &["valid"],
            &["pending", "processing"],
        ) {
            Ok(_) => Ok(()),
            Err(mut e) => {
                e.message = format!("{name}: {}", e.message);
                Err(e)
            }
        }
    }

    /// Polls `url` until its status is one of `done`; a status outside
    /// `waiting` is an error carrying the object's problem.
    fn poll(
        &mut self,
        url: &str,
        what: &str,
        done: &[&str],
        waiting: &[&str],
    ) -> Result<Value, AcmeError> {
        for _ in 0..POLLS {
            let (value, resp) = self.fetch(url, what)?;
            let status = value["status"].as_str().unwrap_or_default();
            if done.contains(&status) {
                return Ok(value);
            }
            if !waiting.contains(&status) {
                // The reason is in the object's `error`, or in a challenge's.
                let problem = value.get("error").cloned().or_else(|| {
                    value["challenges"]
                        .as_array()
                        .and_then(|cs| cs.iter().find_map(|c| c.get("error").cloned()))
                });
                return Err(AcmeError {
                    message: match &problem {
                        Some(p) => format!("{what} is {status}: {p}"),
                        None => format!("{what} is {status}"),
                    },
                    rate_limited: false,
                    retry_after: None,
                    problem,
                });
            }
            let wait = resp
                .header("retry-after")
                .and_then(|v| v.trim().parse().ok())
                .map_or(POLL_WAIT, Duration::from_secs)
                .min(POLL_WAIT_MAX);
            std::thread::sleep(wait);
        }
        Err(AcmeError::new(format!(
            "{what} still not done after {POLLS} polls"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn problems_keep_the_document_retry_after_and_rate_limits() {
        let e = AcmeError::from_response(
            "newOrder",
            &response(
                429,
                &[("retry-after", "3600")],
                r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates"}"#,
            ),
        );
        assert!(e.rate_limited);
        assert_eq!(e.retry_after, Some(3600));
        assert!(e.message.contains("too many certificates"), "{}", e.message);
        assert_eq!(
            e.problem.expect("problem")["detail"],
            "too many certificates"
        );

        let e = AcmeError::from_response(
            "finalize",
            &response(
                403,
                &[],
                r#"{"type":"urn:ietf:params:acme:error:unauthorized"}"#,
            ),
        );
        assert!(!e.rate_limited);
        assert_eq!(e.retry_after, None);
        assert!(e.message.starts_with("finalize: 403"), "{}", e.message);

        let e = AcmeError::from_response("directory", &response(502, &[], "<html>bad gateway"));
        assert!(e.problem.is_none());
        assert!(e.message.contains("bad gateway"), "{}", e.message);
    }
}
