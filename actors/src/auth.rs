//! Who may publish: the one credential check every ingest source (HTTP uploads, RTMP, the API's `DELETE`) uses.
//!
//! - A **token** (`--ingest-token`) opens every stream.
//! - A **key** (`--ingest-key NAME=SECRET`) opens one stream id, or with a group name (`cams`) every rendition of
//!   that group (`cams/hd`, `cams/sd`) and the stream of that name itself.
//! - With neither configured, ingest is accepted only from loopback.
//!
//! Secrets are compared in constant time (`subtle`), so the time an answer takes says nothing about how much of a
//! guess was right. HTTP carries the credential as `Authorization: Bearer SECRET`, RTMP in the stream key's query
//! (`cam1?key=SECRET`).

use std::fmt;
use std::net::IpAddr;

use playlists::StreamId;
use subtle::ConstantTimeEq;

/// A secret bound to one stream id or group.
#[derive(Clone, PartialEq, Eq)]
pub struct IngestKey {
    /// The stream id (`cam1`, `cams/hd`) or group (`cams`) the key opens.
    pub scope: String,
    /// The secret.
    pub secret: String,
}

impl fmt::Debug for IngestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a secret.
        f.debug_struct("IngestKey").field("scope", &self.scope).finish_non_exhaustive()
    }
}

impl IngestKey {
    /// Parses `NAME=SECRET`, where `NAME` is a stream id or a group name.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (scope, secret) =
            s.split_once('=').ok_or_else(|| format!("ingest key '{}' is not NAME=SECRET", scope_of(s)))?;
        let (scope, secret) = (scope.trim(), secret.trim());
        StreamId::parse(scope).map_err(|e| format!("ingest key for '{scope}': {e}"))?;
        if secret.is_empty() {
            return Err(format!("ingest key for '{scope}' has an empty secret"));
        }
        Ok(Self { scope: scope.to_owned(), secret: secret.to_owned() })
    }

    /// Whether the key opens `id`.
    fn opens(&self, id: &StreamId) -> bool {
        let id = id.as_str();
        id == self.scope || id.strip_prefix(self.scope.as_str()).is_some_and(|rest| rest.starts_with('/'))
    }
}

/// What precedes the `=` of a would-be key, for an error message that does not echo a secret.
fn scope_of(s: &str) -> &str {
    s.split('=').next().unwrap_or_default()
}

/// Who may ingest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestAuth {
    /// Secrets that open every stream. With none here and no keys, ingest is accepted only from loopback.
    pub tokens: Vec<String>,
    /// Secrets that open one stream or group.
    pub keys: Vec<IngestKey>,
}

/// Why ingest was refused. Every variant is a 403 over HTTP and a refused publish over RTMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No credential is configured and the peer is not on loopback.
    #[error("ingest is accepted only from loopback unless tokens or keys are configured")]
    NotLoopback,
    /// Credentials are configured and none was given.
    #[error("ingest needs a credential (HTTP: Authorization: Bearer <token>; RTMP: stream key NAME?key=<key>)")]
    Missing,
    /// The credential given opens no stream, or not this one.
    #[error("bad ingest credential for this stream")]
    Bad,
}

impl Refusal {
    /// The reason as a static string (what `Display` prints).
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NotLoopback => "ingest is accepted only from loopback unless tokens or keys are configured",
            Refusal::Missing => {
                "ingest needs a credential (HTTP: Authorization: Bearer <token>; RTMP: stream key NAME?key=<key>)"
            }
            Refusal::Bad => "bad ingest credential for this stream",
        }
    }
}

/// Compares two secrets in constant time (for equal lengths; the length itself is not a secret worth hiding).
fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl IngestAuth {
    /// Whether any credential is configured (else: loopback only).
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty() && self.keys.is_empty()
    }

    /// Whether `credential` may publish `id` from `peer` (`None`: unknown, which is not loopback).
    pub fn check(&self, id: &StreamId, credential: Option<&str>, peer: Option<IpAddr>) -> Result<(), Refusal> {
        if self.is_open() {
            return if peer.is_some_and(|ip| ip.is_loopback()) { Ok(()) } else { Err(Refusal::NotLoopback) };
        }
        let given = credential.map(str::trim).filter(|c| !c.is_empty()).ok_or(Refusal::Missing)?;
        // Every secret is compared, so the time taken does not say which one (or whether one) matched.
        let mut ok = false;
        for token in &self.tokens {
            ok |= same(token, given);
        }
        for key in &self.keys {
            ok |= same(&key.secret, given) & key.opens(id);
        }
        if ok {
            Ok(())
        } else {
            Err(Refusal::Bad)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> StreamId {
        StreamId::parse(s).unwrap()
    }

    const LOOPBACK: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    const REMOTE: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)));

    #[test]
    fn without_credentials_only_loopback_publishes() {
        let auth = IngestAuth::default();
        assert_eq!(auth.check(&id("a"), None, LOOPBACK), Ok(()));
        assert_eq!(auth.check(&id("a"), Some("x"), REMOTE), Err(Refusal::NotLoopback));
        assert_eq!(auth.check(&id("a"), None, None), Err(Refusal::NotLoopback));
    }

    #[test]
    fn a_token_opens_every_stream_and_a_key_its_own() {
        let auth = IngestAuth {
            tokens: vec!["any".into()],
            keys: vec![IngestKey::parse("cam1=k1").unwrap(), IngestKey::parse("cams=kg").unwrap()],
        };
        assert_eq!(auth.check(&id("whatever"), Some("any"), REMOTE), Ok(()));
        assert_eq!(auth.check(&id("cam1"), Some("k1"), REMOTE), Ok(()));
        assert_eq!(auth.check(&id("cam2"), Some("k1"), REMOTE), Err(Refusal::Bad));
        assert_eq!(auth.check(&id("cams/hd"), Some("kg"), REMOTE), Ok(()));
        assert_eq!(auth.check(&id("cams"), Some("kg"), REMOTE), Ok(()));
        // A group key does not open a stream whose name merely starts with the group's.
        assert_eq!(auth.check(&id("camsx"), Some("kg"), REMOTE), Err(Refusal::Bad));
        assert_eq!(auth.check(&id("cam1"), None, LOOPBACK), Err(Refusal::Missing), "loopback needs it too");
        assert_eq!(auth.check(&id("cam1"), Some("k"), REMOTE), Err(Refusal::Bad), "a prefix of a secret is not it");
        assert_eq!(auth.check(&id("cam1"), Some("k1x"), REMOTE), Err(Refusal::Bad));
    }

    #[test]
    fn keys_parse_as_name_equals_secret() {
        assert_eq!(IngestKey::parse(" cam1 = s=3 ").unwrap(), IngestKey { scope: "cam1".into(), secret: "s=3".into() });
        assert!(IngestKey::parse("cam1").is_err());
        assert!(IngestKey::parse("cam1=").is_err());
        assert!(IngestKey::parse("bad name=x").is_err());
        let e = IngestKey::parse("bad name=hunter2").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(!format!("{:?}", IngestKey::parse("a=hunter2").unwrap()).contains("hunter2"));
    }
}
