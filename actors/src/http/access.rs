//! Playback tokens over HTTP ([`crate::access`] has the format): on when a playback secret is configured, for
//! every `GET`/`HEAD` under `/live/` (playlists, multivariant playlists, init, parts, segments). Preflights
//! (`OPTIONS`) carry no credentials and need none; `/api`, `/ws`, `/metrics`, `/` and `/healthz` are operator
//! routes and stay as they are.
//!
//! A request may carry its token three ways, and is let through if any of them opens the resource:
//!
//! 1. `Authorization: Bearer TOKEN`, for players that can add a header (hls.js `xhrSetup`, Shaka, apps);
//! 2. `?token=TOKEN` on any URL;
//! 3. the cookie `playlists_token`, which the server sets when a playlist (`index.m3u8` or `master.m3u8`) was
//!    asked for with `?token=`: `Path=/live/{scope}/`, `Max-Age` the token's remaining life, `HttpOnly`,
//!    `SameSite=Lax`, and `Secure` over TLS. Relative child URIs (the media playlists of a multivariant playlist,
//!    parts, segments, init) carry no token; the cookie carries it, so a player that cannot add headers (Safari's
//!    native player) plays without any playlist rewriting.
//!
//! A token never changes a body: playlists stay rendered once for every viewer, and ETags stay the same. The only
//! answers that differ are those that set the cookie, and they are `Cache-Control: private` (keeping their
//! `max-age`), so that no shared cache hands one viewer's cookie to another. The cookie is set on a plain
//! playlist load only, never on a blocking reload (`_HLS_msn`), and not when the request already carries that
//! very cookie: hls.js keeps the playlist URL's query (so its `token`) on every reload, and those reloads are what
//! an edge collapses, so they must stay `public`.
//!
//! No token at all: 401 with `WWW-Authenticate: Bearer`; a token that is malformed, tampered with, expired or for
//! another stream: 403. Both are the usual JSON error with `Cache-Control: no-store`, and are counted by reason in
//! `playlists_playback_refused_total`.

use std::borrow::Cow;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use super::{percent_decode, playback, ApiError, AppState};
use crate::access::{self, Denied, Grant};

/// The cookie's name.
pub const COOKIE: &str = "playlists_token";
/// Cookies of that name tried at most (a browser sends one per matching path; more is not a browser).
const MAX_COOKIES: usize = 4;

/// `GET|HEAD /live/{path}` when playback tokens are on: the token checked, then [`playback::serve`], then the
/// cookie set if the token came in the query of a playlist load.
pub async fn serve(req: &HttpRequest, path: &str, state: &AppState) -> Result<HttpResponse, ApiError> {
    let cookie = check(req, path, state)?;
    let mut resp = playback::serve(req, path, state).await?;
    if let Some(cookie) = cookie {
        set_cookie(&mut resp, cookie);
    }
    Ok(resp)
}

/// Whether the request may have `path` (`{stream}/{file}`); `Ok(Some(cookie))` when the answer should set the
/// cookie.
fn check(req: &HttpRequest, path: &str, state: &AppState) -> Result<Option<HeaderValue>, ApiError> {
    // Not `{stream}/{file}`: no resource, the 404 follows.
    let Some((name, file)) = path.rsplit_once('/') else { return Ok(None) };
    let auth = &state.playback;
    let now = access::now();
    let query = query_token(req.query_string());
    let bearer = bearer(req);
    let cookies: Vec<&str> = cookies(req).take(MAX_COOKIES).collect();
    let mut refusal: Option<Denied> = None;
    let mut verify = |token: &str| -> Option<Grant> {
        auth.verify_for(token, name, now).map_err(|d| refusal = refusal.or(Some(d))).ok()
    };
    let by_query = query.as_deref().and_then(&mut verify);
    let admitted = by_query.is_some() || bearer.into_iter().chain(cookies.iter().copied()).any(|t| verify(t).is_some());
    if !admitted {
        state.metrics.playback_refused(refusal);
        return Err(match refusal {
            Some(denied) => ApiError::PlaybackDenied(denied),
            None => ApiError::Unauthorized(
                "a playback token is needed: Authorization: Bearer TOKEN, ?token=TOKEN or the playlists_token cookie",
            ),
        });
    }
    let (Some(grant), Some(token)) = (by_query, query) else { return Ok(None) };
    let playlist_load = file.ends_with(".m3u8") && !blocking(req.query_string());
    if !playlist_load || cookies.contains(&token.as_ref()) {
        return Ok(None);
    }
    let secure = if req.connection_info().scheme() == "https" { "; Secure" } else { "" };
    let max_age = grant.expires.saturating_sub(now).max(1);
    // A verified token is ours: `[A-Za-z0-9_/.-]`, nothing a header or a cookie value cannot hold.
    let cookie = format!(
        "{COOKIE}={token}; Path=/live/{}/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        grant.scope.as_str()
    );
    Ok(HeaderValue::from_str(&cookie).ok())
}

