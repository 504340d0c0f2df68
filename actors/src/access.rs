//! Who may play: signed, expiring playback tokens (issue 13), off unless a secret is configured.
//!
//! A token is `v1.{scope}.{expires}.{signature}`:
//!
//! - `scope` is a stream id (`cam1`, `grp/cam1`), which opens that stream, or a group name (`grp`), which opens
//!   every rendition `grp/*`, the group's multivariant playlist `/live/grp/master.m3u8`, and a stream named `grp`
//!   itself (the rule of ingest keys, [`crate::auth`]). `grpx/a` is not in `grp`.
//! - `expires` is a Unix time in seconds; the token opens nothing from that second on.
//! - `signature` is HMAC-SHA256 with the shared secret over `v1.{scope}.{expires}`, in unpadded base64url.
//!
//! Why not a JWT: a JWT carries its own algorithm (the `alg: none` and HS/RS confusion attacks come from trusting
//! it), a JSON parser on the path of every request, and three times the length in every URL and cookie; the few
//! fields a playback token needs fit in a fixed, dot-separated text that any edge function can check with one HMAC
//! (README, "Playback access control"). The `v1` prefix leaves room for another format later.
//!
//! Several secrets may be configured so that one can be rotated: the first signs, any of them verifies. The
//! signature is compared in constant time (`Mac::verify_slice`); the checks before it (shape, length) only look at
//! what the token itself says in the clear.
//!
//! This module knows nothing of HTTP: how a request carries a token (header, query, cookie) and what a refusal
//! answers is [`crate::http::access`].

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use playlists::StreamId;
use sha2::Sha256;

/// The version prefix of the one token format there is.
const VERSION: &str = "v1";
/// Longer than any token we sign (a 129-character scope, 20 digits, 43 characters of signature and the dots): a
/// longer one is refused before anything is decoded.
pub const MAX_TOKEN_LEN: usize = 256;
/// A secret shorter than this is a configuration error: HMAC is only as strong as its key.
pub const MIN_SECRET_LEN: usize = 16;
/// The length of an HMAC-SHA256 tag in unpadded base64url.
const SIGNATURE_LEN: usize = 43;

/// What a token opens: one stream, or every rendition of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(String);

impl Scope {
    /// One stream id (`cam1`, `grp/cam1`).
    pub fn stream(name: &str) -> Result<Self, String> {
        StreamId::parse(name).map_err(|e| format!("--stream {name}: {e}"))?;
        Ok(Self(name.to_owned()))
    }

    /// A group (`grp`): its renditions `grp/*` and its multivariant playlist.
    pub fn group(name: &str) -> Result<Self, String> {
        if name.contains('/') {
            return Err(format!("--group {name}: a group name has no '/'"));
        }
        StreamId::parse(name).map_err(|e| format!("--group {name}: {e}"))?;
        Ok(Self(name.to_owned()))
    }

    /// The scope as written in the token.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the scope opens `name`: a stream id, or the group of a `master.m3u8`.
    pub fn opens(&self, name: &str) -> bool {
        name == self.0 || name.strip_prefix(self.0.as_str()).is_some_and(|rest| rest.starts_with('/'))
    }
}

/// A token that verified: what it opens and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// What it opens.
    pub scope: Scope,
    /// Unix seconds from which it opens nothing.
    pub expires: u64,
}

/// Why a token opens nothing here. Each is a 403 over HTTP (a missing token, 401, is decided by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Not a token of ours: wrong shape, version, length or encoding.
    #[error("malformed playback token")]
    Malformed,
    /// Well formed, but no configured secret signed it (a tampered scope, expiry or signature).
    #[error("invalid playback token")]
    BadSignature,
    /// Signed by us, past its expiry.
    #[error("expired playback token")]
    Expired,
    /// Signed and current, for another stream or group.
    #[error("the playback token is not for this stream")]
    WrongScope,
}

