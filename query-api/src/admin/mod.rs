//! The admin pages (`/admin/webhook-deliveries`, `/admin/webhooks`, `/admin/settings`,
//! `/admin/activity`): static HTML, CSS and JS modules embedded in the binary (no CDN, no build
//! step), which call the JSON API with the user's own token.
//!
//! The pages need no server state, so the routes are generic over the router's state and carry
//! strict security headers: the CSP allows only same-origin scripts, styles, images and fetches
//! (no inline script at all), so a payload or response body that slipped into the DOM as markup
//! could still not run. Each page is one layout (`assets/layout.html`) around the page's own
//! file, put together when the router is built (`layout.rs`).

mod layout;

use axum::{
    Router,
    body::Body,
    extract::Path,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use rust_embed::RustEmbed;
use std::sync::Arc;
use tower_http::set_header::SetResponseHeaderLayer;

pub use layout::Page;

/// The page's files, from `query-api/assets/`.
#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// Where the delivery log lives (the page `/admin` leads to).
pub const PAGE_PATH: &str = "/admin/webhook-deliveries";

/// The pages, in the navigation's order.
pub const PAGES: [Page; 4] = [
    Page {
        path: PAGE_PATH,
        file: "index.html",
        title: "Webhook deliveries",
        nav: "Deliveries",
        script: "app.js",
    },
    Page {
        path: "/admin/webhooks",
        file: "webhooks.html",
        title: "Webhooks",
        nav: "Webhooks",
        script: "webhooks.js",
    },
    Page {
        path: "/admin/settings",
        file: "settings.html",
        title: "Settings",
        nav: "Settings",
        script: "settings.js",
    },
    Page {
        path: "/admin/activity",
        file: "activity.html",
        title: "Activity",
        nav: "Activity",
        script: "activity.js",
    },
];

/// The Content-Security-Policy of every admin response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

/// Routes of the admin page (static assets; the page calls the JSON API with the user's token).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let headers = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    let mut router = Router::new()
        .route("/admin", get(to_page))
        .route("/admin/", get(to_page))
        .route("/admin/assets/{*path}", get(asset));
    for page in PAGES {
        let path = page.path;
        let rendered = match layout::render(&page, &PAGES) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                // Only a broken build gets here (the unit tests render every page): the page
                // answers 500 and says why once, the rest of the API keeps working.
                tracing::error!(page = path, error = %e, "admin page could not be put together");
                router = router.route(path, get(|| async { broken() }));
                continue;
            }
        };
        router = router
            .route(
                path,
                get(move |h: HeaderMap| async move { serve_page(&rendered, &h) }),
            )
            .route(
                &format!("{path}/"),
                get(move || async move { Redirect::permanent(path) }),
            );
    }
    for (name, value) in headers {
        router = router.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    router
}

async fn to_page() -> Redirect {
    Redirect::permanent(PAGE_PATH)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    // A page is only served at its own path, so its URL is the one people share.
    if path.ends_with(".html") {
        return not_found();
    }
    serve(&path, &headers)
}

/// One embedded file, with an ETag so a reload costs a 304 and an upgrade is seen at once.
fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return not_found();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let mime = file.metadata.mimetype().to_owned();
    cached(request, &etag, &mime, || file.data.into_owned())
}

/// A page as put together from the layout, with the same caching as a file.
fn serve_page(page: &layout::Rendered, request: &HeaderMap) -> Response {
    cached(request, &page.etag, "text/html; charset=utf-8", || {
        page.html.clone().into_bytes()
    })
}

