//! A minimal DER reader for X.509 certificates (RFC 5280): the DNS names
//! a certificate is for (subjectAltName dNSNames, else the subject's CN),
//! its issuer and its validity, for choosing certificates by name, for
//! `GET /api/tls` and the expiry metric, and for ACME renewals.
//!
//! Pure: reads a byte slice, nothing else. It checks no signature and
//! trusts nothing; rustls and the client do the verifying.

/// What we read from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// dNSNames of the subjectAltName extension, lowercased; the subject's
    /// CN when there is no such extension; may be empty.
    pub names: Vec<String>,
    /// The issuer as `CN=..., O=...` (the attributes we know, in order).
    pub issuer: String,
    /// notBefore, in seconds since the Unix epoch.
    pub not_before: i64,
    /// notAfter, in seconds since the Unix epoch.
    pub not_after: i64,
}

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerError(pub &'static str);

impl std::fmt::Display for DerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a readable X.509 certificate: {}", self.0)
    }
}

impl std::error::Error for DerError {}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version`.
const VERSION: u8 = 0xa0;
/// `[3] EXPLICIT Extensions`.
const EXTENSIONS: u8 = 0xa3;
/// GeneralName `[2] IMPLICIT IA5String` (dNSName).
const DNS_NAME: u8 = 0x82;

/// 2.5.29.17, subjectAltName.
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
/// 2.5.4.3, commonName.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
/// 2.5.4.10, organizationName.
const OID_O: &[u8] = &[0x55, 0x04, 0x0a];

/// One TLV off the front of `buf`: (tag, value, rest). Only definite
/// lengths, as DER requires.
fn tlv(buf: &[u8]) -> Result<(u8, &[u8], &[u8]), DerError> {
    let (&tag, rest) = buf.split_first().ok_or(DerError("truncated"))?;
    let (&first, mut rest) = rest.split_first().ok_or(DerError("truncated"))?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err(DerError("bad length"));
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        rest = &rest[count..];
        len
    };
    if rest.len() < len {
        return Err(DerError("truncated"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The value of the TLV at the front of `buf`, which must have `tag`.
fn expect<'a>(
    buf: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), DerError> {
    let (t, value, rest) = tlv(buf)?;
    if t != tag {
        return Err(DerError(what));
    }
    Ok((value, rest))
}

/// Reads `cert`, one DER certificate.
pub fn read(cert: &[u8]) -> Result<Info, DerError> {
    let (certificate, _) = expect(cert, SEQUENCE, "no Certificate sequence")?;
    let (tbs, _) = expect(certificate, SEQUENCE, "no TBSCertificate sequence")?;
    let mut rest = tbs;
    let (tag, _, after) = tlv(rest)?;
    if tag == VERSION {
        rest = after;
    }
    let (_, _serial, after) = tlv(rest)?;
    let (_signature, after) = expect(after, SEQUENCE, "no signature algorithm")?;
    let (issuer, after) = expect(after, SEQUENCE, "no issuer")?;
    let (validity, after) = expect(after, SEQUENCE, "no validity")?;
    let (subject, mut after) = expect(after, SEQUENCE, "no subject")?;
    let (_spki, rest) = expect(after, SEQUENCE, "no public key")?;
    after = rest;

    let (time_tag, not_before, rest) = tlv(validity)?;
    let not_before = time(time_tag, not_before)?;
    let (time_tag, not_after, _) = tlv(rest)?;
    let not_after = time(time_tag, not_after)?;

    let mut names = Vec::new();
    while !after.is_empty() {
        let (tag, value, rest) = tlv(after)?;
        after = rest;
        if tag == EXTENSIONS {
            names = san_names(value)?;
        }
    }
    if names.is_empty() {
        if let Some(cn) = attribute(subject, OID_CN)? {
            names.push(cn.to_ascii_lowercase());
        }
    }
    let mut parts = Vec::new();
    for (label, oid) in [("CN", OID_CN), ("O", OID_O)] {
        if let Some(value) = attribute(issuer, oid)? {
            parts.push(format!("{label}={value}"));
        }
    }
    Ok(Info {
        names,
        issuer: parts.join(", "),
        not_before,
        not_after,
    })
}

/// The dNSNames of the subjectAltName in `Extensions` (a SEQUENCE).
fn san_names(explicit: &[u8]) -> Result<Vec<String>, DerError> {
    let (mut list, _) = expect(explicit, SEQUENCE, "bad extensions")?;
    while !list.is_empty() {
        let (ext, rest) = expect(list, SEQUENCE, "bad extension")?;
        list = rest;
        let (oid, mut body) = expect(ext, OID, "extension without an id")?;
        if oid != OID_SAN {
            continue;
        }
        let (tag, _, after) = tlv(body)?;
        if tag == BOOLEAN {
            body = after;
        }
        let (octets, _) = expect(body, OCTET_STRING, "bad extension value")?;
        let (mut general, _) = expect(octets, SEQUENCE, "bad subjectAltName")?;
        let mut names = Vec::new();
        while !general.is_empty() {
            let (tag, value, rest) = tlv(general)?;
            general = rest;
            if tag == DNS_NAME {
                let name = std::str::from_utf8(value).map_err(|_| DerError("bad dNSName"))?;
                names.push(name.to_ascii_lowercase());
            }
        }
        return Ok(names);
    }
    Ok(Vec::new())
}

/// The first value of attribute `oid` in a Name, as text.
fn attribute<'a>(name: &'a [u8], oid: &[u8]) -> Result<Option<&'a str>, DerError> {
    let mut rdns = name;
    while !rdns.is_empty() {
        let (set, rest) = expect(rdns, SET, "bad name")?;
        rdns = rest;
        let mut atvs = set;
        while !atvs.is_empty() {
            let (atv, rest) = expect(atvs, SEQUENCE, "bad name attribute")?;
            atvs = rest;
            let (kind, value) = expect(atv, OID, "bad name attribute")?;
            if kind == oid {
                // PrintableString, UTF8String, IA5String and T61String all
                // carry ASCII for the names we show.
                let (_, text, _) = tlv(value)?;
                return Ok(std::str::from_utf8(text).ok());
            }
        }
    }
    Ok(None)
}

/// UTCTime (`YYMMDDHHMMSSZ`, RFC 5280 4.1.2.5.1: YY < 50 is 20YY) or
/// GeneralizedTime (`YYYYMMDDHHMMSSZ`) to Unix seconds.
fn time(tag: u8, value: &[u8]) -> Result<i64, DerError> {
    let digits = |s: &[u8]| -> Result<i64, DerError> {
        s.iter().try_fold(0i64, |acc, &b| {
            if b.is_ascii_digit() {
                Ok(acc * 10 + i64::from(b - b'0'))
            } else {
                Err(DerError("bad time"))
            }
        })
    };
    let (year, rest) = match (tag, value.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(&value[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &value[2..])
        }
        (GENERALIZED_TIME, 15) => (digits(&value[..4])?, &value[4..]),
        _ => return Err(DerError("bad time")),
    };
    if rest[10] != b'Z' {
        return Err(DerError("bad time"));
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let (h, m, s) = (
        digits(&rest[4..6])?,
        digits(&rest[6..8])?,
        digits(&rest[8..10])?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return Err(DerError("bad time"));
    }
    Ok(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    /// `openssl req -x509 -newkey ec ... -subj "/O=Test Org/CN=Test CA One"
    /// -addext "subjectAltName=DNS:example.org,DNS:*.example.org,IP:127.0.0.1"`;
    /// notAfter=Jan 1 04:56:58 2027 GMT.
    const WITH_SAN: &str = "-----BEGIN CERTIFICATE-----