impl Denied {
    /// Every variant, for the metrics.
    pub const ALL: [Denied; 4] = [Denied::Malformed, Denied::BadSignature, Denied::Expired, Denied::WrongScope];

    /// The `reason` label of the refusal counter.
    pub fn label(self) -> &'static str {
        match self {
            Denied::Malformed => "malformed",
            Denied::BadSignature => "bad_signature",
            Denied::Expired => "expired",
            Denied::WrongScope => "wrong_scope",
        }
    }

    /// The reason as a static string (what `Display` prints).
    pub fn reason(self) -> &'static str {
        match self {
            Denied::Malformed => "malformed playback token",
            Denied::BadSignature => "invalid playback token",
            Denied::Expired => "expired playback token",
            Denied::WrongScope => "the playback token is not for this stream",
        }
    }
}

/// A secret's bytes, never printed.
#[derive(Clone, PartialEq, Eq)]
struct Secret(Vec<u8>);

/// The playback secrets: off (everything open) when there are none. Cheap to clone.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PlaybackAuth {
    /// The first signs; any verifies.
    secrets: Arc<[Secret]>,
}

impl fmt::Debug for PlaybackAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a secret.
        f.debug_struct("PlaybackAuth").field("secrets", &self.secrets.len()).finish()
    }
}

impl PlaybackAuth {
    /// Tokens signed with the first of `secrets` and verified with any of them; an error if one is shorter than
    /// [`MIN_SECRET_LEN`]. No secrets: playback is open.
    pub fn new<S: AsRef<str>>(secrets: &[S]) -> Result<Self, String> {
        let secrets = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let s = s.as_ref();
                if s.len() < MIN_SECRET_LEN {
                    return Err(format!(
                        "playback secret {} is {} bytes: at least {MIN_SECRET_LEN} are needed",
                        i + 1,
                        s.len()
                    ));
                }
                Ok(Secret(s.as_bytes().to_vec()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { secrets: secrets.into() })
    }

    /// Whether playback needs a token.
    pub fn is_on(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// A token for `scope` that expires at `expires` (Unix seconds); `None` when no secret is configured.
    pub fn sign(&self, scope: &Scope, expires: u64) -> Option<String> {
        let secret = self.secrets.first()?;
        let payload = format!("{VERSION}.{}.{expires}", scope.as_str());
        let tag = mac(secret, &payload).finalize().into_bytes();
        Some(format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag)))
    }

    /// A token for `scope` valid for `ttl` seconds from now.
    pub fn sign_for(&self, scope: &Scope, ttl: u64) -> Option<String> {
        self.sign(scope, now().saturating_add(ttl))
    }

    /// What `token` opens at `now` (Unix seconds), if one of the secrets signed it and it has not expired.
    pub fn verify(&self, token: &str, now: u64) -> Result<Grant, Denied> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Denied::Malformed);
        }
        // The payload is everything before the last dot; neither a scope nor the digits hold one.
        let (payload, signature) = token.rsplit_once('.').ok_or(Denied::Malformed)?;
        let mut fields = payload.split('.');
        let (Some(VERSION), Some(scope), Some(expires), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(Denied::Malformed);
        };
        if StreamId::parse(scope).is_err() {
            return Err(Denied::Malformed);
        }
        let expires = parse_secs(expires).ok_or(Denied::Malformed)?;
        if signature.len() != SIGNATURE_LEN {
            return Err(Denied::Malformed);
        }
        let tag = URL_SAFE_NO_PAD.decode(signature).map_err(|_| Denied::Malformed)?;
        // Every secret is tried, so the time taken does not say which one signed it.
        let signed = self.secrets.iter().fold(false, |ok, secret| ok | mac(secret, payload).verify_slice(&tag).is_ok());
        if !signed {
            return Err(Denied::BadSignature);
        }
        if now >= expires {
            return Err(Denied::Expired);
        }
        Ok(Grant { scope: Scope(scope.to_owned()), expires })
    }

    /// [`verify`](Self::verify), and the token must open `name` (a stream id, or the group of a `master.m3u8`).
    pub fn verify_for(&self, token: &str, name: &str, now: u64) -> Result<Grant, Denied> {
        let grant = self.verify(token, now)?;
        if grant.scope.opens(name) {
            Ok(grant)
        } else {
            Err(Denied::WrongScope)
        }
    }
}

