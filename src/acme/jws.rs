//! The ACME account key and what is signed with it (RFC 8555 section 6.2,
//! RFC 7515/7517/7638): base64url, the public key as a JWK and its
//! thumbprint, flattened JWS with ES256 under `jwk` (new account) or `kid`
//! (everything after), and key authorizations for challenges.
//!
//! Pure apart from the random numbers ring draws for keys and signatures:
//! no files, no network. The key is ECDSA P-256 in PKCS#8, as ring makes it.

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde_json::{json, Value};

/// Standard base64 (RFC 4648 section 4), with padding: PEM bodies.
pub fn base64(data: &[u8]) -> String {
    encode(
        data,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        true,
    )
}

/// base64url without padding (RFC 4648 section 5, RFC 7515 section 2).
pub fn base64url(data: &[u8]) -> String {
    encode(
        data,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        false,
    )
}

fn encode(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// A PEM block of `der` with the given label, lines of 64 characters.
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Why a key could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ECDSA P-256 key: the ACME account's, or a certificate's.
pub struct Key {
    pair: EcdsaKeyPair,
    /// The ASN.1 (DER) signing form of the same key, for X.509 and CSRs.
    asn1: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(P-256)")
    }
}

impl Key {
    /// A new random key.
    pub fn generate() -> Result<Key, KeyError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError("cannot generate an ECDSA P-256 key".into()))?;
        Key::from_pkcs8(doc.as_ref())
    }

    /// The key in `pkcs8` (DER), which must be ECDSA P-256.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Key, KeyError> {
        let rng = SystemRandom::new();
        let read = |alg| {
            EcdsaKeyPair::from_pkcs8(alg, pkcs8, &rng)
                .map_err(|e| KeyError(format!("not an ECDSA P-256 PKCS#8 key: {e}")))
        };
        Ok(Key {
            pair: read(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)?,
            asn1: read(&signature::ECDSA_P256_SHA256_ASN1_SIGNING)?,
            pkcs8: pkcs8.to_vec(),
            rng,
        })
    }

    /// The key as PKCS#8 DER.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public point, uncompressed (0x04, x, y: 65 bytes).
    pub fn public_point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The public key as a JWK (RFC 7518 section 6.2), members in the
    /// lexicographic order the thumbprint needs.
    pub fn jwk(&self) -> Value {
        let point = self.public_point();
        json!({
            "crv": "P-256",
            "kty": "EC",
            "x": base64url(&point[1..33]),
            "y": base64url(&point[33..65]),
        })
    }

    /// The JWK thumbprint (RFC 7638), base64url of its SHA-256.
    pub fn thumbprint(&self) -> String {
        // serde_json writes object members sorted and without spaces,
        // which is the canonical form RFC 7638 asks for.
        let canonical = self.jwk().to_string();
        base64url(&crate::state::sha256::digest(canonical.as_bytes()))
    }

    /// An ES256 signature: r and s, 32 bytes each (RFC 7518 section 3.4).
    pub fn sign_fixed(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.pair
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| KeyError("ECDSA signing failed".into()))
    }

    /// An ecdsa-with-SHA256 signature in DER (X.509, PKCS#10).
    pub fn sign_der(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.asn1
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| KeyError("ECDSA signing failed".into()))
    }

    /// `token.thumbprint` (RFC 8555 section 8.1).
    pub fn key_authorization(&self, token: &str) -> String {
        format!("{token}.{}", self.thumbprint())
    }
}

/// Who signs a request: the key itself (`jwk`, for newAccount) or the
/// account URL (`kid`, for everything else).
#[derive(Debug, Clone, Copy)]
pub enum Signer<'a> {
    Jwk,
    Kid(&'a str),
}