/// A 304 when the request already holds `etag`, else the body; revalidated every time.
fn cached(request: &HeaderMap, etag: &str, mime: &str, body: impl FnOnce() -> Vec<u8>) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(body()))
    };
    let h = response.headers_mut();
    if !fresh && let Ok(v) = HeaderValue::from_str(mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidate every time: the files are small and must change together on upgrade.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn broken() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "this admin page is missing from the build\n",
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "no such admin file\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = Request::get(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        router::<()>()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    async fn text(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn the_page_is_served_as_html_with_strict_security_headers() {
        let r = get(PAGE_PATH, &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers();
        assert!(
            h[header::CONTENT_TYPE]
                .to_str()
                .expect("ascii")
                .starts_with("text/html")
        );
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii");
        assert!(csp.starts_with("default-src 'self'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        let body = text(r).await;
        assert!(body.contains(r#"<script type="module" src="/admin/assets/app.js">"#));
    }

    #[tokio::test]
    async fn every_page_is_served_with_the_headers_and_links_to_the_other_three() {
        for page in PAGES {
            let path = page.path;
            let r = get(path, &[]).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP, "{path}");
            assert_eq!(r.headers()[header::X_FRAME_OPTIONS], "DENY", "{path}");
            let body = text(r).await;
            for other in PAGES.map(|p| p.path) {
                assert!(
                    body.contains(&format!("href=\"{other}\"")),
                    "{path} links to {other}"
                );
            }
            assert!(
                body.contains("aria-current=\"page\""),
                "{path} marks itself in the navigation"
            );
            let slash = get(&format!("{path}/"), &[]).await;
            assert_eq!(slash.status(), StatusCode::PERMANENT_REDIRECT, "{path}/");
        }
    }

    #[tokio::test]
    async fn the_pages_have_no_inline_script_and_load_nothing_from_elsewhere() {
        for path in PAGES.map(|p| p.path) {
            let body = text(get(path, &[]).await).await;
            for tag in body.split("<script").skip(1) {
                assert!(
                    tag.trim_start().starts_with("type=\"module\" src=\"/admin/"),
                    "inline or foreign script in {path}: {tag}"
                );
            }
            assert!(!body.contains("style=\""), "{path} has an inline style");
        }
        for file in Assets::iter() {
            let data = Assets::get(&file).expect("listed file exists").data;
            let s = String::from_utf8_lossy(&data);
            assert!(
                !s.contains("http://") && !s.contains("https://") || file.ends_with(".svg"),
                "{file} refers to another origin"
            );
            assert!(
                !s.contains("innerHTML") && !s.contains("outerHTML") && !s.contains("insertAdjacentHTML"),
                "{file} writes markup"
            );
        }
    }

    #[tokio::test]
    async fn assets_have_their_content_type_and_revalidate_with_an_etag() {
        let r = get("/admin/assets/app.js", &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .expect("ascii")
                .contains("javascript")
        );
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let etag = r.headers()[header::ETAG].to_str().expect("ascii").to_owned();
        let again = get("/admin/assets/app.js", &[("if-none-match", &etag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let css = get("/admin/assets/style.css", &[]).await;
        assert!(
            css.headers()[header::CONTENT_TYPE]
                .to_str()
                .expect("ascii")
                .starts_with("text/css")
        );
    }

    #[tokio::test]
    async fn a_page_put_together_from_the_layout_revalidates_with_its_own_etag() {
        let r = get(PAGE_PATH, &[]).await;
        let etag = r.headers()[header::ETAG].to_str().expect("ascii").to_owned();
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        let again = get(PAGE_PATH, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let other = get("/admin/webhooks", &[]).await;
        assert_ne!(
            other.headers()[header::ETAG],
            etag.as_str(),
            "each page has its own"
        );
    }

    #[tokio::test]
    async fn unknown_assets_and_path_tricks_are_not_found() {
        for uri in [
            "/admin/assets/nope.js",
            "/admin/assets/../src/admin.rs",
            "/admin/assets/%2e%2e/Cargo.toml",
            "/admin/assets/index.html",
            "/admin/assets/webhooks.html",
            "/admin/assets/layout.html",
        ] {
            assert_eq!(get(uri, &[]).await.status(), StatusCode::NOT_FOUND, "{uri}");
        }
    }

    #[tokio::test]
    async fn admin_redirects_to_the_page() {
        let r = get("/admin", &[]).await;
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(r.headers()[header::LOCATION], PAGE_PATH);
    }
}