fn mac(secret: &Secret, payload: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length (a long one is hashed first): this never fails.
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret.0).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(payload.as_bytes());
    mac
}

/// Decimal digits only, at most 20 (no sign, no spaces).
fn parse_secs(s: &str) -> Option<u64> {
    (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// Now, in Unix seconds.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Parses a lifetime: seconds, or a number with `s`, `m`, `h` or `d` (`90s`, `30m`, `1h`, `7d`).
pub fn parse_ttl(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let per = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("'{s}': the unit is one of s, m, h, d")),
    };
    let n = parse_secs(digits).ok_or_else(|| format!("'{s}' is not a lifetime like 90s, 30m, 1h or 7d"))?;
    match n.checked_mul(per) {
        Some(secs) if secs > 0 => Ok(secs),
        Some(_) => Err(format!("'{s}': a token must live at least a second")),
        None => Err(format!("'{s}' is too long")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef-test";
    const NOW: u64 = 1_800_000_000;

    fn auth() -> PlaybackAuth {
        PlaybackAuth::new(&[SECRET]).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let a = auth();
        let t = a.sign(&Scope::stream("cam1").unwrap(), NOW + 60).unwrap();
        assert!(t.starts_with(&format!("v1.cam1.{}.", NOW + 60)), "{t}");
        assert_eq!(t.len(), "v1.cam1.1800000060.".len() + SIGNATURE_LEN);
        let grant = a.verify_for(&t, "cam1", NOW).unwrap();
        assert_eq!(grant, Grant { scope: Scope("cam1".into()), expires: NOW + 60 });
        assert_eq!(a.verify_for(&t, "cam1", NOW + 59).map(|g| g.expires), Ok(NOW + 60));
        assert_eq!(a.verify_for(&t, "cam1", NOW + 60), Err(Denied::Expired));
        assert_eq!(a.verify_for(&t, "cam2", NOW), Err(Denied::WrongScope));
        assert_eq!(a.verify_for(&t, "cam1/hd", NOW), Ok(grant), "a stream id also opens renditions below it");
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let a = auth();
        let t = a.sign(&Scope::stream("cam1").unwrap(), NOW + 60).unwrap();
        let scope = t.replacen("cam1", "cam2", 1);
        assert_eq!(a.verify(&scope, NOW), Err(Denied::BadSignature));
        let later = t.replacen(&(NOW + 60).to_string(), &(NOW + 6000).to_string(), 1);
        assert_eq!(a.verify(&later, NOW), Err(Denied::BadSignature), "a pushed-out expiry");
        // Flip one character of the signature (keep it base64url).
        let mut sig: Vec<u8> = t.clone().into_bytes();
        let last = sig.len() - 2;
        sig[last] = if sig[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(a.verify(std::str::from_utf8(&sig).unwrap(), NOW), Err(Denied::BadSignature));
        let other = PlaybackAuth::new(&["another-secret-of-16"]).unwrap();
        assert_eq!(other.verify(&t, NOW), Err(Denied::BadSignature), "another server's secret");
        // An expired token that was tampered with is invalid, not expired: only genuine tokens say "expired".
        assert_eq!(a.verify(&later, NOW + 10_000), Err(Denied::BadSignature));
    }

    #[test]
    fn a_group_opens_its_renditions_and_master_but_not_a_longer_name() {
        let a = auth();
        let t = a.sign(&Scope::group("grp").unwrap(), NOW + 60).unwrap();
        assert!(a.verify_for(&t, "grp/cam1", NOW).is_ok());
        assert!(a.verify_for(&t, "grp", NOW).is_ok(), "the master playlist of grp, and a stream named grp");
        assert_eq!(a.verify_for(&t, "grpx/a", NOW), Err(Denied::WrongScope));
        assert_eq!(a.verify_for(&t, "grpx", NOW), Err(Denied::WrongScope));
        let rendition = a.sign(&Scope::stream("grp/cam1").unwrap(), NOW + 60).unwrap();
        assert_eq!(a.verify_for(&rendition, "grp", NOW), Err(Denied::WrongScope), "a rendition's token: no master");
        assert_eq!(a.verify_for(&rendition, "grp/cam2", NOW), Err(Denied::WrongScope));
        assert!(Scope::group("grp/cam1").is_err());
        assert!(Scope::stream("bad name").is_err());
    }

    #[test]
    fn malformed_tokens_are_refused_before_any_hmac() {
        let a = auth();
        let good = a.sign(&Scope::stream("cam1").unwrap(), NOW + 60).unwrap();
        let sig = good.rsplit('.').next().unwrap();
        for bad in [
            "".to_owned(),
            "v1".to_owned(),
            "v1.cam1.123".to_owned(),
            format!("v2.cam1.{}.{sig}", NOW + 60),
            format!("v1.cam 1.{}.{sig}", NOW + 60),
            format!("v1..{}.{sig}", NOW + 60),
            format!("v1.cam1.+{}.{sig}", NOW + 60),
            format!("v1.cam1.{}.{sig}.x", NOW + 60),
            format!("v1.cam1.x.{}.{sig}", NOW + 60),
            format!("v1.cam1.{}.{}", NOW + 60, &sig[1..]),
            format!("v1.cam1.{}.{}=", NOW + 60, &sig[1..]),
            format!("v1.cam1.{}.{}", NOW + 60, sig.replace(|c: char| c.is_ascii_alphanumeric(), "+")),
            format!("v1.cam1.{}.{sig}", "9".repeat(21)),
            format!("v1.{}.{}.{sig}", "a".repeat(300), NOW + 60),
        ] {
            assert_eq!(a.verify(&bad, NOW), Err(Denied::Malformed), "{bad}");
        }
    }

    #[test]
    fn rotation_signs_with_the_first_and_verifies_with_any() {
        let old = PlaybackAuth::new(&["the-old-secret-16b"]).unwrap();
        let both = PlaybackAuth::new(&["the-new-secret-16b", "the-old-secret-16b"]).unwrap();
        let new = PlaybackAuth::new(&["the-new-secret-16b"]).unwrap();
        let scope = Scope::stream("cam1").unwrap();
        let by_old = old.sign(&scope, NOW + 60).unwrap();
        assert!(both.verify(&by_old, NOW).is_ok());
        let by_both = both.sign(&scope, NOW + 60).unwrap();
        assert!(new.verify(&by_both, NOW).is_ok(), "the first secret signs");
        assert_eq!(old.verify(&by_both, NOW), Err(Denied::BadSignature));
    }

    #[test]
    fn secrets_are_long_and_never_printed() {
        assert!(PlaybackAuth::new(&["short"]).is_err());
        assert!(!PlaybackAuth::default().is_on());
        assert_eq!(PlaybackAuth::default().sign(&Scope::stream("a").unwrap(), NOW), None);
        assert!(!format!("{:?}", auth()).contains(SECRET));
    }

    #[test]
    fn lifetimes() {
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("90s"), Ok(90));
        assert_eq!(parse_ttl("30m"), Ok(1800));
        assert_eq!(parse_ttl("1h"), Ok(3600));
        assert_eq!(parse_ttl("7d"), Ok(604_800));
        for bad in ["", "h", "1w", "-1h", "1.5h", "0", "0s", "99999999999999999999d", "1 h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
