//! Playback access control (issue 13 item 2) over real HTTP: every token rule (missing, expired, wrong stream,
//! tampered, the three ways to carry one, the cookie's path), what stays the same for caches (bodies, ETags,
//! `public` on everything that does not set the cookie), and that nothing changes with no secret configured.

#![allow(clippy::unwrap_used)]

mod common;

use awc::http::StatusCode;
use clap::Parser as _;
use common::{start, start_default, Media, Reply, Server};
use playlists_actors::access::{self, PlaybackAuth, Scope};
use playlists_actors::config::{Command, Config};
use playlists_actors::EngineConfig;

const SECRET: &str = "integration-test-playback-secret";

fn auth() -> PlaybackAuth {
    PlaybackAuth::new(&[SECRET]).unwrap()
}

fn token(scope: Scope) -> String {
    auth().sign_for(&scope, 3600).unwrap()
}

fn stream_token(name: &str) -> String {
    token(Scope::stream(name).unwrap())
}

/// A server with playback tokens on, and `cam` live with two complete segments (and `grp/hi`, `grp/lo` with
/// `groups`).
async fn live(groups: bool) -> Server {
    let server = start(EngineConfig { playback: auth(), ..EngineConfig::default() }).await;
    let media = Media::h264();
    server.publish("cam", &media, 12).await;
    if groups {
        server.publish("grp/hi", &media, 7).await;
        server.publish("grp/lo", &media, 7).await;
    }
    server
}

async fn get_with(server: &Server, path: &str, header: (&str, &str)) -> Reply {
    server.send(server.client.get(server.url(path)).insert_header(header), None).await
}

async fn bearer(server: &Server, path: &str, token: &str) -> Reply {
    get_with(server, path, ("authorization", &format!("Bearer {token}"))).await
}

async fn cookie(server: &Server, path: &str, token: &str) -> Reply {
    get_with(server, path, ("cookie", &format!("other=1; playlists_token={token}"))).await
}

/// The resources of `cam` every rule is checked on.
const CAM: [&str; 4] = ["/live/cam/index.m3u8", "/live/cam/init.mp4", "/live/cam/p1.0.mp4", "/live/cam/s0.mp4"];

fn assert_refused(r: &Reply, status: StatusCode, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"), "{what}");
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"), "{what}");
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(json["error"].is_string(), "{what}: {json}");
    assert!(r.header("set-cookie").is_none(), "{what}");
    assert_eq!(r.header("access-control-allow-origin").as_deref(), Some("*"), "{what}: players can read it");
}

#[actix_web::test]
async fn without_a_secret_playback_is_open_as_before() {
    let server = start_default().await;
    server.publish("cam", &Media::h264(), 12).await;
    for path in CAM {
        let r = server.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(r.header("set-cookie").is_none());
        assert!(r.header("cache-control").unwrap().starts_with("public"), "{path}");
    }
    // A token where none is needed changes nothing either.
    let r = server.get(&format!("/live/cam/index.m3u8?token={}", stream_token("cam"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("set-cookie").is_none());
}

#[actix_web::test]
async fn no_token_is_401_with_www_authenticate() {
    let server = live(true).await;
    for path in CAM.iter().copied().chain(["/live/grp/master.m3u8", "/live/nothing/index.m3u8"]) {
        let r = server.get(path).await;
        assert_refused(&r, StatusCode::UNAUTHORIZED, path);
        assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"), "{path}");
    }
    // Not a token of ours in the places a token goes: still none.
    let r = get_with(&server, CAM[0], ("authorization", "Basic dXNlcjpwYXNz")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = server.get("/live/cam/index.m3u8?token=").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn expired_wrong_stream_tampered_and_malformed_tokens_are_403() {
    let server = live(false).await;
    let scope = Scope::stream("cam").unwrap();
    let expired = auth().sign(&scope, access::now() - 1).unwrap();
    let good = stream_token("cam");
    let tampered_scope = good.replacen("v1.cam.", "v1.cax.", 1);
    let tampered_sig = {
        let (head, sig) = good.rsplit_once('.').unwrap();
        let flipped: String = sig
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i == 5 {
                    if c == 'A' {
                        'B'
                    } else {
                        'A'
                    }
                } else {
                    c
                }
            })
            .collect();
        format!("{head}.{flipped}")
    };
    let other_secret = PlaybackAuth::new(&["some-other-server-secret"]).unwrap().sign_for(&scope, 3600).unwrap();
    let cases = [
        ("expired", expired.as_str(), "expired"),
        ("another stream's", &stream_token("cam2"), "not for this stream"),
        ("a rendition's, for its parent", &stream_token("cam/hd"), "not for this stream"),
        ("tampered scope", &tampered_scope, "invalid"),
        ("tampered signature", &tampered_sig, "invalid"),
        ("another secret's", &other_secret, "invalid"),
        ("malformed", "v1.cam.123.abc", "malformed"),
    ];
    for (what, token, reason) in cases {
        for path in CAM {
            for r in [bearer(&server, path, token).await, cookie(&server, path, token).await] {
                assert_refused(&r, StatusCode::FORBIDDEN, what);
                assert!(r.text().contains(reason), "{what}: {}", r.text());
                assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer error=\"invalid_token\""));
            }
            let r = server.get(&format!("{path}?token={token}")).await;
            assert_refused(&r, StatusCode::FORBIDDEN, what);
        }
    }
    let metrics = server.get("/metrics").await.text();
    for (reason, n) in [("expired", 12), ("wrong_scope", 24), ("bad_signature", 36), ("malformed", 12)] {
        let line = format!("playlists_playback_refused_total{{reason=\"{reason}\"}} {n}");
        assert!(metrics.contains(&line), "{line}:\n{metrics}");
    }
}

