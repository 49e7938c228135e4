//! What the AWS codecs (`bedrock-converse`, `sagemaker`) share: Signature
//! Version 4, computed inside the plugin from the credentials the user
//! granted as secrets and the send time the host puts in each request
//! spec, and the settings that say where a request is signed for.
//!
//! SigV4 signs the `host` header, which the host writes from the target (a
//! codec may not set it). The codec signs the host it is told (`host:`,
//! else the service's regional endpoint), so a target elsewhere (a proxy,
//! a VPC endpoint) needs `host:` set to the name requests carry there.

use barrage_sdk::prelude::*;
use barrage_sdk::{Datetime, SecretNeed};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The secrets an AWS codec reads. All are optional: without keys, requests
/// go unsigned (the simulator takes them; AWS answers 403).
pub const ACCESS_KEY_ID: &str = "access-key-id";
/// See [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "secret-access-key";
/// A temporary credential's token (STS), sent as `x-amz-security-token`.
pub const SESSION_TOKEN: &str = "session-token";

/// The secrets, for `plugin-info`.
pub fn secret_needs() -> Vec<SecretNeed> {
    vec![
        SecretNeed::optional(ACCESS_KEY_ID, "the AWS access key id requests are signed with (SigV4)"),
        SecretNeed::optional(SECRET_ACCESS_KEY, "the AWS secret access key requests are signed with"),
        SecretNeed::optional(SESSION_TOKEN, "a temporary credential's session token"),
    ]
}

/// AWS credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AKIA…` or `ASIA…`.
    pub access_key_id: String,
    /// The key the signature is keyed with.
    pub secret_access_key: String,
    /// Present for temporary credentials.
    pub session_token: Option<String>,
}

impl Credentials {
    /// The credentials the user granted, if both keys were. One key without
    /// the other is a mistake worth naming, not a reason to send unsigned.
    pub fn from_secrets() -> Result<Option<Credentials>, String> {
        let id = secrets::get(ACCESS_KEY_ID).ok();
        let key = secrets::get(SECRET_ACCESS_KEY).ok();
        match (id, key) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Some(Credentials {
                access_key_id,
                secret_access_key,
                session_token: secrets::get(SESSION_TOKEN).ok(),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(format!("`{ACCESS_KEY_ID}` was granted without `{SECRET_ACCESS_KEY}`")),
            (None, Some(_)) => Err(format!("`{SECRET_ACCESS_KEY}` was granted without `{ACCESS_KEY_ID}`")),
        }
    }
}

/// Where requests are signed for: the settings both AWS codecs take.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    /// The region (default `us-east-1`).
    pub region: Option<String>,
    /// The host name signed (default the service's regional endpoint).
    pub host: Option<String>,
}

impl Signing {
    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        self.region.as_deref().unwrap_or("us-east-1")
    }

    /// The host requests are signed for: `host:`, else `{prefix}.{region}.amazonaws.com`.
    pub fn host(&self, prefix: &str) -> String {
        self.host
            .clone()
            .unwrap_or_else(|| format!("{prefix}.{}.amazonaws.com", self.region()))
    }

    /// Check the settings' values.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |field: &str, message: String| ConfigError {
            field: Some(field.into()),
            message,
        };
        if let Some(r) = &self.region
            && (r.is_empty() || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(bad("region", format!("`{r}` is not a region name (like `us-east-1`)")));
        }
        if let Some(h) = &self.host
            && (h.is_empty() || h.contains('/') || h.bytes().any(|b| b.is_ascii_whitespace()))
        {
            return Err(bad(
                "host",
                format!(
                    "`{h}` is not a host name: give the name alone, like `bedrock-runtime.us-east-1.amazonaws.com`"
                ),
            ));
        }
        Ok(())
    }
}

/// One request to sign.
pub struct Unsigned<'a> {
    /// `POST`.
    pub method: &'a str,
    /// The `host` header as sent.
    pub host: &'a str,
    /// The path as sent (already percent-encoded).
    pub path: &'a str,
    /// The service's signing name (`bedrock`, `sagemaker`).
    pub service: &'a str,
    /// The region.
    pub region: &'a str,
    /// The time of the signature: the spec's send time.
    pub time: &'a Datetime,
    /// The body.
    pub body: &'a [u8],
}