MIIB1DCCAXugAwIBAgIUeIpGKn7h7KWxYZZW687GG5+I88wwCgYIKoZIzj0EAwIw
KTERMA8GA1UECgwIVGVzdCBPcmcxFDASBgNVBAMMC1Rlc3QgQ0EgT25lMB4XDTI2
MTIwMjA0NTY1OFoXDTI3MDEwMTA0NTY1OFowKTERMA8GA1UECgwIVGVzdCBPcmcx
FDASBgNVBAMMC1Rlc3QgQ0EgT25lMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
+Tf9Pfzahkc7eEoAXt58jRr4uYO7JvC58xJQU/9KsPaL7v237u2ijb9Bne8LLqCz
WKLXkP25tT+8M+0I8hcp/qOBgDB+MB0GA1UdDgQWBBQRkn2fDUo0V7yAfAfRwR2/
hMwx+DAfBgNVHSMEGDAWgBQRkn2fDUo0V7yAfAfRwR2/hMwx+DAPBgNVHRMBAf8E
BTADAQH/MCsGA1UdEQQkMCKCC2V4YW1wbGUub3Jngg0qLmV4YW1wbGUub3JnhwR/
AAABMAoGCCqGSM49BAMCA0cAMEQCIAtl99yJBJOOJKUhILruIkWrIXSoXBpYswld
00LozcYvAiAt+gf1hnShW+dklbn0JewKPp30GrRSWcu4AqFwY1gORA==
-----END CERTIFICATE-----
";

    /// `-subj "/CN=only.cn.test"`, no extensions but the key ids;
    /// notAfter=Nov 29 04:56:58 2036 GMT.
    const CN_ONLY: &str = "-----BEGIN CERTIFICATE-----