/// Adds the cookie, and keeps the answer out of shared caches (`public` becomes `private`, the max-age stays).
fn set_cookie(resp: &mut HttpResponse, cookie: HeaderValue) {
    let headers = resp.headers_mut();
    headers.append(header::SET_COOKIE, cookie);
    let private = match headers.get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()) {
        Some(v) => match v.strip_prefix("public") {
            Some(rest) => format!("private{rest}"),
            None => format!("private, {v}"),
        },
        None => "private".to_owned(),
    };
    headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_str(&private).unwrap_or(HeaderValue::from_static("private")));
}

/// The first `token` parameter of the query, percent-decoded; an empty one counts as none.
fn query_token(query: &str) -> Option<Cow<'_, str>> {
    let value = query.split('&').find_map(|pair| pair.strip_prefix("token="))?;
    if value.is_empty() {
        return None;
    }
    Some(if value.contains('%') { Cow::Owned(percent_decode(value)) } else { Cow::Borrowed(value) })
}

/// Whether the query holds `_HLS_msn` (a blocking reload).
fn blocking(query: &str) -> bool {
    query.split('&').any(|pair| pair == "_HLS_msn" || pair.starts_with("_HLS_msn="))
}

/// `Authorization: Bearer TOKEN` (the scheme is case-insensitive, RFC 9110 section 11.1).
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The values of every `playlists_token` cookie, in the order sent (a browser sends the longest path first).
fn cookies(req: &HttpRequest) -> impl Iterator<Item = &str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .map(|v| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_token_is_found_among_the_directives() {
        assert_eq!(query_token("_HLS_msn=3&token=v1.a.1.x&_HLS_part=1").as_deref(), Some("v1.a.1.x"));
        assert_eq!(query_token("token=v1.g%2Fa.1.x").as_deref(), Some("v1.g/a.1.x"));
        assert_eq!(query_token("xtoken=v1&token=").as_deref(), None);
        assert_eq!(query_token("").as_deref(), None);
        assert!(blocking("token=t&_HLS_msn=4"));
        assert!(!blocking("token=t&_HLS_msnx=4"));
    }

    #[test]
    fn bearer_and_cookies_are_read_from_their_headers() {
        let req = actix_web::test::TestRequest::default()
            .insert_header((header::AUTHORIZATION, "bearer  v1.a.1.x "))
            .append_header((header::COOKIE, "other=1; playlists_token=one"))
            .append_header((header::COOKIE, "playlists_token=\"two\"; playlists_tokenx=no; playlists_token="))
            .to_http_request();
        assert_eq!(bearer(&req), Some("v1.a.1.x"));
        assert_eq!(cookies(&req).collect::<Vec<_>>(), ["one", "two"]);
        let basic = actix_web::test::TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Basic abc"))
            .to_http_request();
        assert_eq!(bearer(&basic), None);
    }

    #[test]
    fn a_cookie_answer_is_private_with_its_max_age() {
        let mut resp = HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "public, max-age=1")).finish();
        set_cookie(&mut resp, HeaderValue::from_static("playlists_token=t; Path=/live/a/"));
        assert_eq!(resp.headers().get(header::CACHE_CONTROL).unwrap(), "private, max-age=1");
        assert_eq!(resp.headers().get(header::SET_COOKIE).unwrap(), "playlists_token=t; Path=/live/a/");
    }
}