/// A flattened JWS (RFC 7515 section 7.2.2) of `payload` for `url`, as the
/// request body. `payload` None is the empty payload of a POST-as-GET.
pub fn sign(
    key: &Key,
    signer: Signer<'_>,
    nonce: &str,
    url: &str,
    payload: Option<&Value>,
) -> Result<Vec<u8>, KeyError> {
    let mut protected = json!({ "alg": "ES256", "nonce": nonce, "url": url });
    match signer {
        Signer::Jwk => protected["jwk"] = key.jwk(),
        Signer::Kid(kid) => protected["kid"] = json!(kid),
    }
    let protected = base64url(protected.to_string().as_bytes());
    let payload = match payload {
        Some(p) => base64url(p.to_string().as_bytes()),
        None => String::new(),
    };
    let signature = key.sign_fixed(format!("{protected}.{payload}").as_bytes())?;
    let body = json!({
        "protected": protected,
        "payload": payload,
        "signature": base64url(&signature),
    });
    Ok(body.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED};

    #[test]
    fn base64_both_alphabets_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in vectors {
            assert_eq!(base64(plain.as_bytes()), coded);
            assert_eq!(base64url(plain.as_bytes()), coded.trim_end_matches('='));
        }
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    /// RFC 7638 section 3.1 computes over the members in this order; for
    /// an EC key the same rule gives `{"crv","kty","x","y"}`.
    #[test]
    fn thumbprint_is_sha256_of_the_canonical_jwk() {
        let key = Key::generate().expect("key");
        let jwk = key.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().expect("x"),
            jwk["y"].as_str().expect("y")
        );
        assert_eq!(jwk.to_string(), canonical);
        assert_eq!(
            key.thumbprint(),
            base64url(&crate::state::sha256::digest(canonical.as_bytes()))
        );
        assert_eq!(key.thumbprint().len(), 43);
        assert_eq!(
            key.key_authorization("tok"),
            format!("tok.{}", key.thumbprint())
        );
    }

    #[test]
    fn a_key_survives_its_pkcs8_form() {
        let key = Key::generate().expect("key");
        let again = Key::from_pkcs8(key.pkcs8()).expect("read back");
        assert_eq!(key.jwk(), again.jwk());
        assert!(Key::from_pkcs8(b"not a key").is_err());
    }

    fn unb64url(s: &str) -> Vec<u8> {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::new();
        for c in s.bytes() {
            let v = alphabet.iter().position(|&a| a == c).expect("base64url") as u32;
            bits = (bits << 6) | v;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
            }
        }
        out
    }

    #[test]
    fn jws_verifies_with_the_public_key_and_carries_jwk_or_kid() {
        let key = Key::generate().expect("key");
        let body = sign(
            &key,
            Signer::Jwk,
            "n0nce",
            "https://ca.test/new-acct",
            Some(&json!({"termsOfServiceAgreed": true})),
        )
        .expect("sign");
        let jws: Value = serde_json::from_slice(&body).expect("json");
        let protected: Value =
            serde_json::from_slice(&unb64url(jws["protected"].as_str().expect("protected")))
                .expect("protected json");
        assert_eq!(protected["alg"], "ES256");
        assert_eq!(protected["nonce"], "n0nce");
        assert_eq!(protected["url"], "https://ca.test/new-acct");
        assert_eq!(protected["jwk"], key.jwk());
        assert!(protected.get("kid").is_none());
        let payload: Value =
            serde_json::from_slice(&unb64url(jws["payload"].as_str().expect("payload")))
                .expect("payload json");
        assert_eq!(payload["termsOfServiceAgreed"], true);
        let signed = format!(
            "{}.{}",
            jws["protected"].as_str().expect("protected"),
            jws["payload"].as_str().expect("payload")
        );
        let signature = unb64url(jws["signature"].as_str().expect("signature"));
        assert_eq!(signature.len(), 64);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_point())
            .verify(signed.as_bytes(), &signature)
            .expect("the signature verifies");

        // POST-as-GET under kid: empty payload, no jwk.
        let body = sign(&key, Signer::Kid("https://ca.test/acct/1"), "n", "u", None).expect("sign");
        let jws: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(jws["payload"], "");
        let protected: Value =
            serde_json::from_slice(&unb64url(jws["protected"].as_str().expect("protected")))
                .expect("protected json");
        assert_eq!(protected["kid"], "https://ca.test/acct/1");
        assert!(protected.get("jwk").is_none());
    }

    #[test]
    fn der_signatures_verify_too() {
        let key = Key::generate().expect("key");
        let sig = key.sign_der(b"message").expect("sign");
        assert_eq!(sig[0], 0x30);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_point())
            .verify(b"message", &sig)
            .expect("verifies");
    }

    #[test]
    fn pem_lines_are_64_wide() {
        let text = pem("TEST", &[7u8; 100]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN TEST-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last().copied(), Some("-----END TEST-----"));
    }
}