/// Sign `request`: add `x-amz-date`, `x-amz-security-token` (temporary
/// credentials) and `authorization` to `headers`, every one of which
/// (and `host`) is signed.
pub fn sign(credentials: &Credentials, request: &Unsigned<'_>, headers: &mut Vec<(String, String)>) {
    let amz_date = amz_date(request.time);
    headers.push(("x-amz-date".into(), amz_date.clone()));
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token".into(), token.clone()));
    }
    let mut signed: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .chain(std::iter::once(("host".to_string(), request.host.to_string())))
        .collect();
    signed.sort();
    let names: Vec<&str> = signed.iter().map(|(k, _)| k.as_str()).collect();
    let signed_headers = names.join(";");
    let canonical_headers: String = signed.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let canonical_request = format!(
        "{}\n{}\n\n{canonical_headers}\n{signed_headers}\n{}",
        request.method,
        canonical_uri(request.path),
        hex(&Sha256::digest(request.body)),
    );
    let day = &amz_date[..8];
    let scope = format!("{day}/{}/{}/aws4_request", request.region, request.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", credentials.secret_access_key).as_bytes(),
        day.as_bytes(),
    );
    for part in [request.region, request.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    headers.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id
        ),
    ));
}

/// A path segment percent-encoded as AWS's clients send it: everything but
/// the unreserved characters (a Bedrock model id's `:` becomes `%3A`).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical URI of every service but S3: the path as sent, encoded
/// once more (so `%3A` is signed as `%253A`).
fn canonical_uri(path: &str) -> String {
    path.split('/').map(encode_segment).collect::<Vec<_>>().join("/")
}

/// `YYYYMMDDTHHMMSSZ`.
pub fn amz_date(time: &Datetime) -> String {
    let days = (time.seconds / 86_400) as i64;
    let secs = time.seconds % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The calendar date of a day counted from 1970-01-01 (Howard Hinnant's
/// algorithm, proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// HMAC-SHA256 (RFC 2104): SHA-256's block is 64 bytes.
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex(&hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex(&hmac(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn dates_are_written_as_aws_writes_them() {
        let at = |seconds| {
            amz_date(&Datetime {
                seconds,
                nanoseconds: 999,
            })
        };
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(1_440_938_160), "20150830T123600Z");
        assert_eq!(at(951_782_400), "20000229T000000Z", "a leap day");
        assert_eq!(at(4_102_444_799), "20991231T235959Z");
    }

    /// AWS's own SigV4 test suite, `get-vanilla`.
    #[test]
    fn the_aws_test_suite_vanilla_request_signs_as_published() {
        let credentials = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let mut headers = Vec::new();
        sign(
            &credentials,
            &Unsigned {
                method: "GET",
                host: "example.amazonaws.com",
                path: "/",
                service: "service",
                region: "us-east-1",
                time: &Datetime {
                    seconds: 1_440_938_160,
                    nanoseconds: 0,
                },
                body: b"",
            },
            &mut headers,
        );
        assert_eq!(
            headers.last().unwrap().1,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn paths_are_encoded_once_to_send_and_again_to_sign() {
        let sent = format!("/model/{}/converse", encode_segment("anthropic.claude-v2:1"));
        assert_eq!(sent, "/model/anthropic.claude-v2%3A1/converse");
        assert_eq!(canonical_uri(&sent), "/model/anthropic.claude-v2%253A1/converse");
    }

    #[test]
    fn settings_name_the_bad_field() {
        let bad = Signing {
            host: Some("https://x/".into()),
            ..Signing::default()
        };
        assert_eq!(bad.check().unwrap_err().field.as_deref(), Some("host"));
        let good = Signing {
            region: Some("eu-west-3".into()),
            host: None,
        };
        assert_eq!(good.host("bedrock-runtime"), "bedrock-runtime.eu-west-3.amazonaws.com");
    }
}
