//! `GET /` on the root domain: the dashboard, one HTML page embedded in the
//! binary (`dashboard.html`: plain JS and CSS, no external resources, so it
//! works offline). Served without a token: the page holds no data; it asks
//! for a token and sends it in an `Authorization` header on every API call.

use super::Response;

/// The page, as shipped.
pub const PAGE: &str = include_str!("dashboard.html");

/// What the page may load: only itself and the API of the same origin.
/// Inline script and style are the page's own (there is no second file);
/// everything it shows from the API is set as text, never as HTML.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// The dashboard response.
pub fn response() -> Response {
    Response::text(200, "text/html; charset=utf-8", PAGE)
        .with_header("Content-Security-Policy", CSP.to_string())
        .with_header("X-Content-Type-Options", "nosniff".to_string())
        .with_header("Referrer-Policy", "no-referrer".to_string())
        .with_header("Cache-Control", "no-cache".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for needle in ["http://", "https://", "src=\"", "<link", "@import"] {
            assert!(!PAGE.contains(needle), "dashboard.html contains {needle:?}");
        }
        assert!(PAGE.contains("Authorization"));
        assert!(!PAGE.contains("?token="), "the token never goes in a URL");
    }
}