MIIBgzCCASmgAwIBAgIUPhqsqj+NADjlOOJnEpQYF6XizPEwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMb25seS5jbi50ZXN0MB4XDTI2MTIwMjA0NTY1OFoXDTM2MTEy
OTA0NTY1OFowFzEVMBMGA1UEAwwMb25seS5jbi50ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEV6/BA2mXlbikswvjkipj+Lo8/T9BaKDGIeTOS37CGXnj3cay
us6zPCuZ7Qbi/ShOw57pG25tTISoVldmDo4QO6NTMFEwHQYDVR0OBBYEFD7FyNRF
ZwNTdbDpNuUU3LBY8gl3MB8GA1UdIwQYMBaAFD7FyNRFZwNTdbDpNuUU3LBY8gl3
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgZH2Bk2WXkjjcNims
RljcUkTr77cAQuEvmXptH8UZ+CwCIQCPC4Ln9G92LQBeUwzeDNA1oXYNT+XZerPX
kDqiDfeZaA==
-----END CERTIFICATE-----
";

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .expect("a PEM certificate")
            .to_vec()
    }

    #[test]
    fn reads_san_names_issuer_and_not_after() {
        let info = read(&der(WITH_SAN)).expect("readable");
        assert_eq!(info.names, ["example.org", "*.example.org"]);
        assert_eq!(info.issuer, "CN=Test CA One, O=Test Org");
        assert_eq!(info.not_before, 1_798_779_418 - 30 * 86_400);
        assert_eq!(info.not_after, 1_798_779_418);
    }

    #[test]
    fn without_san_the_subject_cn_is_the_name() {
        let info = read(&der(CN_ONLY)).expect("readable");
        assert_eq!(info.names, ["only.cn.test"]);
        assert_eq!(info.issuer, "CN=only.cn.test");
        assert_eq!(info.not_after, 2_111_547_418);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let full = der(WITH_SAN);
        for end in 0..full.len() {
            let _ = read(&full[..end]);
        }
        assert!(read(&full[..full.len() / 2]).is_err());
        assert!(read(b"not der at all").is_err());
    }

    #[test]
    fn times_in_both_encodings() {
        assert_eq!(time(UTC_TIME, b"700101000000Z"), Ok(0));
        assert_eq!(time(UTC_TIME, b"491231235959Z"), Ok(2_524_607_999));
        assert_eq!(
            time(GENERALIZED_TIME, b"20500101000000Z"),
            Ok(2_524_608_000)
        );
        assert_eq!(
            time(GENERALIZED_TIME, b"20240229120000Z"),
            Ok(1_709_208_000)
        );
        assert!(time(UTC_TIME, b"701301000000Z").is_err());
        assert!(time(UTC_TIME, b"7001010000000").is_err());
        assert!(time(GENERALIZED_TIME, b"700101000000Z").is_err());
    }
}
