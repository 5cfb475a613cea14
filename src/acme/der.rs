//! The DER ACME needs written by hand (X.690): the certificate signing
//! request sent at finalize (PKCS#10, RFC 2986, with a subjectAltName
//! extension request), and the self-signed certificate that answers a
//! TLS-ALPN-01 challenge (RFC 8737: the name in subjectAltName and the
//! critical acmeIdentifier extension holding the SHA-256 of the key
//! authorization). Both are ECDSA P-256 with SHA-256.
//!
//! Pure: builds bytes from names and a key. Reading certificates is
//! `certs::x509`'s.

use super::jws::{Key, KeyError};

const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const UTC_TIME: u8 = 0x17;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const BOOLEAN: u8 = 0x01;

/// 1.2.840.10045.2.1 id-ecPublicKey.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// 1.2.840.10045.3.1.7 prime256v1.
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// 1.2.840.10045.4.3.2 ecdsa-with-SHA256.
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
/// 2.5.4.3 commonName.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
/// 2.5.29.17 subjectAltName.
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
/// 1.2.840.113549.1.9.14 extensionRequest (PKCS#9).
const OID_EXTENSION_REQUEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e];
/// 1.3.6.1.5.5.7.1.31 id-pe-acmeIdentifier (RFC 8737 section 6.1).
const OID_ACME_IDENTIFIER: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];

/// One TLV.
fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
    out
}

