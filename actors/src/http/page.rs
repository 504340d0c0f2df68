//! `GET /`: the status page. Plain HTML, CSS and JavaScript compiled into the binary (no build step, nothing
//! third-party committed); it follows `/ws` and plays previews with hls.js loaded from a configurable URL.

use actix_web::{web, HttpResponse};
use bytes::Bytes;

use super::AppState;

const HTML: &str = include_str!("page/index.html");
const STYLE: &str = include_str!("page/status.css");
const SCRIPT: &str = include_str!("page/status.js");

/// Where the page loads hls.js from unless configured otherwise.
pub const DEFAULT_HLS_JS_URL: &str = "https://cdn.jsdelivr.net/npm/hls.js@1";

/// The status page, rendered once when the engine starts.
#[derive(Debug, Clone)]
pub struct Page {
    html: Bytes,
}

impl Page {
    /// The page, loading hls.js from `hls_js_url`.
    pub fn new(hls_js_url: &str) -> Self {
        let html = HTML
            .replace("{{STYLE}}", STYLE)
            .replace("{{SCRIPT}}", SCRIPT)
            .replace("{{HLS_JS_URL}}", &escape_attribute(hls_js_url));
        Self { html: Bytes::from(html) }
    }

    /// The HTML.
    pub fn html(&self) -> &Bytes {
        &self.html
    }
}

impl Default for Page {
    fn default() -> Self {
        Self::new(DEFAULT_HLS_JS_URL)
    }
}

/// The URL goes into a double-quoted attribute: only these characters could break out of it.
fn escape_attribute(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /`.
pub async fn index(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .body(state.page.html().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_substituted_and_escaped() {
        let page = Page::new("https://x.test/hls.js?a=1&b=\"2\"");
        let html = std::str::from_utf8(page.html()).unwrap();
        assert!(html.contains("src=\"https://x.test/hls.js?a=1&amp;b=&quot;2&quot;\""), "{html}");
        assert!(!html.contains("{{"), "every placeholder is filled");
    }
}