#[actix_web::test]
async fn bearer_query_and_cookie_each_open_every_resource_with_the_same_bodies_and_etags() {
    let server = live(false).await;
    let t = stream_token("cam");
    for path in CAM {
        let by_header = bearer(&server, path, &t).await;
        let by_cookie = cookie(&server, path, &t).await;
        let by_query = server.get(&format!("{path}?token={t}")).await;
        for (how, r) in [("bearer", &by_header), ("cookie", &by_cookie), ("query", &by_query)] {
            assert_eq!(r.status, StatusCode::OK, "{how} {path}: {}", r.text());
            assert_eq!(r.body, by_header.body, "{how} {path}: a token never changes a body");
            assert_eq!(r.header("etag"), by_header.header("etag"), "{how} {path}");
        }
        // Only the query on a playlist load sets the cookie; everything else stays as cacheable as without tokens.
        for r in [&by_header, &by_cookie] {
            assert!(r.header("set-cookie").is_none(), "{path}");
            assert!(r.header("cache-control").unwrap().starts_with("public"), "{path}");
        }
        if !path.ends_with(".m3u8") {
            assert!(by_query.header("set-cookie").is_none(), "{path}");
            assert_eq!(by_query.header("cache-control"), by_header.header("cache-control"), "{path}");
        }
    }
    // HEAD too.
    let r = server.send(server.client.head(server.url(&format!("{}?token={t}", CAM[2]))), None).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_playlist_asked_for_with_the_query_sets_the_cookie_that_then_opens_parts_and_init() {
    let server = live(false).await;
    let t = stream_token("cam");
    let r = server.get(&format!("/live/cam/index.m3u8?token={t}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let set = r.header("set-cookie").expect("a cookie");
    let parts: Vec<&str> = set.split("; ").collect();
    assert_eq!(parts[0], format!("playlists_token={t}"));
    assert!(parts.contains(&"Path=/live/cam/"), "{set}");
    assert!(parts.contains(&"HttpOnly") && parts.contains(&"SameSite=Lax"), "{set}");
    assert!(!parts.contains(&"Secure"), "plain HTTP: {set}");
    let max_age: u64 = parts.iter().find_map(|p| p.strip_prefix("Max-Age=")).unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&max_age), "{set}");
    // Answers that set a cookie are for this viewer only; the max-age stays.
    assert_eq!(r.header("cache-control").as_deref(), Some("private, max-age=1"));
    // Over TLS (as a proxy in front says), the cookie is Secure.
    let tls = server
        .send(
            server
                .client
                .get(server.url(&format!("/live/cam/index.m3u8?token={t}")))
                .insert_header(("x-forwarded-proto", "https")),
            None,
        )
        .await;
    assert!(tls.header("set-cookie").unwrap().ends_with("; Secure"));

    // What the browser sends back from then on: the cookie alone opens the relative child URIs.
    let value = parts[0].strip_prefix("playlists_token=").unwrap();
    for path in ["/live/cam/p1.0.mp4", "/live/cam/init.mp4", "/live/cam/s1.mp4"] {
        let r = cookie(&server, path, value).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
    }
    // hls.js keeps the playlist URL's query on its blocking reloads: those set no cookie and stay public (an
    // edge collapses them), and nor does a plain reload that already carries the cookie.
    let reload = cookie(&server, &format!("/live/cam/index.m3u8?token={t}&_HLS_msn=2&_HLS_part=1"), value).await;
    assert_eq!(reload.status, StatusCode::OK);
    assert!(reload.header("set-cookie").is_none());
    assert_eq!(reload.header("cache-control").as_deref(), Some("public, max-age=12"));
    let blocking_without_cookie = server.get(&format!("/live/cam/index.m3u8?token={t}&_HLS_msn=2")).await;
    assert!(blocking_without_cookie.header("set-cookie").is_none());
    let again = cookie(&server, &format!("/live/cam/index.m3u8?token={t}"), value).await;
    assert!(again.header("set-cookie").is_none());
    assert_eq!(again.header("cache-control").as_deref(), Some("public, max-age=1"));
    // A stale cookie beside a fresh query token: the query wins, and the new cookie replaces the old.
    let expired = auth().sign(&Scope::stream("cam").unwrap(), access::now() - 1).unwrap();
    let fresh = cookie(&server, &format!("/live/cam/index.m3u8?token={t}"), &expired).await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert!(fresh.header("set-cookie").is_some());
}

#[actix_web::test]
async fn a_group_token_opens_its_master_and_renditions_and_its_cookie_covers_the_group() {
    let server = live(true).await;
    let t = token(Scope::group("grp").unwrap());
    let master = server.get(&format!("/live/grp/master.m3u8?token={t}")).await;
    assert_eq!(master.status, StatusCode::OK, "{}", master.text());
    let set = master.header("set-cookie").unwrap();
    assert!(set.contains("; Path=/live/grp/;"), "{set}");
    assert_eq!(master.header("cache-control").as_deref(), Some("private, max-age=1"));
    // The master's relative URIs (`hi/index.m3u8`) resolve under the cookie's path.
    assert!(master.text().contains("\nhi/index.m3u8"), "{}", master.text());
    for path in ["/live/grp/hi/index.m3u8", "/live/grp/lo/p1.0.mp4", "/live/grp/hi/init.mp4"] {
        assert_eq!(cookie(&server, path, &t).await.status, StatusCode::OK, "{path}");
    }
    // Not a group whose name merely starts with it, nor a stream outside it.
    assert_eq!(cookie(&server, "/live/grpx/a/index.m3u8", &t).await.status, StatusCode::FORBIDDEN);
    assert_eq!(cookie(&server, "/live/cam/index.m3u8", &t).await.status, StatusCode::FORBIDDEN);
    // A rendition's token opens that rendition, not the master nor its sibling; its cookie is the rendition's.
    let hi = stream_token("grp/hi");
    assert_eq!(bearer(&server, "/live/grp/master.m3u8", &hi).await.status, StatusCode::FORBIDDEN);
    assert_eq!(bearer(&server, "/live/grp/lo/index.m3u8", &hi).await.status, StatusCode::FORBIDDEN);
    // Percent-encoded in the query, as a URL builder may write the '/'.
    let r = server.get(&format!("/live/grp/hi/index.m3u8?token={}", hi.replace('/', "%2F"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.header("set-cookie").unwrap().contains("; Path=/live/grp/hi/;"));
}

#[actix_web::test]
async fn preflights_and_operator_routes_need_no_token() {
    let server = live(false).await;
    let preflight = server
        .send(
            server
                .client
                .request(awc::http::Method::OPTIONS, server.url("/live/cam/index.m3u8"))
                .insert_header(("origin", "https://player.example"))
                .insert_header(("access-control-request-headers", "authorization")),
            None,
        )
        .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert!(preflight.header("access-control-allow-headers").unwrap().contains("Authorization"));
    for path in ["/api/streams", "/api/streams/cam", "/healthz", "/metrics", "/"] {
        assert_eq!(server.get(path).await.status, StatusCode::OK, "{path}");
    }
    // A path under /live/ that names no resource is 404 whatever the token.
    assert_eq!(server.get("/live/cam").await.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn the_token_subcommand_prints_a_token_the_server_accepts() {
    let server = live(false).await;
    let config =
        Config::parse_from(["playlists", "token", "--stream", "cam", "--ttl", "1h", "--playback-secret", SECRET]);
    let Some(Command::Token(args)) = &config.command else { panic!("{config:?}") };
    let t = config.token(args).unwrap();
    assert_eq!(bearer(&server, "/live/cam/index.m3u8", &t).await.status, StatusCode::OK);
    let short =
        Config::parse_from(["playlists", "token", "--stream", "cam", "--ttl", "1s", "--playback-secret", SECRET]);
    let Some(Command::Token(args)) = &short.command else { panic!() };
    let t = short.token(args).unwrap();
    actix_rt::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = bearer(&server, "/live/cam/index.m3u8", &t).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r.text().contains("expired"));
}