/// A constructed TLV of the concatenated `parts`.
fn cons(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

/// A non-negative INTEGER from big-endian bytes (leading zeros dropped, a
/// zero byte added when the high bit is set).
fn unsigned(bytes: &[u8]) -> Vec<u8> {
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let mut v = bytes[skip.min(bytes.len().saturating_sub(1))..].to_vec();
    if v.first().is_some_and(|&b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    tlv(INTEGER, &v)
}

fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.push(0);
    v.extend_from_slice(bytes);
    tlv(BIT_STRING, &v)
}

fn algorithm_ecdsa_sha256() -> Vec<u8> {
    cons(SEQUENCE, &[&tlv(OID, OID_ECDSA_SHA256)])
}

/// SubjectPublicKeyInfo of a P-256 key.
fn spki(key: &Key) -> Vec<u8> {
    let alg = cons(
        SEQUENCE,
        &[&tlv(OID, OID_EC_PUBLIC_KEY), &tlv(OID, OID_P256)],
    );
    cons(SEQUENCE, &[&alg, &bit_string(key.public_point())])
}

/// A Name with one commonName (empty when `cn` is None or too long for
/// the 64-character upper bound of RFC 5280).
fn name(cn: Option<&str>) -> Vec<u8> {
    match cn.filter(|cn| cn.len() <= 64) {
        Some(cn) => {
            let atv = cons(
                SEQUENCE,
                &[&tlv(OID, OID_CN), &tlv(UTF8_STRING, cn.as_bytes())],
            );
            cons(SEQUENCE, &[&cons(SET, &[&atv])])
        }
        None => tlv(SEQUENCE, &[]),
    }
}

/// The subjectAltName extension with `names` as dNSNames.
fn san_extension(names: &[String]) -> Vec<u8> {
    let general: Vec<u8> = names.iter().flat_map(|n| tlv(0x82, n.as_bytes())).collect();
    let value = tlv(SEQUENCE, &general);
    cons(SEQUENCE, &[&tlv(OID, OID_SAN), &tlv(OCTET_STRING, &value)])
}

/// `tbs` signed: the outer SEQUENCE of a certificate or a CSR.
fn signed(tbs: Vec<u8>, key: &Key) -> Result<Vec<u8>, KeyError> {
    let sig = key.sign_der(&tbs)?;
    Ok(cons(
        SEQUENCE,
        &[&tbs, &algorithm_ecdsa_sha256(), &bit_string(&sig)],
    ))
}

/// A PKCS#10 request for `names` (the first is also the CN) with `key`.
pub fn csr(names: &[String], key: &Key) -> Result<Vec<u8>, KeyError> {
    let extensions = cons(SEQUENCE, &[&san_extension(names)]);
    let attribute = cons(
        SEQUENCE,
        &[&tlv(OID, OID_EXTENSION_REQUEST), &cons(SET, &[&extensions])],
    );
    let info = cons(
        SEQUENCE,
        &[
            &unsigned(&[0]),
            &name(names.first().map(String::as_str)),
            &spki(key),
            // attributes [0] IMPLICIT SET OF Attribute
            &cons(0xa0, &[&attribute]),
        ],
    );
    signed(info, key)
}

/// The self-signed certificate answering a TLS-ALPN-01 challenge for
/// `domain` (RFC 8737 section 3): valid from a day before `now` (Unix
/// seconds) for a week, with `key`.
pub fn alpn_certificate(
    domain: &str,
    key_authorization: &str,
    key: &Key,
    now: i64,
) -> Result<Vec<u8>, KeyError> {
    let digest = crate::state::sha256::digest(key_authorization.as_bytes());
    let acme_identifier = cons(
        SEQUENCE,
        &[
            &tlv(OID, OID_ACME_IDENTIFIER),
            &tlv(BOOLEAN, &[0xff]),
            &tlv(OCTET_STRING, &tlv(OCTET_STRING, &digest)),
        ],
    );
    let extensions = cons(
        SEQUENCE,
        &[&san_extension(&[domain.to_string()]), &acme_identifier],
    );
    let mut serial = [0u8; 16];
    serial.copy_from_slice(&digest[..16]);
    serial[0] &= 0x7f;
    serial[0] |= 0x40;
    let subject = name(Some(domain));
    let validity = cons(
        SEQUENCE,
        &[
            &tlv(UTC_TIME, utc_time(now - 86_400).as_bytes()),
            &tlv(UTC_TIME, utc_time(now + 7 * 86_400).as_bytes()),
        ],
    );
    let tbs = cons(
        SEQUENCE,
        &[
            &cons(0xa0, &[&unsigned(&[2])]),
            &unsigned(&serial),
            &algorithm_ecdsa_sha256(),
            &subject,
            &validity,
            &subject,
            &spki(key),
            &cons(0xa3, &[&extensions]),
        ],
    );
    signed(tbs, key)
}

/// UTCTime `YYMMDDHHMMSSZ` of Unix seconds (years 1950 to 2049).
fn utc_time(secs: i64) -> String {
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:02}{m:02}{d:02}{:02}{:02}{:02}Z",
        y.rem_euclid(100),
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};

    #[test]
    fn lengths_short_and_long_form() {
        assert_eq!(tlv(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0; 200]);
        assert_eq!(&long[..3], [0x04, 0x81, 200]);
        let longer = tlv(0x04, &[0; 300]);
        assert_eq!(&longer[..4], [0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(unsigned(&[0, 0, 5]), [0x02, 1, 5]);
        assert_eq!(unsigned(&[0x80]), [0x02, 2, 0, 0x80]);
        assert_eq!(unsigned(&[0]), [0x02, 1, 0]);
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc_time(0), "700101000000Z");
        assert_eq!(utc_time(1_709_208_000), "240229120000Z");
        assert_eq!(utc_time(2_524_607_999), "491231235959Z");
    }

    /// Splits a DER SEQUENCE into its elements (one level).
    fn elements(der: &[u8]) -> Vec<Vec<u8>> {
        fn one(buf: &[u8]) -> (usize, usize) {
            let first = buf[1];
            if first < 0x80 {
                (2, usize::from(first))
            } else {
                let n = usize::from(first & 0x7f);
                let len = buf[2..2 + n]
                    .iter()
                    .fold(0usize, |a, &b| (a << 8) | usize::from(b));
                (2 + n, len)
            }
        }
        let (h, len) = one(der);
        let mut body = &der[h..h + len];
        let mut out = Vec::new();
        while !body.is_empty() {
            let (h, len) = one(body);
            out.push(body[..h + len].to_vec());
            body = &body[h + len..];
        }
        out
    }

    #[test]
    fn csr_is_signed_by_its_key_and_asks_for_every_name() {
        let key = Key::generate().expect("key");
        let names = vec!["a.example.test".to_string(), "b.example.test".to_string()];
        let der = csr(&names, &key).expect("csr");
        let parts = elements(&der);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1], algorithm_ecdsa_sha256());
        let sig = &parts[2][3..];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_point())
            .verify(&parts[0], sig)
            .expect("self-signature verifies");
        let info = elements(&parts[0]);
        assert_eq!(info[0], [0x02, 1, 0], "version 1");
        assert!(info[1].windows(14).any(|w| w == b"a.example.test"));
        assert_eq!(info[2], spki(&key));
        for n in &names {
            assert!(info[3].windows(n.len()).any(|w| w == n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn alpn_certificate_reads_back_with_its_name_and_identifier() {
        let key = Key::generate().expect("key");
        let der =
            alpn_certificate("x.example.test", "tok.thumb", &key, 1_800_000_000).expect("cert");
        let info = crate::certs::x509::read(&der).expect("readable");
        assert_eq!(info.names, ["x.example.test"]);
        assert_eq!(info.not_before, 1_800_000_000 - 86_400);
        assert_eq!(info.not_after, 1_800_000_000 + 7 * 86_400);
        let digest = crate::state::sha256::digest(b"tok.thumb");
        let mut want = tlv(OCTET_STRING, &tlv(OCTET_STRING, &digest));
        want.splice(0..0, [0x01, 0x01, 0xff]);
        assert!(der.windows(want.len()).any(|w| w == want.as_slice()));
        assert!(der
            .windows(OID_ACME_IDENTIFIER.len())
            .any(|w| w == OID_ACME_IDENTIFIER));
        // webpki refuses the critical extension it does not know, which
        // is why the handshake serves this one without checking it.
        let provider = rustls::crypto::ring::default_provider();
        let pkcs8 = rustls::pki_types::PrivatePkcs8KeyDer::from(key.pkcs8().to_vec());
        assert!(
            rustls::sign::CertifiedKey::from_der(vec![der.into()], pkcs8.into(), &provider)
                .is_err()
        );
    }
}
