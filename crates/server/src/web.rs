//! The playground: the page at `/` and its assets, compiled into the binary (no CDN, no build
//! step: plain ES modules under `crates/server/web/`), so a fresh `tandem serve` works offline.
//!
//! Served without a key (the page asks for one and sends it as a bearer header, like any client);
//! every answer carries a strict Content-Security-Policy — scripts and styles only from this
//! origin, no inline code, no framing — and is gzipped once, on first use, for clients that
//! accept it. `ETag`s (a digest of the bytes) let a reload cost a 304.

use std::io::Write;
use std::sync::{Arc, OnceLock};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// `default-src 'none'` and then only what the page uses: its own scripts, styles and API;
/// pasted or recorded media as `blob:`/`data:` URLs; the microphone through `Permissions-Policy`.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
     media-src 'self' blob: data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $mime:literal) => {
        Asset {
            name: $name,
            mime: $mime,
            body: include_bytes!(concat!("../web/", $name)),
        }
    };
}

/// Every file the page loads; `index.html` is `/`, the rest live under `/assets/`.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("chat.js", "text/javascript; charset=utf-8"),
    asset!("compare.js", "text/javascript; charset=utf-8"),
    asset!("conversations.js", "text/javascript; charset=utf-8"),
    asset!("dashboard.js", "text/javascript; charset=utf-8"),
    asset!("charts.js", "text/javascript; charset=utf-8"),
    asset!("dom.js", "text/javascript; charset=utf-8"),
    asset!("highlight.js", "text/javascript; charset=utf-8"),
    asset!("markdown.js", "text/javascript; charset=utf-8"),
    asset!("media.js", "text/javascript; charset=utf-8"),
    asset!("tools.js", "text/javascript; charset=utf-8"),
    asset!("widgets.js", "text/javascript; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

/// An asset's bytes gzipped and the ETags of both encodings (they differ: RFC 9110 §8.8.3),
/// computed once.
struct Packed {
    gzip: Vec<u8>,
    etag: HeaderValue,
    etag_gzip: HeaderValue,
}

fn packed(i: usize) -> &'static Packed {
    static PACKED: OnceLock<Vec<Packed>> = OnceLock::new();
    &PACKED.get_or_init(|| ASSETS.iter().map(pack).collect())[i]
}

fn pack(a: &Asset) -> Packed {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    gz.write_all(a.body).expect("gzip into memory");
    let gzip = gz.finish().expect("gzip into memory");
    let digest = Sha256::digest(a.body);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Packed {
        gzip,
        etag: HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header"),
        etag_gzip: HeaderValue::from_str(&format!("\"{hex}-gz\"")).expect("hex is a valid header"),
    }
}

/// The page's routes, when the playground is on (`--playground false` turns it off).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/", get(index)).route("/assets/{name}", get(asset))
}

/// Paths the page is served at: reachable without a key (`auth`).
pub fn is_public(path: &str) -> bool {
    path == "/" || path.starts_with("/assets/")
}

async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn asset(State(_): State<Arc<AppState>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name && name != "index.html") {
        Some(i) => serve(i, &headers),
        None => ApiError::not_found(format!("No playground asset named '{name}'.")).into_response(),
    }
}

fn serve(i: usize, req: &HeaderMap) -> Response {
    let (a, p) = (&ASSETS[i], packed(i));
    let gzip = req
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip);
    let etag = if gzip { &p.etag_gzip } else { &p.etag };
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == etag)
        });
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else if gzip {
        let mut r = p.gzip.clone().into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        a.body.into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    h.insert(header::ETAG, etag.clone());
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(h);
    resp
}

/// Whether `Accept-Encoding` takes gzip (`gzip;q=0` refuses it).
fn accepts_gzip(v: &str) -> bool {
    v.split(',').any(|e| {
        let mut parts = e.split(';').map(str::trim);
        parts.next() == Some("gzip")
            && parts.all(|p| {
                p.strip_prefix("q=")
                    .is_none_or(|q| q.parse::<f32>().is_ok_and(|q| q > 0.0))
            })
    })
}

/// The headers that keep the page inert to injected content and out of other sites' frames.
fn secure(h: &mut HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("microphone=(self), camera=(), geolocation=()"),
    );
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
}

/// Bytes of the first load (every asset the page imports), raw and gzipped.
#[cfg(test)]
fn first_load_bytes() -> (usize, usize) {
    (0..ASSETS.len()).fold((0, 0), |(raw, gz), i| {
        (raw + ASSETS[i].body.len(), gz + packed(i).gzip.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_named_once_and_nonempty() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.body.is_empty(), "{}", a.name);
            assert!(ASSETS[..i].iter().all(|b| b.name != a.name), "{} twice", a.name);
        }
    }

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        // An import of a file the binary lacks would 404 in the browser only.
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for line in text.lines().filter(|l| l.trim_start().starts_with("import ")) {
                let Some(spec) = line.split(['\'', '"']).nth(1) else {
                    continue;
                };
                let file = spec.trim_start_matches("./");
                assert!(ASSETS.iter().any(|b| b.name == file), "{} imports {spec}", a.name);
            }
        }
    }

    #[test]
    fn no_inline_script_or_style_in_the_page() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(
            !html.contains("<script>") && !html.contains("<style"),
            "CSP forbids inline code"
        );
        let handler = html.split(" on").skip(1).find(|rest| {
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase()).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(
            handler.is_none(),
            "inline event handler: on{}",
            handler.unwrap_or_default()
        );
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            assert!(!text.contains(".innerHTML"), "{} writes innerHTML", a.name);
            assert!(!text.contains("insertAdjacentHTML"), "{} writes HTML", a.name);
        }
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip("gzip, deflate, br"));
        assert!(accepts_gzip("br;q=1.0, gzip;q=0.8"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
    }

    #[test]
    fn first_load_fits_the_budget() {
        let (_, gz) = first_load_bytes();
        assert!(gz < 300 << 10, "{gz} bytes gzipped");
    }
}
